//! The worker: one thread that owns every git operation of this replica, so that no two of
//! keyward's own git commands ever race. Each round it takes what arrived since the last:
//! - writes, as one batch ([`super::write`]);
//! - a pull, on `pull_interval_seconds`, the webhook or SIGHUP ([`super::replay`]);
//! - in `async` mode, a push of the journalled writes, retried with jitter when the remote
//!   moved and with backoff (1 s doubling to 60 s) when it cannot be reached;
//! - the work tree brought up to the remote tip, when the clone has been quiet for a while.
//!
//! The work tree is ops' view of the clone, not what keyward serves: a deploy job may reset
//! or pull it at any moment. keyward only fast-forwards the checked-out branch to a commit
//! the remote has (so a deploy job's `git pull --ff-only` always finds itself up to date or
//! behind), never over an uncommitted edit, and only when none of git's own files in the
//! clone changed in the last half second (so it does not take `index.lock` from under a
//! deploy job that is running).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::courier::{Back, Trip, spawn_courier};
use super::write::Flight;
use super::{Engine, Job, Msg};
use crate::config::PushMode;
use crate::domain::TenantId;
use crate::git::{REMOTE_REF, RemoteError};

/// How long git's files in the clone must be untouched before keyward moves its branch: a
/// deploy job that runs more often than this keeps the work tree up to date itself, and
/// keyward never competes with it for `index.lock`.
const QUIET: Duration = Duration::from_secs(3);
/// How often the work tree is compared with the remote tip.
const TREE_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// How long past its own limit a trip may take before the watchdog calls it failed.
const WATCHDOG_SLACK: Duration = Duration::from_secs(10);

pub(super) fn spawn_worker(
    engine: Engine,
    inbox: Receiver<Msg>,
    outbox: std::sync::mpsc::Sender<Msg>,
) {
    let spawned = std::thread::Builder::new()
        .name("keyward-git".into())
        .spawn(move || engine.run(inbox, outbox));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start git mode's worker");
    }
}

/// SIGHUP asks for a pull now (for clones whose remote sends no webhook).
pub(super) fn pull_on_hangup(replicator: &std::sync::Arc<super::Replicator>) {
    let weak = std::sync::Arc::downgrade(replicator);
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let Some(r) = weak.upgrade() else {
                return;
            };
            tracing::info!("SIGHUP: pulling from the remote now");
            r.pull_now();
        }
    });
}

