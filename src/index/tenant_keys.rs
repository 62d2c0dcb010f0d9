//! One tenant's keys, built from a valid file: what every verification reads.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use hashbrown::HashTable;
use time::OffsetDateTime;

use crate::domain::{KeyEntry, KeyHash, KeyName, Permissions, Refusal, SecurityFile, Verdict};

/// One tenant's keys: sorted by name (for the admin API, binary search) and by hash (for
/// verification). Compact on purpose: a million keys must fit in a few hundred MB.
#[derive(Default, Debug)]
pub struct TenantKeys {
    keys: Vec<IndexedKey>,
    /// Positions in `keys`, by the key's current hash (which the entry holds): a slot is 4
    /// bytes where a map from hash to position took 36, an eighth of the index's memory.
    by_hash: HashTable<u32>,
    hasher: RandomState,
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

impl TenantKeys {
    /// Builds a tenant's keys; `previous` (the tenant's current index) hands each key that
    /// keeps its name its last use. (A use recorded on the old index while this one is
    /// being built can be lost: lastUsedAt is to the second, not an audit log.)
    pub fn build(file: &SecurityFile, previous: Option<&TenantKeys>) -> Self {
        Self::from_entries(file.keys.clone(), previous)
    }

    /// `build` for a file nothing else holds: its entries move into the index instead of
    /// being copied (a start-up builds a million of them).
    pub fn build_owned(file: Arc<SecurityFile>, previous: Option<&TenantKeys>) -> Self {
        let entries = match Arc::try_unwrap(file) {
            Ok(file) => file.keys,
            Err(shared) => shared.keys.clone(),
        };
        Self::from_entries(entries, previous)
    }

    fn from_entries(entries: Vec<KeyEntry>, previous: Option<&TenantKeys>) -> Self {
        // Keys with equal permissions share one list: most keys of a tenant hold one of a
        // few sets, and the lists are a fifth of the index's memory otherwise. Keys in a
        // row usually hold the same set, so the last one is tried before hashing.
        let mut sets: HashSet<Permissions> = HashSet::new();
        let mut last: Option<Permissions> = None;
        // Not `collect`: it would reuse the entries' allocation, eleven times the size.
        let mut keys: Vec<IndexedKey> = Vec::with_capacity(entries.len());
        keys.extend(entries.into_iter().map(|mut entry| {
            match last.as_ref().filter(|l| **l == entry.permissions) {
                Some(l) => entry.permissions = l.clone(),
                None => {
                    match sets.get(&entry.permissions) {
                        Some(shared) => entry.permissions = shared.clone(),
                        None => {
                            sets.insert(entry.permissions.clone());
                        }
                    }
                    last = Some(entry.permissions.clone());
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
        }));
        keys.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
        let hasher = RandomState::new();
        let hash_of = |i: &u32| hasher.hash_one(keys[*i as usize].entry.hash);
        let mut by_hash = HashTable::with_capacity(keys.len());
        let mut previous_hashes = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let i = i as u32;
            let h = hasher.hash_one(key.entry.hash);
            // A valid file has no hash twice; were one there, the last would win, as in a map.
            match by_hash.entry(
                h,
                |j| keys[*j as usize].entry.hash == key.entry.hash,
                hash_of,
            ) {
                hashbrown::hash_table::Entry::Occupied(mut held) => *held.get_mut() = i,
                hashbrown::hash_table::Entry::Vacant(free) => {
                    free.insert(i);
                }
            }
            for p in &key.entry.previous_hashes {
                previous_hashes.insert(p.hash, (i, p.expires_at));
            }
        }
        Self {
            keys,
            by_hash,
            hasher,
            previous: previous_hashes,
        }
    }

    /// The key whose current hash is `hash`.
    pub fn by_hash(&self, hash: &KeyHash) -> Option<&IndexedKey> {
        self.position(hash).map(|i| &self.keys[i as usize])
    }

    fn position(&self, hash: &KeyHash) -> Option<u32> {
        let h = self.hasher.hash_one(hash);
        self.by_hash
            .find(h, |i| self.keys[*i as usize].entry.hash == *hash)
            .copied()
    }

    pub fn get(&self, name: &KeyName) -> Option<&IndexedKey> {
        self.keys
            .binary_search_by(|k| k.entry.name.cmp(name))
            .ok()
            .map(|i| &self.keys[i])
    }

    /// The key that holds `hash` as its current token, or as a grace token whose grace is
    /// not over at `now`; disabled and expired keys included. Read-only: unlike `check`,
    /// it is not a use of the key, so its last use stays as it was.
    pub fn holder(&self, hash: &KeyHash, now: OffsetDateTime) -> Option<(&IndexedKey, Holding)> {
        if let Some(i) = self.position(hash) {
            return Some((&self.keys[i as usize], Holding::Current));
        }
        let &(i, until) = self.previous.get(hash)?;
        (until > now).then(|| (&self.keys[i as usize], Holding::Grace))
    }

    /// Every key, sorted by name.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &IndexedKey> {
        self.keys.iter()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The hashes of `file` that these keys do not hold (a reload's new keys).
    pub fn added_by(&self, file: &SecurityFile) -> Vec<KeyHash> {
        file.keys
            .iter()
            .map(|k| k.hash)
            .filter(|h| self.by_hash(h).is_none())
            .collect()
    }

    /// Checks a presented key's hash, then that it may do every one of `required`.
    pub fn verify<S: AsRef<str>>(
        &self,
        hash: &KeyHash,
        required: &[S],
        now: OffsetDateTime,
    ) -> Verdict {
        match self.check(hash, required, now) {
            Ok(v) => Verdict::Valid(v.entry.clone()),
            Err(r) => Verdict::Invalid(r),
        }
    }

    /// `verify`, saying also whether the hash is the key's current one or one a rotation
    /// left in its grace period (which may verify and revoke itself, nothing more).
    pub fn check<S: AsRef<str>>(
        &self,
        hash: &KeyHash,
        required: &[S],
        now: OffsetDateTime,
    ) -> Result<Verified<'_>, Refusal> {
        let (i, grace_until) = match self.position(hash) {
            Some(i) => (i, None),
            None => match self.previous.get(hash) {
                Some(&(i, until)) => (i, Some(until)),
                None => return Err(Refusal::NotFound),
            },
        };
        let key = &self.keys[i as usize];
        let entry = &key.entry;
        if grace_until.is_some_and(|t| t <= now) || entry.is_expired(now) {
            return Err(Refusal::Expired);
        }
        if !entry.enabled {
            return Err(Refusal::Disabled);
        }
        if !required
            .iter()
            .all(|r| entry.permissions.grants(r.as_ref()))
        {
            return Err(Refusal::InsufficientPermissions);
        }
        key.touch(now);
        Ok(Verified { entry, grace_until })
    }
}

/// Which of a key's tokens a looked-up token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// The key's current token.
    Current,
    /// A token a rotation replaced, still in its grace period.
    Grace,
}

/// A presented token that verified: its key, and when it was a token the key was rotated
/// away from, the end of its grace period. Borrowed from the index, which the answer is
/// written from: no reference count on the key changes on the hot path.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    pub entry: &'a Arc<KeyEntry>,
    pub grace_until: Option<OffsetDateTime>,
}

impl Verified<'_> {
    /// A token rotated out, still in its grace period.
    pub fn is_grace(&self) -> bool {
        self.grace_until.is_some()
    }

    /// When this token stops working: the key's expiry, or the end of its grace if sooner.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        match (self.grace_until, self.entry.expires_at) {
            (Some(g), Some(e)) => Some(g.min(e)),
            (g, e) => g.or(e),
        }
    }
}
