//! Publishing: what the store returns goes to the index, for the write flow (with or
//! without git) and the reload flow alike.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::domain::{Generation, KeyHash, TenantId};
use crate::index::{Index, TenantKeys};
use crate::last_good::{LastGood, Owner};
use crate::store::{FileProblem, Loaded, Store, Version};

/// What one reload did to the index.
pub(super) enum Reloaded {
    Unchanged,
    /// `added`: the hashes the previous version did not have.
    Loaded {
        added: Vec<KeyHash>,
        /// The file was unchanged since its last-good snapshot, which was decoded instead
        /// of parsing the file.
        from_snapshot: bool,
    },
    Invalid {
        problem: FileProblem,
        serving: Serving,
    },
    Removed,
}

impl Reloaded {
    /// Counts the reload (a file read again for nothing is work worth seeing too) and logs
    /// what is worth a line: an invalid file and what the tenant serves then, a removal.
    pub(super) fn record(&self, tenant: &TenantId, metrics: &crate::metrics::Metrics) {
        match self {
            Self::Unchanged => metrics.reload(tenant, "unchanged"),
            Self::Loaded { .. } => metrics.reload(tenant, "loaded"),
            Self::Invalid { problem, serving } => {
                metrics.reload(tenant, "invalid");
                metrics.reload_error(tenant);
                match serving {
                    Serving::Kept => tracing::warn!(%tenant, %problem,
                        "security.yml is invalid; keeping the keys of its last valid version"),
                    Serving::LastGood => tracing::warn!(%tenant, %problem,
                        "security.yml is invalid; serving the last valid version kept in state_dir"),
                    Serving::Nothing => tracing::error!(%tenant, %problem,
                        "security.yml is invalid and no valid version of it is known: the tenant serves no keys"),
                }
            }
            Self::Removed => {
                metrics.reload(tenant, "removed");
                tracing::info!(%tenant, "tenant removed");
            }
        }
    }
}

/// What a tenant with an invalid file serves.
pub(super) enum Serving {
    /// The keys it had.
    Kept,
    /// Its last valid version from `state_dir` (at start-up).
    LastGood,
    /// Nothing: no valid version of it was ever seen.
    Nothing,
}

/// Publishes what the store returns to the index, and keeps each valid version in
/// `state_dir` for a restart that finds the file broken.
pub(super) struct Publisher {
    pub(super) store: Arc<Store>,
    pub(super) index: Arc<Index>,
    pub(super) last_good: LastGood,
    /// Tenants serving a kept version, with when it was saved.
    pub(super) kept_in_use: Mutex<HashMap<TenantId, Option<OffsetDateTime>>>,
    /// The generation each tenant's snapshot holds. Its lock is held while a snapshot is
    /// written, so a late write never replaces a newer snapshot.
    snapshots: Mutex<HashMap<TenantId, Generation>>,
    /// While a whole load runs, the versions whose snapshots wait to be written.
    deferred: Mutex<Option<Vec<Unkept>>>,
    /// Threads writing what loads deferred, for a shutdown to wait for.
    writers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The tenant directory each tenant's served keys came from: an invalid file keeps
    /// them only while it is the same directory.
    owners: Mutex<HashMap<TenantId, Option<Owner>>>,
    /// git mode: tenants come from commits, not directories (see `Owner::of_name`).
    serves_commits: std::sync::atomic::AtomicBool,
}

/// A version served but not kept in `state_dir` yet.
pub(super) struct Unkept {
    tenant: TenantId,
    generation: Generation,
    digest: [u8; 32],
    keys: Arc<TenantKeys>,
    owner: Option<Owner>,
}

impl Publisher {
    pub(super) fn new(store: Arc<Store>, index: Arc<Index>, last_good: LastGood) -> Self {
        Self {
            store,
            index,
            last_good,
            kept_in_use: Mutex::default(),
            snapshots: Mutex::default(),
            deferred: Mutex::default(),
            writers: Mutex::default(),
            owners: Mutex::default(),
            serves_commits: Default::default(),
        }
    }

