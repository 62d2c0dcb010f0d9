//! The courier: the one thread that makes git mode's trips to the remote (a fetch, a push,
//! or asking the remote's tip), one at a time, each within its time limit, and posts what
//! it brings back to the worker's inbox. The worker never waits on the network.

use std::time::Duration;

use super::Msg;
use crate::git::{FETCHED_REF, RemoteError};

/// A trip to the remote, made by the courier thread so that the worker never waits on
/// the network: writes that need none (async) are taken while a push is out.
pub(super) enum Trip {
    Fetch {
        limit: Duration,
    },
    /// `tip`, built on the remote's `base`, pushed only while the remote is still there.
    Push {
        tip: String,
        base: String,
        limit: Duration,
    },
    /// The remote branch's tip, as `ls-remote` gives it.
    Ask {
        limit: Duration,
    },
}

/// What a trip brought back.
pub(super) enum Back {
    Fetched(Result<String, RemoteError>),
    Pushed(Result<(), RemoteError>),
    Asked(Option<String>),
}

/// Runs trips one at a time and posts what they bring back to the worker's inbox.
pub(super) fn spawn_courier(
    repo: crate::git::Repo,
    remote: String,
    branch: String,
    inbox: std::sync::mpsc::Sender<Msg>,
) -> Option<std::sync::mpsc::Sender<Trip>> {
    let (tx, trips) = std::sync::mpsc::channel::<Trip>();
    let spawned = std::thread::Builder::new()
        .name("keyward-git-remote".into())
        .spawn(move || {
            for trip in trips {
                // Read at each trip: ops may point the remote elsewhere at any time. Fetch
                // from where keyward pushes: a fetch URL that is a lagging mirror would
                // otherwise look like a rewrite of what keyward just pushed.
                let url = repo.push_url(&remote);
                let back = match (trip, url) {
                    (Trip::Fetch { .. }, None) => Back::Fetched(Err(RemoteError::Unreachable)),
                    (Trip::Push { .. }, None) => Back::Pushed(Err(RemoteError::Unreachable)),
                    (Trip::Ask { .. }, None) => Back::Asked(None),
                    (Trip::Fetch { limit }, Some(url)) => {
                        Back::Fetched(repo.fetch_into(&url, &branch, FETCHED_REF, limit))
                    }
                    (Trip::Push { tip, base, limit }, Some(url)) => {
                        Back::Pushed(repo.push(&url, &tip, &base, &branch, limit))
                    }
                    (Trip::Ask { limit }, Some(url)) => {
                        Back::Asked(repo.remote_tip(&url, &branch, limit))
                    }
                };
                if inbox.send(Msg::Back(back)).is_err() {
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::error!(error = %e, "cannot start git mode's remote thread");
            None
        }
    }
}
