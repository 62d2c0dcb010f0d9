use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use time::OffsetDateTime;
use tracing::Span;

use super::Error;
use super::command::{Actor, CreateKey, KeyChanges, KeyFilter, Rotation, Target};
use super::idempotency::{Doubt, Idempotency};
use super::intent::{Intent, What, check_can_grant, check_lifetime};
use super::publish::{Publisher, Reloaded};
use super::replication::{Opened, Replicator, Settled};
use crate::clock::Clock;
use crate::config::GitSettings;
use crate::domain::{FieldError, KeyEntry, KeyHash, KeyName, TenantId, Token, TokenPrefix};
use crate::index::{Index, TenantKeys};
use crate::last_good::LastGood;
use crate::lint;
use crate::metrics::Metrics;
use crate::store::{FileProblem, Store};

/// A key as stored, with when it was last used.
#[derive(Debug, Clone)]
pub struct KeyState {
    pub entry: Arc<KeyEntry>,
    pub last_used: Option<OffsetDateTime>,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    pub keys: Vec<KeyState>,
    /// The last name of this page, when more keys follow.
    pub next: Option<KeyName>,
}

/// A key and its new token: shown once, never stored.
#[derive(Debug)]
pub struct Issued {
    pub key: KeyState,
    pub token: Token,
    /// A rotation's answer: when the grace tokens it ended would have ended.
    pub ended_grace: Vec<OffsetDateTime>,
}

/// What the status endpoint says about one tenant's file.
#[derive(Debug, Clone)]
pub struct TenantStatus {
    pub keys: usize,
    pub keys_from: KeysFrom,
    pub problem: Option<FileProblem>,
    pub read_only: bool,
    pub loaded_at: Option<OffsetDateTime>,
    pub checked_at: OffsetDateTime,
}

/// Where the keys a tenant serves come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeysFrom {
    /// The tenant's file, as last loaded valid (or no file: no keys).
    File,
    /// The last valid version kept in `state_dir`: the file was invalid when keyward
    /// started, and has not been valid since.
    LastGood { saved_at: Option<OffsetDateTime> },
}

/// A tenant that loaded: the hashes it did not have, and whether its keys came from its
/// last-good snapshot (the file unchanged since) rather than from parsing the file.
struct Fresh {
    added: Vec<KeyHash>,
    from_snapshot: bool,
}

/// A create, update or rotation whose entry is not in the file it wrote: a bug, never input.
const MISSING_ENTRY: Error = Error::Store(crate::store::StoreError::EditMismatch);

/// Up to this many tenants loaded at once are checked one by one for hashes shared with
/// other tenants; more are checked in one pass over the whole index.
const SHARED_CHECK_PER_TENANT: usize = 64;

pub struct Service {
    store: Arc<Store>,
    index: Arc<Index>,
    publisher: Arc<Publisher>,
    /// Git mode's step between the store and the index.
    git: Option<Arc<Replicator>>,
    metrics: Arc<Metrics>,
    clock: Clock,
    prefix: TokenPrefix,
    max_keys: usize,
    /// First answers of requests that carried an `Idempotency-Key`.
    idempotency: Idempotency,
    history_slots: Arc<tokio::sync::Semaphore>,
}

/// How many history requests run at once.
const HISTORY_AT_ONCE: usize = 4;

