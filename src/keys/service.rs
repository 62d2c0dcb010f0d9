//! The keys application service: `Service` itself, what it is built from, and what the
//! flows share. Each flow adds its own `impl Service` in a file of its own: `reads.rs`,
//! `writes.rs` and `reload.rs`.

use std::sync::Arc;

use tracing::Span;

use super::Error;
use super::idempotency::{Doubt, Idempotency};
use super::publish::Publisher;
use super::replication::{Opened, Replicator, Settled};
use crate::clock::Clock;
use crate::config::GitSettings;
use crate::domain::{TenantId, TokenPrefix};
use crate::index::Index;
use crate::last_good::LastGood;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimits;
use crate::store::Store;

pub struct Service {
    pub(super) store: Arc<Store>,
    pub(super) index: Arc<Index>,
    pub(super) publisher: Arc<Publisher>,
    /// Git mode's step between the store and the index.
    pub(super) git: Option<Arc<Replicator>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) clock: Clock,
    pub(super) prefix: TokenPrefix,
    pub(super) max_keys: usize,
    /// First answers of requests that carried an `Idempotency-Key`.
    pub(super) idempotency: Idempotency,
    pub(super) history_slots: Arc<tokio::sync::Semaphore>,
}

/// How many history requests run at once.
const HISTORY_AT_ONCE: usize = 4;

impl Service {
    /// `limits`: where the limiters of limited keys come from (in memory, or held across
    /// replicas), made by start-up with the rest of the wiring.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<Store>,
        index: Arc<Index>,
        last_good: LastGood,
        metrics: Arc<Metrics>,
        clock: Clock,
        prefix: TokenPrefix,
        max_keys: usize,
        limits: RateLimits,
    ) -> Self {
        let publisher = Arc::new(Publisher::new(
            store.clone(),
            index.clone(),
            last_good,
            limits,
        ));
        Self {
            store,
            index,
            publisher,
            git: None,
            metrics,
            clock,
            prefix,
            max_keys,
            idempotency: Idempotency::default(),
            history_slots: Arc::new(tokio::sync::Semaphore::new(HISTORY_AT_ONCE)),
        }
    }

    /// Where the first answer of each `Idempotency-Key` is kept.
    pub fn idempotency(&self) -> &Idempotency {
        &self.idempotency
    }

    /// What became of a write answered `outcome_unknown` (git mode; else nothing is ever
    /// unknown).
    pub async fn settle(&self, doubt: Doubt) -> Settled {
        match &self.git {
            Some(git) => git.settle(doubt).await,
            None => Settled::Lost,
        }
    }

    /// Git mode: opens the clone, serves its commit, and starts the worker that every write
    /// then goes through (commit, push) before the index. Blocking.
    pub fn with_git(
        mut self,
        tenants_dir: &std::path::Path,
        state_dir: &std::path::Path,
        settings: &GitSettings,
    ) -> anyhow::Result<Self> {
        let opened = Opened::open(
            tenants_dir,
            state_dir,
            settings,
            self.publisher.clone(),
            self.metrics.clone(),
            self.clock.clone(),
        )?;
        self.git = Some(Replicator::start(opened));
        Ok(self)
    }

    pub fn git(&self) -> Option<&Arc<Replicator>> {
        self.git.as_ref()
    }

    /// Git mode: fetch and follow the remote now (the webhook, SIGHUP); never waits.
    pub fn pull_now(&self) {
        if let Some(git) = &self.git {
            git.pull_now();
        }
    }

    pub fn index(&self) -> &Arc<Index> {
        &self.index
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// In git mode, a tenant of the served commit; else a tenant directory on disk.
    pub fn tenant_exists(&self, tenant: &TenantId) -> bool {
        match &self.git {
            Some(git) => git.has_tenant(tenant),
            None => self.store.tenant_exists(tenant),
        }
    }
}

/// Runs blocking work on Tokio's blocking pool, inside the current span.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let span = Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(Error::Task)?
}