impl Engine {
    fn run(mut self, inbox: Receiver<Msg>, outbox: std::sync::mpsc::Sender<Msg>) {
        if let Some(r) = &self.remote {
            self.courier = spawn_courier(
                self.repo.clone(),
                r.name.clone(),
                self.branch.clone(),
                outbox,
            );
        } else {
            drop(outbox);
        }
        let far = Duration::from_secs(365 * 24 * 3600);
        let every = self.pull_every.unwrap_or(far);
        let mut next_pull = if self.remote.is_some() {
            Instant::now()
        } else {
            Instant::now() + far
        };
        let mut next_tree = Instant::now();
        let mut warned = HashSet::new();
        let mut graph = CommitGraph::default();
        if !self.journal.is_empty() {
            self.push_soon(Instant::now());
        }
        loop {
            let mut wake = next_pull.min(next_tree);
            if self.replay.is_some() {
                // The next slice of a replay goes as soon as the writes that came are taken.
                wake = Instant::now();
            }
            // While a trip is out, nothing else can start: only its return or the watchdog.
            let timers = match self.in_flight {
                None => [self.push_at, self.fetch_after],
                Some(_) => [self.flight_due, None],
            };
            for t in timers.into_iter().flatten() {
                wake = wake.min(t);
            }
            let first = match inbox.recv_timeout(wake.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut jobs = Vec::new();
            for msg in first.into_iter().chain(inbox.try_iter()) {
                match msg {
                    Msg::Write(job) => jobs.push(*job),
                    Msg::Pull => self.fetch_wanted = true,
                    Msg::Settle(doubt, reply) if self.remote.is_none() => {
                        // Without a remote nothing is ever in doubt.
                        let _ = (doubt, reply.send(super::Settled::Lost));
                    }
                    Msg::Settle(doubt, reply) => {
                        self.settling.push((doubt, reply));
                        self.fetch_wanted = true;
                    }
                    Msg::Back(back) => self.arrived(back),
                    Msg::Stop => return,
                }
            }
            if !jobs.is_empty() {
                self.accept(jobs);
            }
            if self.remote.is_some() && Instant::now() >= next_pull {
                self.fetch_wanted = true;
                next_pull = Instant::now() + every;
            }
            if self.replay.is_some() && self.replay_slice() {
                let waiting = std::mem::take(&mut self.finished);
                self.caught_up(waiting);
            }
            self.watchdog();
            self.dispatch();
            if Instant::now() >= next_tree {
                next_tree = Instant::now() + self.bring_work_tree_up(&mut warned);
            }
            graph.keep_current(&self.repo, self.serving().as_deref());
        }
    }

    /// An async push of the journal, at `at` at the latest (not before a backoff ends).
    pub(super) fn push_soon(&mut self, at: Instant) {
        if self.remote.is_some() && self.mode == PushMode::Async {
            let at = self.push_not_before.map_or(at, |nb| at.max(nb));
            self.push_at = Some(self.push_at.map_or(at, |p| p.min(at)));
        }
    }

    /// Sends `trip` for `flight`. Should the remote thread be gone, the trip comes back
    /// failed at once; should it never come back, the watchdog fails it past its limit.
    pub(super) fn fly(&mut self, flight: Flight, trip: Trip) {
        let limit = match &trip {
            Trip::Fetch { limit } | Trip::Push { limit, .. } | Trip::Ask { limit } => *limit,
        };
        let failed = match &trip {
            Trip::Fetch { .. } => Back::Fetched(Err(RemoteError::Unreachable)),
            Trip::Push { .. } => Back::Pushed(Err(RemoteError::Unknown)),
            Trip::Ask { .. } => Back::Asked(None),
        };
        if matches!(trip, Trip::Push { .. }) {
            self.metrics.git_push_sent();
        }
        self.in_flight = Some(flight);
        self.flight_due = Some(Instant::now() + limit + WATCHDOG_SLACK);
        self.last_was_fetch = matches!(trip, Trip::Fetch { .. });
        let sent = self.courier.as_ref().is_some_and(|c| c.send(trip).is_ok());
        if !sent {
            tracing::error!("git mode's remote thread is gone");
            self.arrived(failed);
        }
    }

    /// A trip far past its own limit: the remote thread is stuck or gone.
    fn watchdog(&mut self) {
        if self.flight_due.is_some_and(|due| Instant::now() >= due) {
            tracing::error!("a trip to the remote never came back; taken as failed");
            let failed = match &self.in_flight {
                Some(Flight::Fetch) => Back::Fetched(Err(RemoteError::Unreachable)),
                Some(Flight::Ask(_)) => Back::Asked(None),
                Some(_) => Back::Pushed(Err(RemoteError::Unknown)),
                None => return,
            };
            self.arrived(failed);
        }
    }

    /// Starts the next trip, when none is out: a fetch someone waits for, or an async push,
    /// taking turns when both are due so that neither starves the other.
    fn dispatch(&mut self) {
        if self.in_flight.is_some() || self.remote.is_none() {
            return;
        }
        let now = Instant::now();
        // Not while a replay is under way: a newer tip would start it over.
        let fetch_due =
            self.fetch_wanted && self.replay.is_none() && self.fetch_after.is_none_or(|t| now >= t);
        let push_due = self.push_at.is_some_and(|t| now >= t);
        if fetch_due && !(push_due && self.last_was_fetch) {
            self.fetch_wanted = false;
            self.fetch_after = None;
            // A sync write past its time gets its answer now: none of it is on the remote.
            let (late, waiting): (Vec<Job>, Vec<Job>) = std::mem::take(&mut self.waiting)
                .into_iter()
                .partition(|j| self.mode == PushMode::Sync && j.deadline <= now);
            self.waiting = waiting;
            super::write::unreachable_now(late, &RemoteError::NotFastForward);
            let limit = self
                .waiting
                .iter()
                .filter(|_| self.mode == PushMode::Sync)
                .map(|j| j.deadline.saturating_duration_since(now))
                .min()
                .unwrap_or(self.push_timeout)
                .clamp(
                    Duration::from_secs(1),
                    self.push_timeout.max(Duration::from_secs(1)),
                );
            if !self.waiting.is_empty() {
                // A round of sync writes: this fetch, deciding, the push.
                self.round_started = now;
            }
            return self.fly(Flight::Fetch, Trip::Fetch { limit });
        }
        if push_due && self.replay.is_none() {
            self.push_at = None;
            let Some(tip) = self.local_tip.clone() else {
                return;
            };
            if self.journal.is_empty() || self.remote_tip.as_deref() == Some(tip.as_str()) {
                return;
            }
            if self.local_base != self.remote_tip {
                // The chain is not built on the remote's tip (a replay failed): pushing it
                // could bring back what a force-push removed. Rebuilt first, by meaning; the
                // push follows once the replay is over.
                if !self.start_replay() {
                    self.push_soon(now);
                    return;
                }
                // Served; the writes waiting for a fetch go on waiting for it.
                self.caught_up(Vec::new());
                if self.local_base != self.remote_tip {
                    self.retry_push_after_failure();
                    return;
                }
            }
            let (Some(tip), Some(base)) = (self.local_tip.clone(), self.local_base.clone()) else {
                return;
            };
            let covered = self.journal.entries().len();
            let limit = self.push_timeout;
            self.fly(
                Flight::Async {
                    tip: tip.clone(),
                    covered,
                },
                Trip::Push { tip, base, limit },
            );
        }
    }

    /// After a failed push: the next one waits out the backoff, whatever writes come.
    pub(super) fn retry_push_after_failure(&mut self) {
        let at = Instant::now() + self.backoff;
        self.push_at = Some(at);
        self.push_not_before = Some(at);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// A trip came back.
    fn arrived(&mut self, back: Back) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        self.flight_due = None;
        if matches!(back, Back::Pushed(_)) {
            self.metrics.git_push_returned();
        }
        match (flight, back) {
            (Flight::Fetch, Back::Fetched(result)) => self.fetched(result),
            (Flight::Sync(batch), Back::Pushed(result)) => self.sync_pushed(batch, result),
            (Flight::Ask(batch), Back::Asked(theirs)) => self.asked(batch, theirs),
            (Flight::Async { tip, covered }, Back::Pushed(result)) => {
                self.async_pushed(tip, covered, result)
            }
            _ => tracing::error!("git mode's remote thread answered another trip"),
        }
    }

    /// The tenants of the journal's first entries (those an async push carried).
    fn journal_tenants(&self, covered: std::ops::RangeTo<usize>) -> Vec<TenantId> {
        let entries = self.journal.entries();
        let mut tenants: Vec<TenantId> = entries
            .get(covered)
            .unwrap_or(entries)
            .iter()
            .map(|e| e.intent.tenant.clone())
            .collect();
        tenants.sort();
        tenants.dedup();
        tenants
    }

    /// What an async push of the journal did.
    fn async_pushed(&mut self, tip: String, covered: usize, result: Result<(), RemoteError>) {
        match result {
            Ok(()) => {
                self.metrics.git_push("ok");
                let _ = self.repo.set_ref(REMOTE_REF, Some(&tip));
                let pushed = self.journal_tenants(..covered);
                self.push_landed(&pushed);
                self.remote_tip = Some(tip.clone());
                self.local_base = Some(tip);
                // Writes taken while the push was out stay: they are on top of it.
                let rest = self
                    .journal
                    .entries()
                    .get(covered..)
                    .unwrap_or_default()
                    .to_vec();
                if let Err(e) = self.journal.replace(rest) {
                    tracing::error!(error = %e, "cannot rewrite the journal in state_dir");
                }
                self.backoff = Duration::from_secs(1);
                self.push_not_before = None;
                self.publish_view();
                if !self.journal.is_empty() {
                    self.push_soon(Instant::now());
                }
            }
            Err(RemoteError::NotFastForward) => {
                self.metrics.git_push("behind");
                // The replay happens when the fetch is back; the push follows at once.
                self.fetch_wanted = true;
                self.push_soon(Instant::now());
            }
            Err(e) => {
                self.metrics.git_push(match e {
                    RemoteError::Refused => "refused",
                    RemoteError::Unknown => "unknown",
                    _ => "unreachable",
                });
                tracing::warn!(error = %e, "cannot push keyward's writes; trying again later");
                self.push_failed(&self.journal_tenants(..covered), &e);
                self.retry_push_after_failure();
            }
        }
    }

    /// Fast-forwards the checked-out branch to the remote tip (no remote: the local chain)
    /// when the clone is quiet. Returns when to look again.
    fn bring_work_tree_up(&self, warned: &mut HashSet<String>) -> Duration {
        let target = match &self.remote {
            Some(_) => self.remote_tip.clone(),
            None => self.local_tip.clone(),
        };
        let (Some(target), Some(head)) = (target, self.repo.head()) else {
            return TREE_EVERY;
        };
        if head == target {
            return TREE_EVERY;
        }
        if !self.clone_is_quiet() {
            return Duration::from_millis(200);
        }
        if !self.repo.is_ancestor(&head, &target) {
            if warned.insert(head.clone()) {
                tracing::warn!(
                    "the clone's branch has commits the remote does not have; keyward leaves the work tree as it is"
                );
            }
            return TREE_EVERY * 5;
        }
        match super::serve::out_of_bounds(&self.repo, &target, &self.prefix) {
            Ok(false) => {}
            Ok(true) => {
                if warned.insert(format!("bounds {target}")) {
                    tracing::warn!(commit = %target,
                        "the remote's tip puts a symlink or a submodule where a tenants directory is; keyward leaves the work tree as it is");
                }
                return TREE_EVERY * 5;
            }
            Err(e) => {
                tracing::warn!(error = %e, stderr = e.stderr(), "cannot read the remote's tip");
                return TREE_EVERY * 5;
            }
        }
        // A marker in state_dir says a fast-forward of keyward's is running: a restart after
        // a kill finds it and removes the locks that fast-forward left, and only then.
        let marker = self.fast_forward_marker();
        let _ = std::fs::write(&marker, b"");
        let merged = self.repo.fast_forward(&target, &self.branch);
        let _ = std::fs::remove_file(&marker);
        match merged {
            Ok(()) => TREE_EVERY,
            Err(e) => {
                if warned.insert(format!("ff {head}")) {
                    tracing::warn!(error = %e, stderr = e.stderr(),
                        "cannot bring the work tree up to the remote (an uncommitted edit in the way?); keyward serves the remote all the same");
                }
                TREE_EVERY * 5
            }
        }
    }

    pub(super) fn fast_forward_marker(&self) -> PathBuf {
        self.state_dir.join("git").join("fast-forward-running")
    }

    /// No lock of git's is held in the clone, and none of the files a checkout, pull or
    /// fetch writes changed in the last `QUIET`.
    fn clone_is_quiet(&self) -> bool {
        let Some(dir) = self.repo.git_dir() else {
            return false;
        };
        let branch = format!("refs/heads/{}", self.branch);
        let locks = [
            "index.lock",
            "HEAD.lock",
            "ORIG_HEAD.lock",
            "packed-refs.lock",
        ]
        .map(|f| dir.join(f));
        if locks.iter().any(|l| l.exists()) || dir.join(format!("{branch}.lock")).exists() {
            return false;
        }
        let mut watched: Vec<PathBuf> = ["index", "HEAD", "FETCH_HEAD", "ORIG_HEAD", "packed-refs"]
            .iter()
            .map(|f| dir.join(f))
            .collect();
        watched.push(dir.join(&branch));
        if let Some(r) = &self.remote {
            watched.push(dir.join(format!("refs/remotes/{}/{}", r.name, self.branch)));
        }
        !watched.iter().any(|p| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < QUIET)
        })
    }
}

/// git's commit-graph, rewritten in the background when the served commit changed, at
/// most once every `GRAPH_EVERY`, one run at a time: history stays fast at scale.
#[derive(Default)]
struct CommitGraph {
    written_for: Option<String>,
    last: Option<Instant>,
    running: Option<std::thread::JoinHandle<()>>,
}

const GRAPH_EVERY: Duration = Duration::from_secs(30);

impl CommitGraph {
    fn keep_current(&mut self, repo: &crate::git::Repo, tip: Option<&str>) {
        if self.running.as_ref().is_some_and(|r| !r.is_finished()) {
            return;
        }
        let due = self.last.is_none_or(|t| t.elapsed() >= GRAPH_EVERY);
        if !due || tip.is_none() || self.written_for.as_deref() == tip {
            return;
        }
        self.written_for = tip.map(str::to_owned);
        self.last = Some(Instant::now());
        let repo = repo.clone();
        self.running = Some(std::thread::spawn(move || {
            if let Err(e) = repo.write_commit_graph() {
                tracing::debug!(error = %e, stderr = e.stderr(), "cannot write git's commit-graph");
            }
        }));
    }
}
