//! Git mode: REST and git as two writers of one history (README, "Git mode").
//!
//! Every API write is one commit of that tenant's file, authored by its principal. keyward
//! keeps its own state in refs of its own and never in the checked-out branch or
//! `.git/index`, so ops' tooling on the same clone (a deploy job's `git pull --ff-only` or
//! `git reset --hard`, a person's `git status`) neither races keyward nor is raced by it:
//! - `refs/keyward/remote`: the remote branch as keyward last fetched or pushed it;
//! - `refs/keyward/local`: that plus keyward's acknowledged writes the remote lacks (async);
//! - the served commit is the newest one keyward knows to hold every acknowledged write:
//!   the remote tip (`sync`), or the local chain built on it (`async`, no remote). The index
//!   is loaded from that commit's objects, never from the work tree, which keyward brings
//!   up to the remote tip when the clone is quiet.
//!
//! One worker thread does all git work, in this order of files:
//! - [`open`]: checks the clone and repairs what a crash left, and the first served commit;
//! - [`write`]: takes the writes queued since its last round as one batch and answers each
//!   from what became of it; [`decide`] decides each by meaning on the tip just fetched and
//!   builds its file; [`push`] commits the batch with `git fast-import` and pushes its last
//!   commit (`sync`);
//! - [`replay`]: a new remote tip: rewrites of its history reported, journalled writes
//!   decided again by meaning on it, the ones that no longer apply dropped and reported;
//! - [`sync`]: the worker's loop (pulls on a timer, the webhook and SIGHUP; async pushes
//!   with backoff; the work tree brought forward when the clone is quiet), and
//!   [`courier`], the thread that makes its trips to the remote;
//! - [`serve`]: a commit's tenant files into the index;
//! - [`history`]: a tenant's file history from `git log`, which needs no worker;
//! - [`reapply`]: `keyward git reapply`, writes a force-push removed applied again.
//!
//! Requests never wait on that worker except for their own write: status, history and
//! verification read what it last published.

mod courier;
mod decide;
mod history;
mod journal;
mod open;
mod push;
mod reapply;
mod replay;
pub mod report;
mod serve;
mod sync;
mod write;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use time::OffsetDateTime;

pub use history::{History, HistoryCursor, HistoryEntry};
pub use journal::JournalError;
pub use open::Opened;
pub use reapply::reapply;
pub use replay::Settled;
pub use report::Report;

use super::intent::Intent;
use super::publish::Publisher;
use super::{Error, GitFailure};
use crate::clock::Clock;
use crate::config::PushMode;
use crate::domain::{KeyEntry, TenantId};
use crate::git::{RemoteError, Repo};
use crate::metrics::Metrics;
use crate::store::render;

/// A write git mode has applied: the created or replaced entry as committed.
#[derive(Debug)]
pub struct Applied {
    pub entry: Option<KeyEntry>,
}

/// What a tenant's status shows of git mode: every field about that tenant only.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitStatus {
    /// The last commit that touched the tenant's file in what this replica serves.
    #[schema(required = true)]
    pub head: Option<String>,
    /// The last commit that touched it on the remote branch as last fetched.
    #[schema(required = true)]
    pub remote_head: Option<String>,
    /// The tenant's acknowledged writes the remote does not have yet.
    pub unpushed: usize,
    #[schema(required = true, format = DateTime)]
    pub last_pull_at: Option<String>,
    /// Seconds since the last successful fetch.
    #[schema(required = true)]
    pub last_pull_age_seconds: Option<u64>,
    /// The last failure to reach the remote, in keyward's words (never git's).
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// The tenant's acknowledged writes that no longer applied on the remote's head.
    pub dropped: Vec<Report>,
    /// The tenant's acknowledged writes that a rewrite of the remote's history removed.
    pub rewritten: Vec<Report>,
}

/// What the worker publishes for requests to read without waiting on it.
#[derive(Default)]
struct View {
    tenants: HashSet<TenantId>,
    served: Option<String>,
    remote: Option<String>,
    unpushed: HashMap<TenantId, usize>,
    last_pull: Option<(OffsetDateTime, Instant)>,
    /// Why the last fetch failed: every tenant's keys may be stale while it lasts.
    fetch_error: Option<RemoteError>,
    /// Why the last push of a tenant's writes failed: that tenant's only, since a hook's
    /// refusal of one tenant's write says nothing about another's.
    push_errors: HashMap<TenantId, RemoteError>,
    dropped: Option<report::Reports>,
    rewritten: Option<report::Reports>,
}

/// One write waiting for the worker.
struct Job {
    intent: Intent,
    /// Past it a `sync` write is answered with what keyward knows then.
    deadline: Instant,
    reply: tokio::sync::oneshot::Sender<Result<Applied, Error>>,
    /// How often its push lost to another writer's (it is decided again each time).
    rounds: u32,
}

enum Msg {
    Write(Box<Job>),
    Pull,
    Settle(
        crate::keys::idempotency::Doubt,
        tokio::sync::oneshot::Sender<Settled>,
    ),
    /// A trip to the remote came back.
    Back(courier::Back),
    Stop,
}

