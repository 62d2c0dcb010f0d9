//! Publishing: what the store returns goes to the index, for the write flow (with or
//! without git) and the reload flow alike.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::domain::{Generation, KeyHash, TenantId};
use crate::index::{Index, TenantKeys};
use crate::last_good::{LastGood, Owner};
use crate::rate_limit::RateLimits;
use crate::store::{FileProblem, Loaded, Store, Version};

/// What one reload did to the index.
pub(super) enum Reloaded {
    Unchanged,
    /// `added`: the hashes the previous version did not have.
    Loaded {
        added: Vec<KeyHash>,
        /// A warm load: the file was unchanged since its last-good copy, which was
        /// decoded instead of parsing the file.
        warm: bool,
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
                // `Previous` is never the last-good copy: each invalid file finds that again.
                metrics.serving_last_good(tenant, matches!(serving, Serving::LastGood));
                match serving {
                    Serving::Previous => tracing::warn!(%tenant, %problem,
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
    /// The keys it served before the file broke.
    Previous,
    /// Its last valid version from `state_dir` (at start-up).
    LastGood,
    /// Nothing: no valid version of it was ever seen.
    Nothing,
}

/// Publishes what the store returns to the index, and saves each valid version as the
/// tenant's last-good copy in `state_dir`, for a restart that finds the file broken.
pub(super) struct Publisher {
    pub(super) store: Arc<Store>,
    pub(super) index: Arc<Index>,
    pub(super) last_good: LastGood,
    /// Tenants serving their last-good copy from `state_dir`, with when it was saved.
    pub(super) on_last_good: Mutex<HashMap<TenantId, Option<OffsetDateTime>>>,
    /// The generation each tenant's last-good copy holds. Its lock is held while a copy is
    /// saved, so a late save never replaces a newer copy.
    saved: Mutex<HashMap<TenantId, Generation>>,
    /// While a whole load runs, the versions whose last-good copies wait to be saved.
    deferred: Mutex<Option<Vec<Unsaved>>>,
    /// Threads writing what loads deferred, for a shutdown to wait for.
    writers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The tenant directory each tenant's served keys came from: an invalid file goes on
    /// serving them only while it is the same directory.
    owners: Mutex<HashMap<TenantId, Option<Owner>>>,
    /// git mode: tenants come from commits, not directories (see `Owner::of_name`).
    serves_commits: std::sync::atomic::AtomicBool,
    /// Where the limiters of keys with a rate limit come from.
    limits: RateLimits,
}

/// A version served but not saved as the last-good copy in `state_dir` yet.
pub(super) struct Unsaved {
    tenant: TenantId,
    generation: Generation,
    digest: [u8; 32],
    keys: Arc<TenantKeys>,
    owner: Option<Owner>,
}

impl Publisher {
    pub(super) fn new(
        store: Arc<Store>,
        index: Arc<Index>,
        last_good: LastGood,
        limits: RateLimits,
    ) -> Self {
        Self {
            store,
            index,
            last_good,
            on_last_good: Mutex::default(),
            saved: Mutex::default(),
            deferred: Mutex::default(),
            writers: Mutex::default(),
            owners: Mutex::default(),
            serves_commits: Default::default(),
            limits,
        }
    }

    /// From now on tenants come from served commits (git mode).
    pub(super) fn serve_commits(&self) {
        self.serves_commits
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Which tenant of this name is there now, for its last-good copy; None when that
    /// cannot be told (its directory cannot be examined), and then no copy serves it.
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

    /// Deletes the last-good copies of tenants that are not in `present` (a start-up's tenants):
    /// a tenant removed while keyward was down leaves nothing a new one could serve.
    pub(super) fn forget_all_but<'a>(&self, present: impl IntoIterator<Item = &'a TenantId>) {
        let _held = self.saved.lock();
        self.last_good.forget_all_but(present);
    }

    /// From now until `take_unsaved`, last-good copies are not saved as versions are
    /// served but gathered: a start-up serves every tenant first, and saves them after.
    pub(super) fn defer_saves(&self) {
        self.deferred.lock().get_or_insert_with(Vec::new);
    }

    /// The versions gathered since `defer_saves`; saves are direct again.
    pub(super) fn take_unsaved(&self) -> Vec<Unsaved> {
        self.deferred.lock().take().unwrap_or_default()
    }

    /// Runs `work` (saving deferred last-good copies) on a thread of its own.
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
    /// last-good copy was taken from is not parsed: the copy is decoded instead (a warm
    /// load).
    pub(super) fn load(&self, tenant: &TenantId) -> Result<Reloaded, crate::store::StoreError> {
        let mut warm = false;
        let loaded = self.store.load_recalling(tenant, |digest| {
            let file = self.last_good.recall(tenant, digest);
            warm = file.is_some();
            file
        })?;
        Ok(self.settle(tenant, loaded, warm))
    }

    /// Publishes a tenant's file as a commit holds it (git mode): `None` for a tenant the
    /// commit does not have, `Err` for a file keyward will not read (a symlink in git).
    pub(super) fn load_content(
        &self,
        tenant: &TenantId,
        content: Result<Option<&[u8]>, crate::domain::FileProblem>,
    ) -> Reloaded {
        let mut warm = false;
        let loaded = match content {
            Ok(content) => self.store.load_content(tenant, content, |digest| {
                let file = self.last_good.recall(tenant, digest);
                warm = file.is_some();
                file
            }),
            Err(problem) => self.store.load_problem(tenant, problem),
        };
        self.settle(tenant, loaded, warm)
    }

    /// Serves what a load found; an invalid file leaves the tenant its previous keys.
    fn settle(&self, tenant: &TenantId, loaded: Loaded, warm: bool) -> Reloaded {
        match loaded {
            Loaded::Unchanged => Reloaded::Unchanged,
            Loaded::Valid(version) => {
                let added = match self.index.keys(tenant) {
                    Some(before) => before.added_by(&version.file),
                    None => version.file.keys.iter().map(|k| k.hash).collect(),
                };
                // A version decoded from its last-good copy is saved already.
                self.serve(tenant, version, !warm);
                Reloaded::Loaded { added, warm }
            }
            Loaded::Invalid {
                problem,
                generation,
            } => {
                let owner = self.owner(tenant);
                let same_tenant = owner.is_some() && self.owners.lock().get(tenant) == Some(&owner);
                let has_keys = self.index.keys(tenant).is_some_and(|k| !k.is_empty());
                let serving = if has_keys && same_tenant {
                    Serving::Previous
                } else if let Some(saved) =
                    owner.and_then(|owner| self.last_good.load(tenant, owner))
                {
                    let keys = TenantKeys::build_owned(
                        Arc::new(saved.file),
                        None,
                        &self.limits.for_tenant(tenant),
                    );
                    self.index.publish(tenant, keys, generation);
                    self.on_last_good
                        .lock()
                        .insert(tenant.clone(), saved.saved_at);
                    Serving::LastGood
                } else {
                    // The tenant is there, serving nothing: keys it held belonged to a
                    // directory removed and made again between two reloads.
                    let none = TenantKeys::build_owned(
                        Arc::default(),
                        None,
                        &self.limits.for_tenant(tenant),
                    );
                    self.index.publish(tenant, none, generation);
                    self.owners.lock().insert(tenant.clone(), owner);
                    Serving::Nothing
                };
                Reloaded::Invalid { problem, serving }
            }
            Loaded::Gone { generation } => {
                self.on_last_good.lock().remove(tenant);
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

    /// Deletes a removed tenant's last-good copy; a copy of an older version still waiting
    /// to be saved is then never saved.
    fn forget(&self, tenant: &TenantId, generation: Generation) {
        let mut saved = self.saved.lock();
        let held = saved.entry(tenant.clone()).or_default();
        *held = generation.max(*held);
        self.last_good.forget(tenant);
    }

    /// Builds a version's keys (carrying each key's last use over) and serves them, unless
    /// the index already holds a newer version; saves it as the last-good copy for restarts.
    pub(super) fn publish(&self, tenant: &TenantId, version: &Version) {
        self.serve(tenant, version.clone(), true);
    }

    /// `publish`; `save: false` for a version that is the last-good copy already.
    fn serve(&self, tenant: &TenantId, version: Version, save: bool) {
        let previous = self.index.keys(tenant);
        let keys = Arc::new(TenantKeys::build_owned(
            version.file,
            previous.as_deref(),
            &self.limits.for_tenant(tenant),
        ));
        drop(previous);
        if !self.index.publish(tenant, keys.clone(), version.generation) {
            return;
        }
        let owner = self.owner(tenant);
        self.owners.lock().insert(tenant.clone(), owner);
        self.on_last_good.lock().remove(tenant);
        if !save {
            let mut saved = self.saved.lock();
            let held = saved.entry(tenant.clone()).or_default();
            *held = version.generation.max(*held);
            return;
        }
        let unsaved = Unsaved {
            tenant: tenant.clone(),
            generation: version.generation,
            digest: version.digest,
            keys,
            owner,
        };
        match self.deferred.lock().as_mut() {
            Some(deferred) => deferred.push(unsaved),
            None => self.save(unsaved),
        }
    }

    /// Saves a version as the tenant's last-good copy, unless that holds a newer one already.
    pub(super) fn save(&self, unsaved: Unsaved) {
        let Unsaved {
            tenant,
            generation,
            digest,
            keys,
            owner,
        } = unsaved;
        let Some(owner) = owner else {
            tracing::warn!(%tenant, "cannot tell the tenant directory apart; its last valid version is not kept");
            return;
        };
        let mut saved = self.saved.lock();
        if saved.get(&tenant).is_some_and(|held| *held >= generation) {
            return;
        }
        match self
            .last_good
            .save(&tenant, owner, digest, keys.iter().map(|k| &*k.entry))
        {
            Ok(()) => {
                saved.insert(tenant, generation);
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "cannot keep the last valid version in state_dir");
            }
        }
    }
}
