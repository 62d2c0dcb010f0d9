//! The in-memory index every verification is answered from.
//!
//! Readers never lock: the tenant map and each tenant's keys sit behind `ArcSwap`s. The
//! keys service builds a tenant's new `TenantKeys` aside and publishes it with the
//! generation the store gave that version; a publication older than what the index holds
//! is refused, so the order in which writers and reloads publish can never send a tenant
//! back to an older version. Only adding or removing a tenant copies the (small) map.

mod tenant_keys;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use parking_lot::Mutex;

pub use tenant_keys::{Holding, IndexedKey, TenantKeys, Verified};

use crate::domain::{Generation, TenantId};

struct Slot {
    /// None: the tenant was removed (kept so a late, older publication cannot revive it).
    keys: ArcSwapOption<TenantKeys>,
    generation: Mutex<Generation>,
}

impl Slot {
    fn new(keys: Option<Arc<TenantKeys>>, generation: Generation) -> Self {
        Self {
            keys: ArcSwapOption::new(keys),
            generation: Mutex::new(generation),
        }
    }
}

#[derive(Default)]
pub struct Index {
    tenants: ArcSwap<HashMap<TenantId, Arc<Slot>>>,
    /// Serialises changes to the tenant map itself (rare: tenants come and go).
    map_writer: Mutex<()>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// The hot path: no lock, no allocation.
    pub fn with_keys<R>(&self, tenant: &str, f: impl FnOnce(Option<&TenantKeys>) -> R) -> R {
        let map = self.tenants.load();
        match map.get(tenant) {
            Some(slot) => f(slot.keys.load().as_deref()),
            None => f(None),
        }
    }

    pub fn keys(&self, tenant: &TenantId) -> Option<Arc<TenantKeys>> {
        self.tenants.load().get(tenant)?.keys.load_full()
    }

    /// Every tenant the index serves, sorted.
    pub fn tenants(&self) -> Vec<TenantId> {
        let map = self.tenants.load();
        let mut v: Vec<_> = map
            .iter()
            .filter(|(_, slot)| slot.keys.load().is_some())
            .map(|(t, _)| t.clone())
            .collect();
        v.sort();
        v
    }

    /// Every tenant with its keys (for `/metrics`, the last-used flush, the shared-hash
    /// check): one consistent view of the map, each tenant's keys as they are now.
    pub fn all(&self) -> Vec<(TenantId, Arc<TenantKeys>)> {
        let map = self.tenants.load();
        let mut v: Vec<_> = map
            .iter()
            .filter_map(|(t, slot)| Some((t.clone(), slot.keys.load_full()?)))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Serves `keys` for `tenant` unless the index already holds a newer generation.
    /// True when they were installed.
    pub fn publish(
        &self,
        tenant: &TenantId,
        keys: impl Into<Arc<TenantKeys>>,
        generation: Generation,
    ) -> bool {
        self.set(tenant, Some(keys.into()), generation)
    }

    /// Stops serving a tenant whose directory is gone, unless a newer generation is held.
    /// True when it was served until now.
    pub fn remove(&self, tenant: &TenantId, generation: Generation) -> bool {
        let served = self.keys(tenant).is_some();
        self.set(tenant, None, generation) && served
    }

    fn set(
        &self,
        tenant: &TenantId,
        keys: Option<Arc<TenantKeys>>,
        generation: Generation,
    ) -> bool {
        let slot = match self.tenants.load().get(tenant) {
            Some(slot) => slot.clone(),
            None if keys.is_none() => return false,
            None => {
                let _w = self.map_writer.lock();
                let map = self.tenants.load();
                match map.get(tenant) {
                    Some(slot) => slot.clone(),
                    None => {
                        let mut next = HashMap::clone(&map);
                        next.insert(tenant.clone(), Arc::new(Slot::new(keys, generation)));
                        self.tenants.store(Arc::new(next));
                        return true;
                    }
                }
            }
        };
        let mut held = slot.generation.lock();
        if generation < *held {
            return false;
        }
        *held = generation;
        slot.keys.store(keys);
        true
    }

    /// Adds empty tenants not known yet, with one copy of the tenant map (a start-up with
    /// 10,000 tenants would otherwise copy it 10,000 times). Their keys follow by `publish`.
    pub fn add_tenants(&self, tenants: &[TenantId]) {
        let _w = self.map_writer.lock();
        let map = self.tenants.load();
        let missing: Vec<&TenantId> = tenants.iter().filter(|t| !map.contains_key(*t)).collect();
        if missing.is_empty() {
            return;
        }
        let mut next = HashMap::clone(&map);
        next.reserve(missing.len());
        for t in missing {
            next.insert(t.clone(), Arc::new(Slot::new(Some(Arc::default()), 0)));
        }
        self.tenants.store(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SecurityFile;

    fn keys(names: &[&str]) -> TenantKeys {
        let mut text = String::from("apiKeys:\n");
        for (i, name) in names.iter().enumerate() {
            text.push_str(&format!("  - name: {name}\n    hash: {:064x}\n", i + 1));
        }
        TenantKeys::build(&SecurityFile::parse(&text).unwrap(), None)
    }

    #[test]
    fn an_older_generation_never_replaces_a_newer_one() {
        let index = Index::new();
        let acme = TenantId::parse("acme").unwrap();
        assert!(index.publish(&acme, keys(&["a", "b"]), 7));
        assert!(!index.publish(&acme, keys(&["a"]), 6), "older: refused");
        assert_eq!(index.keys(&acme).unwrap().len(), 2);
        assert!(index.publish(&acme, keys(&["a"]), 8));
        assert_eq!(index.keys(&acme).unwrap().len(), 1);
    }

    #[test]
    fn a_removed_tenant_is_not_revived_by_a_late_older_publication() {
        let index = Index::new();
        let acme = TenantId::parse("acme").unwrap();
        index.publish(&acme, keys(&["a"]), 1);
        assert!(index.remove(&acme, 3));
        assert!(!index.publish(&acme, keys(&["a"]), 2));
        assert!(index.keys(&acme).is_none());
        assert!(index.tenants().is_empty());
        assert!(
            index.publish(&acme, keys(&["a"]), 4),
            "a newer version brings it back"
        );
    }
}
