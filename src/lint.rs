//! The shared-hash check: the same hash in two tenants' files is legal (a key is only ever
//! checked against one tenant) but usually a copy-paste mistake ops want to hear of.
//! `keyward check` runs it over parsed files, the server over its index.

use std::collections::{HashMap, HashSet};

use crate::domain::{KeyHash, KeyName, SecurityFile, TenantId};
use crate::index::TenantKeys;

/// A key that has the same hash as a key of another tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedHash {
    pub hash: KeyHash,
    pub tenant: TenantId,
    pub name: KeyName,
}

/// Something holding one tenant's keys.
pub trait TenantHashes {
    fn hashes(&self) -> impl Iterator<Item = (&KeyName, KeyHash)>;
    /// The key holding `hash`, if any (for a lookup without a pass over every key).
    fn holder(&self, hash: &KeyHash) -> Option<&KeyName>;
}

impl TenantHashes for TenantKeys {
    fn hashes(&self) -> impl Iterator<Item = (&KeyName, KeyHash)> {
        self.iter().map(|k| (&k.entry.name, k.entry.hash))
    }
    fn holder(&self, hash: &KeyHash) -> Option<&KeyName> {
        self.by_hash(hash).map(|k| &k.entry.name)
    }
}

impl TenantHashes for SecurityFile {
    fn hashes(&self) -> impl Iterator<Item = (&KeyName, KeyHash)> {
        self.keys.iter().map(|k| (&k.name, k.hash))
    }
    fn holder(&self, hash: &KeyHash) -> Option<&KeyName> {
        self.keys.iter().find(|k| &k.hash == hash).map(|k| &k.name)
    }
}

/// Every hash held by keys of more than one tenant, grouped, in a stable order (by the
/// first key's tenant, then its name). Memory: 8 bytes per key for the length of the call.
pub fn shared_hashes<K, T>(tenants: &[(TenantId, K)]) -> Vec<Vec<SharedHash>>
where
    K: std::ops::Deref<Target = T>,
    T: TenantHashes + ?Sized,
{
    // First pass: the 64-bit prefixes of every hash, sorted; a repeated prefix is a
    // candidate (a real shared hash, or, very rarely, two hashes that begin alike).
    let mut prefixes: Vec<u64> = tenants
        .iter()
        .flat_map(|(_, keys)| keys.hashes().map(|(_, h)| h.prefix_u64()))
        .collect();
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
    for (tenant, keys) in tenants {
        for (name, hash) in keys.hashes() {
            if candidates.contains(&hash.prefix_u64()) {
                by_hash.entry(hash).or_default().push(SharedHash {
                    hash,
                    tenant: tenant.clone(),
                    name: name.clone(),
                });
            }
        }
    }
    let mut groups: Vec<Vec<SharedHash>> = by_hash
        .into_values()
        .filter_map(|mut group| {
            group.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
            group.dedup_by(|a, b| a.tenant == b.tenant);
            (group.len() > 1).then_some(group)
        })
        .collect();
    groups.sort_by(|a, b| (&a[0].tenant, &a[0].name).cmp(&(&b[0].tenant, &b[0].name)));
    groups
}

/// Keys of tenants other than `tenant` whose hash is one of `hashes` (what a reload of
/// `tenant` added), sorted by tenant. At most one lookup per key.
pub fn sharing<K, T>(
    tenants: &[(TenantId, K)],
    tenant: &TenantId,
    hashes: &[KeyHash],
) -> Vec<SharedHash>
where
    K: std::ops::Deref<Target = T>,
    T: TenantHashes + ?Sized,
{
    let wanted: HashSet<&KeyHash> = hashes.iter().collect();
    let mut out = Vec::new();
    if wanted.is_empty() {
        return out;
    }
    for (other, keys) in tenants.iter().filter(|(t, _)| t != tenant) {
        for hash in &wanted {
            if let Some(name) = keys.holder(hash) {
                out.push(SharedHash {
                    hash: **hash,
                    tenant: other.clone(),
                    name: name.clone(),
                });
            }
        }
    }
    out.sort_by(|a, b| (&a.tenant, &a.name).cmp(&(&b.tenant, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(keys: &[(&str, char)]) -> SecurityFile {
        let mut text = String::from("apiKeys:\n");
        for (name, digit) in keys {
            let hash: String = std::iter::repeat_n(*digit, 64).collect();
            text.push_str(&format!("  - name: {name}\n    hash: {hash}\n"));
        }
        SecurityFile::parse(&text).unwrap()
    }

    fn names(group: &[SharedHash]) -> Vec<String> {
        group
            .iter()
            .map(|s| format!("{}/{}", s.tenant, s.name))
            .collect()
    }

    fn tenants(list: &[(&str, SecurityFile)]) -> Vec<(TenantId, Box<SecurityFile>)> {
        list.iter()
            .map(|(t, f)| (TenantId::parse(t).unwrap(), Box::new(f.clone())))
            .collect()
    }

    fn with_hashes(keys: &[(&str, String)]) -> SecurityFile {
        let mut text = String::from("apiKeys:\n");
        for (name, hash) in keys {
            text.push_str(&format!("  - name: {name}\n    hash: {hash}\n"));
        }
        SecurityFile::parse(&text).unwrap()
    }

    #[test]
    fn hashes_shared_across_tenants_are_found_in_one_pass_and_per_tenant() {
        let all = tenants(&[
            ("acme", file(&[("a1", '1'), ("a2", '2')])),
            ("globex", file(&[("g1", '1'), ("g3", '3')])),
            ("initech", file(&[("i3", '3'), ("i4", '4'), ("i1", '1')])),
        ]);

        let groups: Vec<Vec<String>> = shared_hashes(&all).iter().map(|g| names(g)).collect();
        assert_eq!(
            groups,
            [
                vec!["acme/a1", "globex/g1", "initech/i1"],
                vec!["globex/g3", "initech/i3"],
            ]
        );

        let acme = TenantId::parse("acme").unwrap();
        let two = KeyHash::parse(&"2".repeat(64)).unwrap();
        assert!(sharing(&all, &acme, &[two]).is_empty());
        let one = KeyHash::parse(&"1".repeat(64)).unwrap();
        assert_eq!(
            names(&sharing(&all, &acme, &[one])),
            ["globex/g1", "initech/i1"]
        );
    }

    #[test]
    fn hashes_that_only_begin_alike_are_not_shared() {
        let alike = |tail: char| format!("{}{}", "ab".repeat(8), tail.to_string().repeat(48));
        let all = tenants(&[
            ("acme", with_hashes(&[("a", alike('1'))])),
            (
                "globex",
                with_hashes(&[("g", alike('2')), ("h", alike('1'))]),
            ),
        ]);

        let groups: Vec<Vec<String>> = shared_hashes(&all).iter().map(|g| names(g)).collect();
        assert_eq!(groups, [vec!["acme/a", "globex/h"]]);
    }

    #[test]
    fn the_order_of_groups_is_stable() {
        let all = tenants(&[
            ("zeta", file(&[("z1", 'a'), ("z2", 'c')])),
            ("acme", file(&[("a1", 'a'), ("a2", 'b')])),
            ("beta", file(&[("b1", 'b'), ("b2", 'd')])),
        ]);
        let groups: Vec<Vec<String>> = shared_hashes(&all).iter().map(|g| names(g)).collect();
        assert_eq!(
            groups,
            vec![vec!["acme/a1", "zeta/z1"], vec!["acme/a2", "beta/b1"]]
        );
    }
}