/// The handle the keys service holds: queues writes for the worker, and reads what it
/// published.
pub struct Replicator {
    repo: Repo,
    prefix: String,
    mode: PushMode,
    push_timeout: Duration,
    inbox: Mutex<Option<mpsc::Sender<Msg>>>,
    view: Arc<Mutex<View>>,
}

/// The worker's state: everything git, owned by one thread.
struct Engine {
    repo: Repo,
    /// `tenants_dir` relative to the top of the work tree (`""` at the top).
    prefix: String,
    remote: Option<Remote>,
    branch: String,
    mode: PushMode,
    push_timeout: Duration,
    pull_every: Option<Duration>,
    publisher: Arc<Publisher>,
    metrics: Arc<Metrics>,
    clock: Clock,
    journal: journal::Journal,
    /// The remote branch as last fetched or pushed (`refs/keyward/remote`).
    remote_tip: Option<String>,
    /// The remote tip plus the journalled writes (`refs/keyward/local`).
    local_tip: Option<String>,
    /// The remote tip the local chain was last built on.
    local_base: Option<String>,
    /// A rebuild of the local chain on a newer remote tip, under way.
    replay: Option<replay::Replay>,
    /// The writes that waited for the fetch of a replay just over, to be decided.
    finished: Vec<Job>,
    /// The commit the index holds, and its tenant files.
    served: serve::Served,
    view: Arc<Mutex<View>>,
    /// Idempotency keys (scope -> body digest) of keyward's commits on the remote.
    applied: HashMap<String, String>,
    state_dir: std::path::PathBuf,
    /// The remote thread's trips, one out at a time (none with no remote).
    courier: Option<mpsc::Sender<courier::Trip>>,
    in_flight: Option<write::Flight>,
    /// Writes that wait for a fresh remote tip.
    waiting: Vec<Job>,
    /// Retries of writes answered `outcome_unknown`, waiting for a fresh remote tip.
    settling: Vec<(
        crate::keys::idempotency::Doubt,
        tokio::sync::oneshot::Sender<Settled>,
    )>,
    fetch_wanted: bool,
    /// Not before: a push that lost waits a moment before trying again.
    fetch_after: Option<Instant>,
    /// When the journal is pushed next (`async`).
    push_at: Option<Instant>,
    /// Between failed async pushes: 1 s doubling to 60 s.
    backoff: Duration,
    /// After a failed push, no push before this, whatever writes come.
    push_not_before: Option<Instant>,
    /// When the trip out is past its own limit by far (the watchdog).
    flight_due: Option<Instant>,
    /// The last trip was a fetch: a due push goes next.
    last_was_fetch: bool,
    /// Tenant texts at the chain's tip, so a batch on it reads nothing from git.
    texts: write::Texts,
    /// Until when other writers are known to push to the remote: a replica that just won a
    /// push then lets the others have a turn.
    contended_until: Option<Instant>,
    /// What the last round of sync writes took, from its fetch to its push landing.
    push_took: Duration,
    round_started: Instant,
}

/// The remote keyward fetches from and pushes to.
struct Remote {
    name: String,
}

impl Replicator {
    /// Opens the clone, repairs what a crash left, serves its first commit and starts the
    /// worker. Blocking: start-up calls it before the first request.
    pub fn start(opened: Opened) -> Arc<Self> {
        let (tx, rx) = mpsc::channel();
        let engine = opened.engine;
        let replicator = Arc::new(Self {
            repo: engine.repo.clone(),
            prefix: engine.prefix.clone(),
            mode: engine.mode,
            push_timeout: engine.push_timeout,
            inbox: Mutex::new(Some(tx)),
            view: engine.view.clone(),
        });
        sync::spawn_worker(engine, rx, replicator_outbox(&replicator));
        sync::pull_on_hangup(&replicator);
        replicator
    }

    pub fn mode(&self) -> PushMode {
        self.mode
    }

