//! The in-memory index every verification is answered from.
//!
//! Readers never lock: the tenant map and each tenant's keys sit behind `ArcSwap`s. A
//! reload or write builds a tenant's new `TenantKeys` aside and swaps it in; only adding or
//! removing a tenant copies the (small) tenant map.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::domain::{KeyEntry, KeyHash, KeyName, TenantId};
use crate::store::{FileProblem, SecurityFile};

/// One tenant's keys: sorted by name (for the admin API, binary search) and by hash (for
/// verification). Compact on purpose: a million keys must fit in a few hundred MB.
#[derive(Default, Debug)]
pub struct TenantKeys {
    keys: Vec<IndexedKey>,
    by_hash: HashMap<KeyHash, u32>,
    /// Old hashes kept for a rotation's grace period (few): index and end of grace.
    previous: HashMap<KeyHash, (u32, OffsetDateTime)>,
}

/// A key as the index holds it: the entry, and when it was last used.
#[derive(Debug)]
pub struct IndexedKey {
    pub entry: Arc<KeyEntry>,
    /// Unix seconds of the last successful verification (0: never).
    last_used: AtomicI64,
}

impl IndexedKey {
    pub fn last_used(&self) -> Option<OffsetDateTime> {
        match self.last_used.load(Ordering::Relaxed) {
            0 => None,
            t => OffsetDateTime::from_unix_timestamp(t).ok(),
        }
    }

    /// Records a use at most once per second per key: a load, and a store only when the
    /// second changed, so the hot path does not fight over the cache line.
    fn touch(&self, now: OffsetDateTime) {
        let now = now.unix_timestamp();
        if self.last_used.load(Ordering::Relaxed) < now {
            self.last_used.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Restores a last use read back from the state directory.
    pub fn restore_last_used(&self, unix: i64) {
        self.last_used.fetch_max(unix, Ordering::Relaxed);
    }
}

/// The answer to "is this key valid here, and may it do this?".
#[derive(Debug, Clone)]
pub enum Verdict {
    Valid(Arc<KeyEntry>),
    Invalid(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotFound,
    Disabled,
    Expired,
    InsufficientPermissions,
    Malformed,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::InsufficientPermissions => "insufficient_permissions",
            Self::Malformed => "malformed",
        }
    }
}

impl TenantKeys {
    /// Builds a tenant's keys; `previous` (the tenant's current index) hands each key that
    /// keeps its name its last use. (A use recorded on the old index while this one is
    /// being built can be lost: lastUsedAt is to the second, not an audit log.)
    pub fn build(file: &SecurityFile, previous: Option<&TenantKeys>) -> Self {
        let mut keys: Vec<IndexedKey> = file
            .keys
            .iter()
            .map(|entry| IndexedKey {
                last_used: AtomicI64::new(
                    previous
                        .and_then(|p| p.get(&entry.name))
                        .map_or(0, |k| k.last_used.load(Ordering::Relaxed)),
                ),
                entry: Arc::new(entry.clone()),
            })
            .collect();
        keys.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
        let mut by_hash = HashMap::with_capacity(keys.len());
        let mut previous_hashes = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let i = i as u32;
            by_hash.insert(key.entry.hash, i);
            for p in &key.entry.previous_hashes {
                previous_hashes.insert(p.hash, (i, p.expires_at));
            }
        }
        Self {
            keys,
            by_hash,
            previous: previous_hashes,
        }
    }

    pub fn get(&self, name: &KeyName) -> Option<&IndexedKey> {
        self.keys
            .binary_search_by(|k| k.entry.name.cmp(name))
            .ok()
            .map(|i| &self.keys[i])
    }

    /// Every key, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &IndexedKey> {
        self.keys.iter()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks a presented key's hash, then that it may do every one of `required`.
    pub fn verify(&self, hash: &KeyHash, required: &[&str], now: OffsetDateTime) -> Verdict {
        let (i, grace_until) = match self.by_hash.get(hash) {
            Some(&i) => (i, None),
            None => match self.previous.get(hash) {
                Some(&(i, until)) => (i, Some(until)),
                None => return Verdict::Invalid(Refusal::NotFound),
            },
        };
        let key = &self.keys[i as usize];
        let entry = &key.entry;
        if grace_until.is_some_and(|t| t <= now) || entry.is_expired(now) {
            return Verdict::Invalid(Refusal::Expired);
        }
        if !entry.enabled {
            return Verdict::Invalid(Refusal::Disabled);
        }
        if !required.iter().all(|r| entry.permissions.grants(r)) {
            return Verdict::Invalid(Refusal::InsufficientPermissions);
        }
        key.touch(now);
        Verdict::Valid(entry.clone())
    }
}