impl Service {
    pub fn new(
        store: Arc<Store>,
        index: Arc<Index>,
        last_good: LastGood,
        metrics: Arc<Metrics>,
        clock: Clock,
        prefix: TokenPrefix,
        max_keys: usize,
    ) -> Self {
        let publisher = Arc::new(Publisher::new(store.clone(), index.clone(), last_good));
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

    /// Git mode: the tenant's git status, about that tenant only.
    pub async fn git_status(&self, tenant: &TenantId) -> Option<super::GitStatus> {
        let git = self.git.clone()?;
        let t = tenant.clone();
        blocking(move || Ok(git.status(&t))).await.ok()
    }

    /// One page of the tenant's file history from git. At most `HISTORY_AT_ONCE` run at
    /// once: past that, `Busy` (a reader cannot pin the CPUs with many).
    pub async fn history(
        &self,
        tenant: &TenantId,
        key: Option<KeyName>,
        limit: usize,
        cursor: Option<super::HistoryCursor>,
    ) -> Result<super::History, Error> {
        let git = self.git.clone().ok_or(Error::NotGitMode)?;
        if !self.tenant_exists(tenant) {
            return Err(Error::TenantNotFound);
        }
        let slot = self
            .history_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Error::Busy)?;
        let t = tenant.clone();
        blocking(move || {
            let _slot = slot;
            git.history(&t, key.as_ref(), limit, cursor)
        })
        .await
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

    // ---- reads -------------------------------------------------------------------------

    /// A tenant's keys, loading the tenant first if it appeared since the last scan.
    pub async fn keys(&self, tenant: &TenantId) -> Result<Arc<TenantKeys>, Error> {
        if let Some(keys) = self.index.keys(tenant) {
            return Ok(keys);
        }
        if self.git.is_some() {
            // git mode serves commits: a tenant the served one lacks is not there.
            return Err(Error::TenantNotFound);
        }
        let (publisher, t) = (self.publisher.clone(), tenant.clone());
        blocking(move || Ok(publisher.load(&t)?)).await?;
        self.index.keys(tenant).ok_or(Error::TenantNotFound)
    }

    /// One page of a tenant's keys in name order, filtered; `next` is where the following
    /// page starts after, when there is one.
    pub async fn list(&self, tenant: &TenantId, filter: &KeyFilter) -> Result<Page, Error> {
        let keys = self.keys(tenant).await?;
        let now = self.clock.now();
        let mut matching = keys.iter().filter(|k| {
            let e = &k.entry;
            filter.after.as_ref().is_none_or(|a| &e.name > a)
                && filter
                    .name_contains
                    .as_deref()
                    .is_none_or(|q| e.name.as_str().contains(q))
                && filter.enabled.is_none_or(|on| e.enabled == on)
                && filter.expired.is_none_or(|x| e.is_expired(now) == x)
        });
        let limit = filter.limit.unwrap_or(usize::MAX);
        let keys: Vec<KeyState> = matching
            .by_ref()
            .take(limit)
            .map(|k| KeyState {
                entry: k.entry.clone(),
                last_used: k.last_used(),
            })
            .collect();
        let more = matching.next().is_some();
        let next = more
            .then(|| keys.last().map(|k| k.entry.name.clone()))
            .flatten();
        Ok(Page { keys, next })
    }

    pub async fn key(&self, tenant: &TenantId, name: &KeyName) -> Result<KeyState, Error> {
        let keys = self.keys(tenant).await?;
        let key = keys.get(name).ok_or(Error::KeyNotFound)?;
        Ok(KeyState {
            entry: key.entry.clone(),
            last_used: key.last_used(),
        })
    }

    pub async fn status(&self, tenant: &TenantId) -> Result<TenantStatus, Error> {
        let keys = self.keys(tenant).await?;
        let health = self.store.health(tenant).ok_or(Error::TenantNotFound)?;
        let kept = self.publisher.kept_in_use.lock().get(tenant).copied();
        Ok(TenantStatus {
            keys: keys.len(),
            keys_from: match kept {
                None => KeysFrom::File,
                Some(saved_at) => KeysFrom::LastGood { saved_at },
            },
            problem: health.problem,
            read_only: health.read_only || self.store.is_read_only(),
            loaded_at: health.loaded_at,
            checked_at: health.checked_at,
        })
    }

    // ---- the write flow ----------------------------------------------------------------

    pub async fn create(&self, actor: &Actor, cmd: CreateKey) -> Result<Issued, Error> {
        self.check_expiry(cmd.expires_at)?;
        check_can_grant(actor.key.as_ref(), &cmd.permissions)?;
        check_lifetime(actor.key.as_ref(), cmd.expires_at)?;
        let token = Token::generate(&self.prefix);
        let entry = KeyEntry {
            name: cmd.name,
            hash: token.hash(),
            enabled: cmd.enabled,
            permissions: cmd.permissions,
            description: cmd.description,
            created_at: Some(self.clock.now_seconds()),
            created_by: actor.subject.clone(),
            expires_at: cmd.expires_at,
            previous_hashes: Vec::new(),
        };
        let name = entry.name.clone();
        let what = What::Create {
            entry,
            max_keys: self.max_keys,
        };
        let entry = self.write(self.intent(actor, &name, what)).await;
        let entry = match entry {
            Ok(entry) => entry.ok_or(MISSING_ENTRY)?,
            Err(e) => return Err(with_token(e, token)),
        };
        tracing::info!(actor = actor.name(), key = %entry.name, "key created");
        Ok(Issued {
            key: self.state_of(actor, entry),
            token,
            ended_grace: Vec::new(),
        })
    }

    pub async fn update(
        &self,
        actor: &Actor,
        target: Target,
        changes: KeyChanges,
    ) -> Result<KeyState, Error> {
        if let crate::keys::Patch::Set(t) = changes.expires_at {
            self.check_expiry(Some(t))?;
        }
        if let Some(p) = &changes.permissions {
            check_can_grant(actor.key.as_ref(), p)?;
        }
        let what = What::Update {
            if_match: target.if_match,
            fields: changes.into(),
            narrowed: false,
        };
        let entry = self
            .write(self.intent(actor, &target.name, what))
            .await?
            .ok_or(MISSING_ENTRY)?;
        tracing::info!(actor = actor.name(), key = %entry.name, "key updated");
        Ok(self.state_of(actor, entry))
    }

    /// A new token for the key; the old one keeps working for the grace period, never
    /// beyond the key's own expiry.
    pub async fn rotate(
        &self,
        actor: &Actor,
        target: Target,
        rotation: Rotation,
    ) -> Result<Issued, Error> {
        let grace = rotation.grace;
        // The key as this server serves it now: what the rotation ended is told against it.
        let before = self
            .index
            .keys(&actor.tenant)
            .and_then(|keys| Some(keys.get(&target.name)?.entry.clone()));
        let token = Token::generate(&self.prefix);
        let what = What::Rotate {
            if_match: target.if_match,
            hash: token.hash(),
            grace_until: (!grace.is_zero()).then(|| self.clock.now_seconds() + grace),
        };
        let entry = self.write(self.intent(actor, &target.name, what)).await;
        let entry = match entry {
            Ok(entry) => entry.ok_or(MISSING_ENTRY)?,
            Err(e) => return Err(with_token(e, token)),
        };
        let ended_grace = ended_grace(before.as_deref(), &entry, self.clock.now());
        tracing::info!(actor = actor.name(), key = %entry.name, grace_seconds = grace.as_secs(),
            ended_grace_tokens = ended_grace.len(), "key rotated");
        Ok(Issued {
            key: self.state_of(actor, entry),
            token,
            ended_grace,
        })
    }

    /// Every token a rotation left in its grace period stops working now (the owner's early
    /// end to a grace period, say after a leak).
    pub async fn end_grace(&self, actor: &Actor, target: Target) -> Result<KeyState, Error> {
        let what = What::EndGrace {
            if_match: target.if_match,
        };
        let entry = self
            .write(self.intent(actor, &target.name, what))
            .await?
            .ok_or(MISSING_ENTRY)?;
        tracing::info!(actor = actor.name(), key = %entry.name, "grace tokens ended");
        Ok(self.state_of(actor, entry))
    }

    pub async fn delete(&self, actor: &Actor, target: Target) -> Result<(), Error> {
        let what = What::Delete {
            if_match: target.if_match,
        };
        self.write(self.intent(actor, &target.name, what)).await?;
        tracing::info!(actor = actor.name(), key = %target.name, "key deleted");
        Ok(())
    }

    /// The calling key revokes itself: with its current token, its entry is removed from
    /// the file; with a previous token still in its grace period, only that previous hash
    /// is (an old token cannot kill its replacement). `hash` is the presented token's.
    pub async fn revoke(&self, actor: &Actor, name: KeyName, hash: KeyHash) -> Result<(), Error> {
        self.write(self.intent(actor, &name, What::Revoke { hash }))
            .await?;
        tracing::info!(actor = actor.name(), key = %name, "key revoked itself");
        Ok(())
    }

    fn intent(&self, actor: &Actor, key: &KeyName, what: What) -> Intent {
        Intent {
            tenant: actor.tenant.clone(),
            key: key.clone(),
            actor: actor.name().to_owned(),
            request_id: actor.request_id.clone(),
            idempotency: actor.idempotency.clone(),
            reapplies: None,
            limits: actor.key.clone(),
            what,
        }
    }

    fn check_expiry(&self, expires_at: Option<OffsetDateTime>) -> Result<(), Error> {
        match expires_at {
            Some(t) if t <= self.clock.now() => Err(Error::Validation(vec![FieldError::new(
                "expiresAt",
                "must be in the future",
            )])),
            _ => Ok(()),
        }
    }

    fn state_of(&self, actor: &Actor, entry: KeyEntry) -> KeyState {
        let last_used = self
            .index
            .keys(&actor.tenant)
            .and_then(|keys| keys.get(&entry.name)?.last_used());
        KeyState {
            entry: Arc::new(entry),
            last_used,
        }
    }

    /// Applies one write and publishes the new version before the caller is answered
    /// (read-your-writes): in git mode through the worker (commit, push), else on a
    /// blocking thread inside the request's span. Returns the created or replaced entry
    /// (None for a delete).
    async fn write(&self, mut intent: Intent) -> Result<Option<KeyEntry>, Error> {
        if let Some(git) = &self.git {
            return Ok(git.write(intent).await?.entry);
        }
        let (publisher, clock) = (self.publisher.clone(), self.clock.clone());
        let written = blocking(move || {
            let tenant = intent.tenant.clone();
            let written = publisher
                .store
                .write(&tenant, |file| intent.decide(file, clock.now()))?;
            publisher.publish(&tenant, &written.version);
            Ok(written)
        })
        .await?;
        Ok(written.entry)
    }

    // ---- the reload flow ---------------------------------------------------------------

    /// Re-reads one tenant (a file event), logs what happened and counts it.
    /// Blocking: call it from a blocking thread.
    pub fn reload(&self, tenant: &TenantId) {
        if let Some(fresh) = self.reload_quietly(tenant) {
            self.log_loaded(tenant, fresh.from_snapshot);
            self.warn_shared(tenant, &fresh.added, &HashSet::new());
        }
    }

    /// Loads every tenant (start-up, SIGHUP, rescans) and forgets tenants whose directory
    /// is gone. Blocking: call it from a blocking thread.
    pub fn load_all(&self) -> std::io::Result<()> {
        if self.git.is_some() {
            // git mode serves commits: its worker loads them, never the work tree.
            return Ok(());
        }
        let listing = self.store.list_tenants()?;
        for name in &listing.invalid_names {
            warn_once(
                name,
                "ignoring a directory whose name is not a valid tenant id",
            );
        }
        for tenant in &listing.refused_links {
            warn_once(
                tenant.as_str(),
                "ignoring a symlinked tenant directory that leads outside the tenants directory or to another tenant's",
            );
        }
        let tenants = listing.tenants;
        self.publisher.forget_all_but(&tenants);
        let present: HashSet<&TenantId> = tenants.iter().collect();
        for tenant in self.index.tenants() {
            if !present.contains(&tenant) {
                self.reload(&tenant);
            }
        }
        self.index.add_tenants(&tenants);
        let started = std::time::Instant::now();
        // Every tenant is served before any snapshot is written (a cold start writes one
        // per tenant, which costs as much as parsing them).
        self.publisher.defer_snapshots();
        // Parsing is CPU work: spread the tenants over the cores (start-up, full rescans).
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = tenants.len().div_ceil(workers).max(1);
        let (counted, from_snapshot) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let loaded: Vec<(&TenantId, Fresh)> = std::thread::scope(|s| {
            let parts: Vec<_> = tenants
                .chunks(chunk)
                .map(|part| {
                    let (counted, from_snapshot) = (&counted, &from_snapshot);
                    s.spawn(move || {
                        let mut loaded = Vec::new();
                        for t in part {
                            if let Some(fresh) = self.reload_quietly(t) {
                                if fresh.from_snapshot {
                                    from_snapshot.fetch_add(1, Ordering::Relaxed);
                                }
                                // Past the per-tenant limit (over all workers) the whole
                                // index is checked at once: holding every added hash would
                                // only cost memory.
                                if counted.fetch_add(1, Ordering::Relaxed) < SHARED_CHECK_PER_TENANT
                                {
                                    loaded.push((t, fresh));
                                } else {
                                    loaded = Vec::new();
                                }
                            }
                        }
                        loaded
                    })
                })
                .collect();
            parts
                .into_iter()
                .filter_map(|p| p.join().ok())
                .flatten()
                .collect()
        });
        let count = counted.load(Ordering::Relaxed);
        if count <= SHARED_CHECK_PER_TENANT {
            // A pair of tenants loaded together is reported once.
            let mut done: HashSet<&TenantId> = HashSet::new();
            for (tenant, fresh) in loaded {
                self.log_loaded(tenant, fresh.from_snapshot);
                self.warn_shared(tenant, &fresh.added, &done);
                done.insert(tenant);
            }
        } else {
            // Start-up, SIGHUP or a rescan that found many changes: one line rather than one
            // per tenant, and one pass over the whole index for shared hashes, off this thread.
            let keys: usize = tenants
                .iter()
                .filter_map(|t| self.index.keys(t))
                .map(|k| k.len())
                .sum();
            let elapsed_ms = started.elapsed().as_millis() as u64;
            tracing::info!(
                loaded = count,
                from_snapshot = from_snapshot.load(Ordering::Relaxed),
                tenants = tenants.len(),
                keys,
                elapsed_ms,
                "tenants loaded"
            );
            let index = self.index.clone();
            std::thread::spawn(move || warn_all_shared(&index));
        }
        // Nothing waits for the snapshots.
        let unkept = self.publisher.take_deferred();
        let publisher = self.publisher.clone();
        self.publisher.in_background(move || {
            for u in unkept {
                publisher.keep(u);
            }
        });
        Ok(())
    }

    /// Waits for what the last loads left to do in the background (their last-good
    /// snapshots): at shutdown, so the next start finds them. Blocking.
    pub fn finish_background(&self) {
        self.publisher.finish_background();
    }

    /// Reloads and logs a failure; returns what a loaded tenant (which the caller logs)
    /// brought.
    fn reload_quietly(&self, tenant: &TenantId) -> Option<Fresh> {
        match self.publisher.load(tenant) {
            Ok(reloaded) => {
                reloaded.record(tenant, &self.metrics);
                match reloaded {
                    Reloaded::Loaded {
                        added,
                        from_snapshot,
                    } => Some(Fresh {
                        added,
                        from_snapshot,
                    }),
                    _ => None,
                }
            }
            Err(e) => {
                self.metrics.reload_error(tenant);
                tracing::error!(%tenant, error = %e, "cannot reload tenant");
                None
            }
        }
    }

    fn log_loaded(&self, tenant: &TenantId, from_snapshot: bool) {
        let keys = self.index.keys(tenant).map_or(0, |k| k.len());
        tracing::info!(%tenant, keys, from_snapshot, "tenant loaded");
    }

    /// Warns about keys of `tenant` that have the same hash as a key of another tenant.
    /// Names only: a hash is never logged.
    fn warn_shared(&self, tenant: &TenantId, added: &[KeyHash], reported: &HashSet<&TenantId>) {
        if added.is_empty() {
            return;
        }
        let all = self.index.all();
        let Some(keys) = self.index.keys(tenant) else {
            return;
        };
        for s in lint::sharing(&all, tenant, added) {
            if reported.contains(&s.tenant) {
                continue;
            }
            let Some(key) = keys.by_hash(&s.hash).map(|k| &k.entry.name) else {
                continue;
            };
            tracing::warn!(%tenant, %key, other_tenant = %s.tenant, other_key = %s.name,
                "a key has the same hash as a key of another tenant (legal, but usually a copy-paste mistake)");
        }
    }
}

/// The ends of the grace tokens `before` had running at `now` that `after` no longer has.
fn ended_grace(
    before: Option<&KeyEntry>,
    after: &KeyEntry,
    now: OffsetDateTime,
) -> Vec<OffsetDateTime> {
    let Some(before) = before else {
        return Vec::new();
    };
    let mut ended: Vec<OffsetDateTime> = before
        .previous_hashes
        .iter()
        .filter(|p| p.expires_at > now)
        .filter(|p| !after.previous_hashes.iter().any(|q| q.hash == p.hash))
        .map(|p| p.expires_at)
        .collect();
    ended.sort();
    ended
}

/// An answer left unknown keeps the token it would have given, for a retry to give it.
fn with_token(e: Error, token: Token) -> Error {
    match e {
        Error::OutcomeUnknown(mut u) => {
            u.issued = u.key.take().map(|key| Issued {
                key,
                token,
                ended_grace: Vec::new(),
            });
            Error::OutcomeUnknown(u)
        }
        e => e,
    }
}

fn warn_all_shared(index: &Index) {
    for group in lint::shared_hashes(&index.all()) {
        let keys: Vec<String> = group
            .iter()
            .map(|s| format!("{}/{}", s.tenant, s.name))
            .collect();
        tracing::warn!(keys = %keys.join(", "),
            "keys of different tenants have the same hash (legal, but usually a copy-paste mistake)");
    }
}

fn warn_once(name: &str, why: &'static str) {
    static WARNED: std::sync::OnceLock<std::sync::Mutex<HashSet<String>>> =
        std::sync::OnceLock::new();
    let mut warned = WARNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if warned.insert(name.to_owned()) {
        tracing::warn!(directory = %name, "{why}");
    }
}

/// Runs blocking work on Tokio's blocking pool, inside the current span.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let span = Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(Error::Task)?
}