    /// From now on tenants come from served commits (git mode).
    pub(super) fn serve_commits(&self) {
        self.serves_commits
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Which tenant of this name is there now, for its snapshot; None when that cannot be
    /// told (its directory cannot be examined), and then no snapshot serves it.
    fn owner(&self, tenant: &TenantId) -> Option<Owner> {
        if self
            .serves_commits
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            Some(Owner::of_name(tenant))
        } else {
            Owner::of_dir(&self.store.tenant_dir(tenant))
        }
    }

    /// Deletes the snapshots of tenants that are not in `present` (a start-up's tenants):
    /// a tenant removed while keyward was down leaves nothing a new one could serve.
    pub(super) fn forget_all_but<'a>(&self, present: impl IntoIterator<Item = &'a TenantId>) {
        let _held = self.snapshots.lock();
        self.last_good.forget_all_but(present);
    }

    /// From now until `take_deferred`, snapshots are not written as versions are served
    /// but gathered: a start-up serves every tenant first, and writes them after.
    pub(super) fn defer_snapshots(&self) {
        self.deferred.lock().get_or_insert_with(Vec::new);
    }

    /// The versions gathered since `defer_snapshots`; writes are direct again.
    pub(super) fn take_deferred(&self) -> Vec<Unkept> {
        self.deferred.lock().take().unwrap_or_default()
    }

    /// Runs `work` (writing deferred snapshots) on a thread of its own.
    pub(super) fn in_background(&self, work: impl FnOnce() + Send + 'static) {
        let mut writers = self.writers.lock();
        writers.retain(|w| !w.is_finished());
        writers.push(std::thread::spawn(work));
    }

    /// Waits until the background work is done.
    pub(super) fn finish_background(&self) {
        let writers = std::mem::take(&mut *self.writers.lock());
        for w in writers {
            let _ = w.join();
        }
    }

    /// Loads a tenant from the store and publishes what it found. Content that its
    /// last-good snapshot was taken from is not parsed: the snapshot is decoded instead.
    pub(super) fn load(&self, tenant: &TenantId) -> Result<Reloaded, crate::store::StoreError> {
        let mut from_snapshot = false;
        let loaded = self.store.load_recalling(tenant, |digest| {
            let file = self.last_good.recall(tenant, digest);
            from_snapshot = file.is_some();
            file
        })?;
        Ok(self.settle(tenant, loaded, from_snapshot))
    }

    /// Publishes a tenant's file as a commit holds it (git mode): `None` for a tenant the
    /// commit does not have, `Err` for a file keyward will not read (a symlink in git).
    pub(super) fn load_content(
        &self,
        tenant: &TenantId,
        content: Result<Option<&[u8]>, crate::domain::FileProblem>,
    ) -> Reloaded {
        let mut from_snapshot = false;
        let loaded = match content {
            Ok(content) => self.store.load_content(tenant, content, |digest| {
                let file = self.last_good.recall(tenant, digest);
                from_snapshot = file.is_some();
                file
            }),
            Err(problem) => self.store.load_problem(tenant, problem),
        };
        self.settle(tenant, loaded, from_snapshot)
    }

    /// Serves what a load found; an invalid file keeps the keys the tenant had.
    fn settle(&self, tenant: &TenantId, loaded: Loaded, from_snapshot: bool) -> Reloaded {
        match loaded {
            Loaded::Unchanged => Reloaded::Unchanged,
            Loaded::Valid(version) => {
                let added = match self.index.keys(tenant) {
                    Some(before) => before.added_by(&version.file),
                    None => version.file.keys.iter().map(|k| k.hash).collect(),
                };
                // A version decoded from its snapshot is kept already.
                self.serve(tenant, version, !from_snapshot);
                Reloaded::Loaded {
                    added,
                    from_snapshot,
                }
            }
            Loaded::Invalid {
                problem,
                generation,
            } => {
                let owner = self.owner(tenant);
                let same_tenant = owner.is_some() && self.owners.lock().get(tenant) == Some(&owner);
                let has_keys = self.index.keys(tenant).is_some_and(|k| !k.is_empty());
                let serving = if has_keys && same_tenant {
                    Serving::Kept
                } else if let Some(saved) =
                    owner.and_then(|owner| self.last_good.load(tenant, owner))
                {
                    let keys = TenantKeys::build_owned(Arc::new(saved.file), None);
                    self.index.publish(tenant, keys, generation);
                    self.kept_in_use
                        .lock()
                        .insert(tenant.clone(), saved.saved_at);
                    Serving::LastGood
                } else {
                    // The tenant is there, serving nothing: keys it held belonged to a
                    // directory removed and made again between two reloads.
                    let none = TenantKeys::build_owned(Arc::default(), None);
                    self.index.publish(tenant, none, generation);
                    self.owners.lock().insert(tenant.clone(), owner);
                    Serving::Nothing
                };
                Reloaded::Invalid { problem, serving }
            }
            Loaded::Gone { generation } => {
                self.kept_in_use.lock().remove(tenant);
                self.owners.lock().remove(tenant);
                self.forget(tenant, generation);
                if self.index.remove(tenant, generation) {
                    Reloaded::Removed
                } else {
                    Reloaded::Unchanged
                }
            }
        }
    }

    /// Deletes a removed tenant's snapshot; a snapshot of an older version still waiting to
    /// be written is then never written.
    fn forget(&self, tenant: &TenantId, generation: Generation) {
        let mut snapshots = self.snapshots.lock();
        let held = snapshots.entry(tenant.clone()).or_default();
        *held = generation.max(*held);
        self.last_good.forget(tenant);
    }

    /// Builds a version's keys (carrying each key's last use over) and serves them, unless
    /// the index already holds a newer version; keeps the version for restarts.
    pub(super) fn publish(&self, tenant: &TenantId, version: &Version) {
        self.serve(tenant, version.clone(), true);
    }

    /// `publish`; `keep: false` for a version that is kept already.
    fn serve(&self, tenant: &TenantId, version: Version, keep: bool) {
        let previous = self.index.keys(tenant);
        let keys = Arc::new(TenantKeys::build_owned(version.file, previous.as_deref()));
        drop(previous);
        if !self.index.publish(tenant, keys.clone(), version.generation) {
            return;
        }
        let owner = self.owner(tenant);
        self.owners.lock().insert(tenant.clone(), owner);
        self.kept_in_use.lock().remove(tenant);
        if !keep {
            let mut snapshots = self.snapshots.lock();
            let held = snapshots.entry(tenant.clone()).or_default();
            *held = version.generation.max(*held);
            return;
        }
        let unkept = Unkept {
            tenant: tenant.clone(),
            generation: version.generation,
            digest: version.digest,
            keys,
            owner,
        };
        match self.deferred.lock().as_mut() {
            Some(deferred) => deferred.push(unkept),
            None => self.keep(unkept),
        }
    }

    /// Writes a version's snapshot, unless the tenant's snapshot holds a newer one already.
    pub(super) fn keep(&self, unkept: Unkept) {
        let Unkept {
            tenant,
            generation,
            digest,
            keys,
            owner,
        } = unkept;
        let Some(owner) = owner else {
            tracing::warn!(%tenant, "cannot tell the tenant directory apart; its last valid version is not kept");
            return;
        };
        let mut snapshots = self.snapshots.lock();
        if snapshots
            .get(&tenant)
            .is_some_and(|held| *held >= generation)
        {
            return;
        }
        match self
            .last_good
            .save(&tenant, owner, digest, keys.iter().map(|k| &*k.entry))
        {
            Ok(()) => {
                snapshots.insert(tenant, generation);
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "cannot keep the last valid version in state_dir");
            }
        }
    }
}