/// What the status endpoint and the logs say about one tenant's file.
#[derive(Debug, Clone)]
pub struct TenantStatus {
    pub keys: usize,
    pub problem: Option<FileProblem>,
    pub read_only: bool,
    pub loaded_at: Option<OffsetDateTime>,
    pub checked_at: OffsetDateTime,
}

struct Slot {
    keys: ArcSwap<TenantKeys>,
    meta: Mutex<Meta>,
}

struct Meta {
    /// SHA-256 of the file content last seen (valid or not): unchanged content is skipped.
    digest: Option<[u8; 32]>,
    problem: Option<FileProblem>,
    read_only: bool,
    loaded_at: Option<OffsetDateTime>,
    checked_at: OffsetDateTime,
}

impl Slot {
    fn empty() -> Self {
        Slot {
            keys: ArcSwap::from_pointee(TenantKeys::default()),
            meta: Mutex::new(Meta {
                digest: None,
                problem: None,
                read_only: false,
                loaded_at: None,
                checked_at: OffsetDateTime::now_utc(),
            }),
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
            Some(slot) => f(Some(&slot.keys.load())),
            None => f(None),
        }
    }

    pub fn keys(&self, tenant: &TenantId) -> Option<Arc<TenantKeys>> {
        self.tenants
            .load()
            .get(tenant)
            .map(|slot| slot.keys.load_full())
    }

    pub fn contains(&self, tenant: &TenantId) -> bool {
        self.tenants.load().contains_key(tenant)
    }

    pub fn tenants(&self) -> Vec<TenantId> {
        let mut v: Vec<_> = self.tenants.load().keys().cloned().collect();
        v.sort();
        v
    }

    pub fn digest(&self, tenant: &TenantId) -> Option<[u8; 32]> {
        self.tenants.load().get(tenant)?.meta.lock().digest
    }

    pub fn status(&self, tenant: &TenantId) -> Option<TenantStatus> {
        let map = self.tenants.load();
        let slot = map.get(tenant)?;
        let meta = slot.meta.lock();
        Some(TenantStatus {
            keys: slot.keys.load().len(),
            problem: meta.problem.clone(),
            read_only: meta.read_only,
            loaded_at: meta.loaded_at,
            checked_at: meta.checked_at,
        })
    }

    /// Installs a tenant's freshly built keys from a valid file.
    pub fn replace(&self, tenant: &TenantId, keys: TenantKeys, digest: [u8; 32], read_only: bool) {
        let now = OffsetDateTime::now_utc();
        let slot = self.slot_or_insert(tenant);
        crate::metrics::keys(tenant, keys.len());
        slot.keys.store(Arc::new(keys));
        let mut meta = slot.meta.lock();
        meta.digest = Some(digest);
        meta.problem = None;
        meta.read_only = read_only;
        meta.loaded_at = Some(now);
        meta.checked_at = now;
    }

    /// Records an invalid file; the keys of the last valid version stay in force.
    pub fn mark_invalid(&self, tenant: &TenantId, digest: Option<[u8; 32]>, problem: FileProblem) {
        let slot = self.slot_or_insert(tenant);
        let mut meta = slot.meta.lock();
        meta.digest = digest;
        meta.problem = Some(problem);
        meta.checked_at = OffsetDateTime::now_utc();
    }

    /// Forgets a tenant whose directory is gone: its keys stop working. True if it was known.
    pub fn remove(&self, tenant: &TenantId) -> bool {
        let _w = self.map_writer.lock();
        let map = self.tenants.load();
        if !map.contains_key(tenant) {
            return false;
        }
        let mut next = HashMap::clone(&map);
        next.remove(tenant);
        self.tenants.store(Arc::new(next));
        crate::metrics::keys(tenant, 0);
        true
    }

    /// Adds empty slots for every tenant not known yet, with one copy of the tenant map (a
    /// start-up with 10,000 tenants would otherwise copy it 10,000 times).
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
            next.insert(t.clone(), Arc::new(Slot::empty()));
        }
        self.tenants.store(Arc::new(next));
    }

    fn slot_or_insert(&self, tenant: &TenantId) -> Arc<Slot> {
        if let Some(slot) = self.tenants.load().get(tenant) {
            return slot.clone();
        }
        let _w = self.map_writer.lock();
        let map = self.tenants.load();
        if let Some(slot) = map.get(tenant) {
            return slot.clone();
        }
        let slot = Arc::new(Slot::empty());
        let mut next = HashMap::clone(&map);
        next.insert(tenant.clone(), slot.clone());
        self.tenants.store(Arc::new(next));
        slot
    }
}
