//! The reload flow: a file event, a rescan or a start-up reads tenants' files again and
//! publishes what the store returns. Failures are logged and counted here, never
//! answered: an invalid file keeps the keys the tenant served before.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::publish::Reloaded;
use super::service::Service;
use crate::domain::{KeyHash, TenantId};
use crate::index::Index;
use crate::lint;

/// A tenant that loaded: the hashes it did not have, and whether the load was warm (its
/// keys decoded from its last-good copy, the file unchanged since, rather than parsed).
struct Fresh {
    added: Vec<KeyHash>,
    warm: bool,
}

/// Up to this many tenants loaded at once are checked one by one for hashes shared with
/// other tenants; more are checked in one pass over the whole index.
const SHARED_CHECK_PER_TENANT: usize = 64;

impl Service {
    /// Re-reads one tenant (a file event), logs what happened and counts it.
    /// Blocking: call it from a blocking thread.
    pub fn reload(&self, tenant: &TenantId) {
        if let Some(fresh) = self.try_reload(tenant) {
            self.log_loaded(tenant, fresh.warm);
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
        // Every tenant is served before any last-good copy is saved (a cold start writes one
        // per tenant, which costs as much as parsing them).
        self.publisher.defer_saves();
        // Parsing is CPU work: spread the tenants over the cores (start-up, full rescans).
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = tenants.len().div_ceil(workers).max(1);
        let (counted, warm) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let loaded: Vec<(&TenantId, Fresh)> = std::thread::scope(|s| {
            let parts: Vec<_> = tenants
                .chunks(chunk)
                .map(|part| {
                    let (counted, warm) = (&counted, &warm);
                    s.spawn(move || {
                        let mut loaded = Vec::new();
                        for t in part {
                            if let Some(fresh) = self.try_reload(t) {
                                if fresh.warm {
                                    warm.fetch_add(1, Ordering::Relaxed);
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
                self.log_loaded(tenant, fresh.warm);
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
                from_snapshot = warm.load(Ordering::Relaxed),
                tenants = tenants.len(),
                keys,
                elapsed_ms,
                "tenants loaded"
            );
            let index = self.index.clone();
            std::thread::spawn(move || warn_all_shared(&index));
        }
        // Nothing waits for the last-good copies.
        let unsaved = self.publisher.take_unsaved();
        let publisher = self.publisher.clone();
        self.publisher.in_background(move || {
            for u in unsaved {
                publisher.save(u);
            }
        });
        Ok(())
    }

    /// Waits for what the last loads left to do in the background (their last-good
    /// copies): at shutdown, so the next start finds them. Blocking.
    pub fn finish_background(&self) {
        self.publisher.finish_background();
    }

    /// Reloads and counts the outcome, logging a failure; a loaded tenant's line is left to
    /// the caller (one line per tenant, or one for a whole load), which gets what it
    /// brought.
    fn try_reload(&self, tenant: &TenantId) -> Option<Fresh> {
        match self.publisher.load(tenant) {
            Ok(reloaded) => {
                reloaded.record(tenant, &self.metrics);
                match reloaded {
                    Reloaded::Loaded { added, warm } => Some(Fresh { added, warm }),
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

    /// The log field keeps its name `from_snapshot`: operators and tests read it.
    fn log_loaded(&self, tenant: &TenantId, warm: bool) {
        let keys = self.index.keys(tenant).map_or(0, |k| k.len());
        tracing::info!(%tenant, keys, from_snapshot = warm, "tenant loaded");
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
