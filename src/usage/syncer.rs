//! The loop that shares `lastUsedAt` through Redis: every `EVERY`, push the uses this
//! replica saw since its last push, then pull what any replica pushed since the last pull
//! and apply it to the index as a maximum (so the order of pushes never matters).
//!
//! A use made through any replica shows on every other within two cycles and a round trip
//! (about a second; at most 2 s while Redis answers). Verification never waits on any of
//! it: the index notes uses (`RecentUses`), and this loop takes them off it.
//!
//! With Redis down, uses wait in `pending` (one entry per key, its latest use: bounded by
//! the number of keys, however long the outage) and go out with the first push that
//! works; meanwhile each replica shows the uses it saw itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::link::RedisLink;
use super::shared::{self, CHANGES_KEPT};
use crate::domain::TenantId;
use crate::index::{Index, RecentUses, TenantKeys};
use crate::metrics::Metrics;

/// How often uses are pushed and pulled.
pub const EVERY: Duration = Duration::from_millis(500);
/// How far a pull reaches back before the previous one began, in seconds: for a push that
/// was in flight then, and for replicas' clocks that differ by a second or so.
const MARGIN: i64 = 2;
/// The longest shutdown waits for the last push.
const LAST_PUSH: Duration = Duration::from_secs(3);

pub struct Syncer {
    link: Arc<RedisLink>,
    index: Arc<Index>,
    uses: Arc<RecentUses>,
    metrics: Arc<Metrics>,
    /// Member -> latest use, not yet pushed.
    pending: HashMap<String, i64>,
    /// When the last successful pull began (Unix seconds); None: never, read everything.
    pulled_at: Option<i64>,
}

/// The running loop; `finish` stops it after one last push.
pub struct SyncTask {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Syncer {
    pub fn new(link: Arc<RedisLink>, index: Arc<Index>, metrics: Arc<Metrics>) -> Self {
        let uses = index.share_uses();
        Self {
            link,
            index,
            uses,
            metrics,
            pending: HashMap::new(),
            pulled_at: None,
        }
    }

    /// Runs the loop on the current runtime until `SyncTask::finish`.
    pub fn spawn(self) -> SyncTask {
        let (stop, stopped) = oneshot::channel();
        SyncTask {
            stop,
            task: tokio::spawn(self.run(stopped)),
        }
    }

    async fn run(mut self, mut stopped: oneshot::Receiver<()>) {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.cycle().await,
                _ = &mut stopped => break,
            }
        }
        self.take_uses();
        if !self.pending.is_empty() {
            let _ = self.push(&mut self.link.connection()).await;
        }
    }

    /// One push, then one pull; the link and the metrics hear how it went.
    async fn cycle(&mut self) {
        self.take_uses();
        let mut conn = self.link.connection();
        let outcome = match self.push(&mut conn).await {
            Ok(()) => self.pull(&mut conn).await,
            Err(e) => Err(e),
        };
        self.metrics.usage_store_up(outcome.is_ok());
        match outcome {
            Ok(()) => self.link.succeeded(),
            Err(e) => self.link.failed(&e),
        }
    }

    /// Moves the uses the index noted into `pending`, one entry per key.
    fn take_uses(&mut self) {
        for used in self.uses.take() {
            let at = self
                .pending
                .entry(shared::member(&used.tenant, &used.key.name))
                .or_insert(used.at);
            *at = (*at).max(used.at);
        }
    }

    async fn push(&mut self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match shared::push(conn, &self.pending, unix_now()).await {
            Ok(()) => {
                self.metrics.usage_pushed(self.pending.len());
                self.pending.clear();
                Ok(())
            }
            Err(e) => {
                self.metrics.usage_push_failed();
                Err(e)
            }
        }
    }

    async fn pull(&mut self, conn: &mut ConnectionManager) -> redis::RedisResult<()> {
        let started = unix_now();
        let found = match self.pulled_at {
            Some(at) if started - at < CHANGES_KEPT - MARGIN => {
                shared::changed_since(conn, at - MARGIN).await?
            }
            // First pull, or the changes log has forgotten what happened since the last.
            _ => shared::everything(conn).await?,
        };
        apply(&self.index, &found);
        self.pulled_at = Some(started);
        Ok(())
    }
}

impl SyncTask {
    /// Stops the loop and waits (a little) for its last push.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(LAST_PUSH, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Applies last uses read from Redis: a key's last use only ever moves forward, and keys
/// this replica does not serve are skipped.
fn apply(index: &Index, found: &[(String, i64)]) {
    let mut tenants: HashMap<TenantId, Option<Arc<TenantKeys>>> = HashMap::new();
    for (member, at) in found {
        let Some((tenant, name)) = shared::parse_member(member) else {
            continue;
        };
        let keys = tenants.entry(tenant).or_insert_with_key(|t| index.keys(t));
        if let Some(key) = keys.as_ref().and_then(|k| k.get(&name)) {
            key.restore_last_used(*at);
        }
    }
}

fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}