    /// Queues one write and waits for its answer.
    pub async fn write(&self, intent: Intent) -> Result<Applied, Error> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            intent,
            deadline: Instant::now() + self.push_timeout,
            reply,
            rounds: 0,
        };
        self.send(Msg::Write(Box::new(job)))?;
        answer.await.map_err(|_| GitFailure::WorkerStopped)?
    }

    /// Finds out, fetching now, what became of a write answered `outcome_unknown`.
    pub async fn settle(&self, doubt: crate::keys::idempotency::Doubt) -> Settled {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.send(Msg::Settle(doubt, reply)).is_err() {
            return Settled::Unknown;
        }
        answer.await.unwrap_or(Settled::Unknown)
    }

    /// Asks for a pull now (the webhook, SIGHUP); never waits.
    pub fn pull_now(&self) {
        let _ = self.send(Msg::Pull);
    }

    /// Lets the worker finish what it holds and stop.
    pub fn stop(&self) {
        if let Some(inbox) = self.inbox.lock().take() {
            let _ = inbox.send(Msg::Stop);
        }
    }

    fn send(&self, msg: Msg) -> Result<(), Error> {
        let inbox = self.inbox.lock();
        let sent = inbox.as_ref().map(|tx| tx.send(msg).is_ok());
        match sent {
            Some(true) => Ok(()),
            _ => Err(GitFailure::WorkerStopped.into()),
        }
    }

    /// Is `tenant` a tenant in the served commit?
    pub fn has_tenant(&self, tenant: &TenantId) -> bool {
        self.view.lock().tenants.contains(tenant)
    }

    /// The tenant's git status, from what the worker last published; the two heads come
    /// from `git log` on refs, which never waits on a push.
    pub fn status(&self, tenant: &TenantId) -> GitStatus {
        let (served, remote, unpushed, last_pull, last_error, dropped, rewritten) = {
            let v = self.view.lock();
            (
                v.served.clone(),
                v.remote.clone(),
                v.unpushed.get(tenant).copied().unwrap_or(0),
                v.last_pull,
                v.push_errors
                    .get(tenant)
                    .or(v.fetch_error.as_ref())
                    .map(ToString::to_string),
                v.dropped.as_ref().map(|r| r.of(tenant)).unwrap_or_default(),
                v.rewritten
                    .as_ref()
                    .map(|r| r.of(tenant))
                    .unwrap_or_default(),
            )
        };
        let path = file_path(&self.prefix, tenant);
        let touched = |tip: Option<String>| {
            let tip = tip?;
            let log = self.repo.log(&tip, &[], Some(&path), Some(1), None).ok()?;
            log.into_iter().next().map(|c| c.id)
        };
        GitStatus {
            head: touched(served),
            remote_head: touched(remote),
            unpushed,
            last_pull_at: last_pull.map(|(at, _)| render::timestamp(at)),
            last_pull_age_seconds: last_pull.map(|(_, when)| when.elapsed().as_secs()),
            last_error,
            dropped,
            rewritten,
        }
    }

    /// One page of the tenant's file history in the served commit, newest first.
    pub fn history(
        &self,
        tenant: &TenantId,
        key: Option<&crate::domain::KeyName>,
        limit: usize,
        cursor: Option<HistoryCursor>,
    ) -> Result<History, Error> {
        let tip = self.view.lock().served.clone();
        let tip = tip.ok_or(GitFailure::NothingServed)?;
        history::history(&self.repo, &self.prefix, &tip, tenant, key, limit, cursor)
    }
}

/// A replicator dropped without `stop` stops its worker too (the remote thread holds a
/// sender of the worker's inbox, which would otherwise never close).
impl Drop for Replicator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A sender into the worker's inbox, for its remote thread.
fn replicator_outbox(replicator: &Replicator) -> mpsc::Sender<Msg> {
    let inbox = replicator.inbox.lock();
    match inbox.as_ref() {
        Some(tx) => tx.clone(),
        // Never: the inbox is open until `stop`.
        None => mpsc::channel().0,
    }
}

/// The path of a tenant's file from the top of the work tree.
fn file_path(prefix: &str, tenant: &TenantId) -> String {
    if prefix.is_empty() {
        format!("{tenant}/{}", crate::store::FILE_NAME)
    } else {
        format!("{prefix}/{tenant}/{}", crate::store::FILE_NAME)
    }
}

impl Engine {
    /// Publishes what status shows; short, so readers never wait long.
    fn publish_view(&self) {
        let mut unpushed: HashMap<TenantId, usize> = HashMap::new();
        for e in self.journal.entries() {
            *unpushed.entry(e.intent.tenant.clone()).or_default() += 1;
        }
        self.metrics
            .git_unpushed_writes(self.journal.entries().len());
        let mut v = self.view.lock();
        v.tenants = self.served.tenants().cloned().collect();
        v.served = self.served.commit.clone();
        v.remote = self.remote_tip.clone();
        v.unpushed = unpushed;
    }

    fn fetch_failed(&self, error: RemoteError) {
        self.view.lock().fetch_error = Some(error);
    }

    /// A push of these tenants' writes failed: their status says so, no other's.
    fn push_failed<'a>(
        &self,
        tenants: impl IntoIterator<Item = &'a TenantId>,
        error: &RemoteError,
    ) {
        let mut v = self.view.lock();
        for t in tenants {
            v.push_errors.insert(t.clone(), error.clone());
        }
    }

    /// A push of these tenants' writes landed: the remote is reached and takes them.
    fn push_landed<'a>(&self, tenants: impl IntoIterator<Item = &'a TenantId>) {
        self.metrics.git_push_succeeded();
        let mut v = self.view.lock();
        v.fetch_error = None;
        for t in tenants {
            v.push_errors.remove(t);
        }
    }

    /// The remote answered a fetch: an error about reaching it is over (a refusal of a
    /// push by its policy is not, until that tenant's push lands).
    fn reached_remote(&self) {
        let mut v = self.view.lock();
        v.fetch_error = None;
        v.push_errors.retain(|_, e| *e == RemoteError::Refused);
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }
}
