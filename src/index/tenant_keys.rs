//! One tenant's keys, built from a valid file: what every verification reads.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use hashbrown::HashTable;
use time::OffsetDateTime;

use super::recent_uses::{RecentUses, UseSink};
use crate::domain::{
    KeyEntry, KeyHash, KeyName, Permissions, Refusal, SecurityFile, TenantId, Verdict,
};
use crate::rate_limit::{Decision, KeyLimiter, RateLimits};

/// One tenant's keys: sorted by name (for the admin API, binary search) and by hash (for
/// verification). Compact on purpose: a million keys must fit in a few hundred MB.
#[derive(Default, Debug)]
pub struct TenantKeys {
    keys: Vec<IndexedKey>,
    /// Positions in `keys`, by the key's current hash (which the entry holds): a slot is 4
    /// bytes where a map from hash to position took 36, an eighth of the index's memory.
    by_hash: HashTable<u32>,
    /// Seeded, so a file of hashes made to collide cannot slow a tenant down; and fast,
    /// since every verification hashes once.
    hasher: foldhash::fast::RandomState,
    /// Old hashes kept for a rotation's grace period (few): index and end of grace.
    previous: HashMap<KeyHash, (u32, OffsetDateTime)>,
    /// Set when `lastUsedAt` is shared with other replicas: where a use is noted for them.
    uses: OnceLock<UseSink>,
}

/// A key as the index holds it: the entry, when it was last used, and its limiter when
/// it has a rate limit.
#[derive(Debug)]
pub struct IndexedKey {
    pub entry: Arc<KeyEntry>,
    /// Unix seconds of the last successful verification (0: never).
    last_used: AtomicI64,
    /// None for a key without a limit: it holds nothing and costs one branch.
    limiter: Option<Arc<KeyLimiter>>,
}

impl IndexedKey {
    pub fn last_used(&self) -> Option<OffsetDateTime> {
        match self.last_used.load(Ordering::Relaxed) {
            0 => None,
            t => OffsetDateTime::from_unix_timestamp(t).ok(),
        }
    }

    /// Records a use at most once per second per key: a load, and a store only when the
    /// second changed, so the hot path does not fight over the cache line. True when this
    /// use moved the key to a new second (what other replicas need to hear about).
    fn touch(&self, now: i64) -> bool {
        self.last_used.load(Ordering::Relaxed) < now
            && self.last_used.fetch_max(now, Ordering::Relaxed) < now
    }

    /// Restores a last use read back from the state directory.
    pub fn restore_last_used(&self, unix: i64) {
        self.last_used.fetch_max(unix, Ordering::Relaxed);
    }
}

impl TenantKeys {
    /// Builds a tenant's keys; `previous` (the tenant's current index) hands each key that
    /// keeps its name its last use, and its limiter when its limit is unchanged too (what
    /// it spent stays spent). (A use recorded on the old index while this one is being
    /// built can be lost: lastUsedAt is to the second, not an audit log.) Limiters for the
    /// others come from `limits`.
    pub fn build(file: &SecurityFile, previous: Option<&TenantKeys>, limits: &RateLimits) -> Self {
        Self::from_entries(file.keys.clone(), previous, limits)
    }

    /// `build` for a file nothing else holds: its entries move into the index instead of
    /// being copied (a start-up builds a million of them).
    pub fn build_owned(
        file: Arc<SecurityFile>,
        previous: Option<&TenantKeys>,
        limits: &RateLimits,
    ) -> Self {
        let entries = match Arc::try_unwrap(file) {
            Ok(file) => file.keys,
            Err(shared) => shared.keys.clone(),
        };
        Self::from_entries(entries, previous, limits)
    }

    fn from_entries(
        entries: Vec<KeyEntry>,
        previous: Option<&TenantKeys>,
        limits: &RateLimits,
    ) -> Self {
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
            let before = previous.and_then(|p| p.get(&entry.name));
            IndexedKey {
                last_used: AtomicI64::new(
                    before.map_or(0, |k| k.last_used.load(Ordering::Relaxed)),
                ),
                limiter: entry.rate_limit.map(|limit| {
                    before
                        .and_then(|k| k.limiter.as_ref())
                        .filter(|l| l.limit() == limit)
                        .map_or_else(|| limits.limiter(&entry.name, limit), Arc::clone)
                }),
                entry: Arc::new(entry),
            }
        }));
        keys.sort_by(|a, b| a.entry.name.cmp(&b.entry.name));
        let hasher = foldhash::fast::RandomState::default();
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
            uses: OnceLock::new(),
        }
    }

    /// From now on, a use that moves a key to a new second is noted in `uses`, under
    /// `tenant`. Set once, when the index publishes these keys.
    pub(super) fn share_uses(&self, tenant: &TenantId, uses: &Arc<RecentUses>) {
        let _ = self.uses.set(UseSink {
            tenant: tenant.clone(),
            uses: uses.clone(),
        });
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
    /// left in its grace period (which may verify and revoke itself, nothing more). Never
    /// looks at the key's rate limit (the admin API's own key checks).
    pub fn check<S: AsRef<str>>(
        &self,
        hash: &KeyHash,
        required: &[S],
        now: OffsetDateTime,
    ) -> Result<Verified<'_>, Refusal> {
        let (key, grace_until) = self.admit(hash, required, now)?;
        self.touch(key, now);
        Ok(Verified {
            entry: &key.entry,
            grace_until,
        })
    }

    /// `check`, then, last, the key's rate limit: one verification of its allowance is
    /// spent when everything else holds, none for a key refused otherwise. The decision is
    /// there for a limited key (allowed or not), for the answer's headers.
    pub fn check_and_spend<S: AsRef<str>>(
        &self,
        hash: &KeyHash,
        required: &[S],
        now: OffsetDateTime,
    ) -> (Result<Verified<'_>, Refusal>, Option<Decision>) {
        let (key, grace_until) = match self.admit(hash, required, now) {
            Ok(admitted) => admitted,
            Err(r) => return (Err(r), None),
        };
        let decision = spend(key);
        if decision.is_some_and(|d| !d.allowed) {
            return (Err(Refusal::RateLimited), decision);
        }
        self.touch(key, now);
        let verified = Verified {
            entry: &key.entry,
            grace_until,
        };
        (Ok(verified), decision)
    }

    /// Notes a successful verification as the key's last use.
    fn touch(&self, key: &IndexedKey, now: OffsetDateTime) {
        let second = now.unix_timestamp();
        if key.touch(second)
            && let Some(sink) = self.uses.get()
        {
            sink.uses.note(&sink.tenant, &key.entry, second);
        }
    }

    /// Every check but the rate limit: the key, and the end of its grace when the hash is
    /// one a rotation left.
    fn admit<S: AsRef<str>>(
        &self,
        hash: &KeyHash,
        required: &[S],
        now: OffsetDateTime,
    ) -> Result<(&IndexedKey, Option<OffsetDateTime>), Refusal> {
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
        Ok((key, grace_until))
    }
}

/// One verification of a limited key's allowance; nothing for a key without a limit.
#[cfg(feature = "rate-limits")]
fn spend(key: &IndexedKey) -> Option<Decision> {
    key.limiter.as_ref().map(|l| l.check())
}

/// Built without rate limits (to measure what they cost): limits are read from files and
/// kept, never enforced.
#[cfg(not(feature = "rate-limits"))]
fn spend(_key: &IndexedKey) -> Option<Decision> {
    None
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
