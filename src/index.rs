//! The in-memory index every verification is answered from.
//!
//! Readers never lock: the tenant map and each tenant's keys sit behind `ArcSwap`s. A
//! reload or write builds a tenant's new `TenantKeys` aside and swaps it in; only adding or
//! removing a tenant copies the (small) tenant map.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use time::OffsetDateTime;

use crate::domain::{KeyEntry, KeyHash, KeyName, Permissions, TenantId};
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
        // Keys with equal permissions share one list: most keys of a tenant hold one of a
        // few sets, and the lists are a fifth of the index's memory otherwise.
        let mut sets: HashSet<Permissions> = HashSet::new();
        let mut keys: Vec<IndexedKey> = file
            .keys
            .iter()
            .map(|entry| {
                let mut entry = entry.clone();
                match sets.get(&entry.permissions) {
                    Some(shared) => entry.permissions = shared.clone(),
                    None => {
                        sets.insert(entry.permissions.clone());
                    }
                }
                IndexedKey {
                    last_used: AtomicI64::new(
                        previous
                            .and_then(|p| p.get(&entry.name))
                            .map_or(0, |k| k.last_used.load(Ordering::Relaxed)),
                    ),
                    entry: Arc::new(entry),
                }
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

    /// The key whose current hash is `hash`.
    pub fn by_hash(&self, hash: &KeyHash) -> Option<&IndexedKey> {
        self.by_hash.get(hash).map(|&i| &self.keys[i as usize])
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

/// A key that has the same hash as a key of another tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedHash {
    pub hash: KeyHash,
    pub tenant: TenantId,
    pub name: KeyName,
}

impl SharedHash {
    fn new(hash: KeyHash, tenant: &TenantId, name: &KeyName) -> Self {
        Self {
            hash,
            tenant: tenant.clone(),
            name: name.clone(),
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

    /// Keys of other tenants whose hash is one of `hashes` (keys of `tenant`): legal, since
    /// a key is only ever checked against one tenant, but usually a copy-paste mistake ops
    /// want to hear of. Costs at most one lookup per key in the index.
    pub fn sharing(&self, tenant: &TenantId, hashes: &[KeyHash]) -> Vec<SharedHash> {
        let mut out = Vec::new();
        if hashes.is_empty() {
            return out;
        }
        let wanted: std::collections::HashSet<&KeyHash> = hashes.iter().collect();
        for (other, slot) in self.tenants.load().iter() {
            if other == tenant {
                continue;
            }
            let theirs = slot.keys.load();
            // Walk the smaller side, look up in the larger.
            if theirs.len() < wanted.len() {
                for k in theirs.iter().filter(|k| wanted.contains(&k.entry.hash)) {
                    out.push(SharedHash::new(k.entry.hash, other, &k.entry.name));
                }
            } else {
                for hash in &wanted {
                    if let Some(k) = theirs.by_hash(hash) {
                        out.push(SharedHash::new(**hash, other, &k.entry.name));
                    }
                }
            }
        }
        out
    }

    /// Every hash held by keys of more than one tenant (for the start-up check). Memory: 8
    /// bytes per key for the length of the call, so that start-up's peak stays low.
    pub fn shared_hashes(&self) -> Vec<Vec<SharedHash>> {
        let map = self.tenants.load();
        let slots: Vec<(&TenantId, arc_swap::Guard<Arc<TenantKeys>>)> =
            map.iter().map(|(t, s)| (t, s.keys.load())).collect();
        // First pass: the 64-bit prefixes of every hash, sorted; a repeated prefix is a
        // candidate (a real shared hash, or, very rarely, two hashes that begin alike).
        let total = slots.iter().map(|(_, keys)| keys.len()).sum();
        let mut prefixes: Vec<u64> = Vec::with_capacity(total);
        for (_, keys) in &slots {
            prefixes.extend(keys.iter().map(|k| k.entry.hash.prefix_u64()));
        }
        prefixes.sort_unstable();
        let candidates: HashSet<u64> = prefixes
            .chunk_by(|a, b| a == b)
            .filter(|run| run.len() > 1)
            .map(|run| run[0])
            .collect();
        drop(prefixes);
        if candidates.is_empty() {
            return Vec::new();
        }
        // Second pass: the keys with a candidate prefix, grouped by their whole hash.
        let mut by_hash: HashMap<KeyHash, Vec<SharedHash>> = HashMap::new();
        for (tenant, keys) in &slots {
            for k in keys.iter() {
                let hash = k.entry.hash;
                if candidates.contains(&hash.prefix_u64()) {
                    let group = by_hash.entry(hash).or_default();
                    group.push(SharedHash::new(hash, tenant, &k.entry.name));
                }
            }
        }
        let mut groups: Vec<Vec<SharedHash>> = by_hash
            .into_values()
            .filter_map(|mut group| {
                group.sort_by(|a, b| a.tenant.cmp(&b.tenant));
                group.dedup_by(|a, b| a.tenant == b.tenant);
                (group.len() > 1).then_some(group)
            })
            .collect();
        // The same order on every start: by the first key's tenant, then its name.
        groups.sort_by(|a, b| (&a[0].tenant, &a[0].name).cmp(&(&b[0].tenant, &b[0].name)));
        groups
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(index: &Index, tenant: &str, keys: &[(&str, char)]) {
        let keys: Vec<(&str, String)> = keys
            .iter()
            .map(|(name, digit)| (*name, std::iter::repeat_n(*digit, 64).collect()))
            .collect();
        load_hashes(index, tenant, &keys);
    }

    fn load_hashes(index: &Index, tenant: &str, keys: &[(&str, String)]) {
        let mut text = String::from("apiKeys:\n");
        for (name, hash) in keys {
            text.push_str(&format!("  - name: {name}\n    hash: {hash}\n"));
        }
        let file = SecurityFile::parse(&text).unwrap();
        let tenant = TenantId::parse(tenant).unwrap();
        index.replace(&tenant, TenantKeys::build(&file, None), [0; 32], false);
    }

    fn names(group: &[SharedHash]) -> Vec<String> {
        group
            .iter()
            .map(|s| format!("{}/{}", s.tenant, s.name))
            .collect()
    }

    #[test]
    fn hashes_shared_across_tenants_are_found_in_one_pass_and_per_tenant() {
        let index = Index::new();
        load(&index, "acme", &[("a1", '1'), ("a2", '2')]);
        load(&index, "globex", &[("g1", '1'), ("g3", '3')]);
        load(&index, "initech", &[("i3", '3'), ("i4", '4'), ("i1", '1')]);

        let mut groups: Vec<Vec<String>> = index.shared_hashes().iter().map(|g| names(g)).collect();
        groups.sort();
        assert_eq!(
            groups,
            [
                vec!["acme/a1", "globex/g1", "initech/i1"],
                vec!["globex/g3", "initech/i3"],
            ]
        );

        let acme = TenantId::parse("acme").unwrap();
        let two = KeyHash::parse(&"2".repeat(64)).unwrap();
        assert!(index.sharing(&acme, &[two]).is_empty());
        let one = KeyHash::parse(&"1".repeat(64)).unwrap();
        let mut shared = names(&index.sharing(&acme, &[one]));
        shared.sort();
        assert_eq!(shared, ["globex/g1", "initech/i1"]);
    }

    #[test]
    fn hashes_that_only_begin_alike_are_not_shared() {
        let index = Index::new();
        let alike = |tail: char| format!("{}{}", "ab".repeat(8), tail.to_string().repeat(48));
        load_hashes(&index, "acme", &[("a", alike('1'))]);
        load_hashes(&index, "globex", &[("g", alike('2')), ("h", alike('1'))]);

        let groups: Vec<Vec<String>> = index.shared_hashes().iter().map(|g| names(g)).collect();
        assert_eq!(groups, [vec!["acme/a", "globex/h"]]);
    }
}
