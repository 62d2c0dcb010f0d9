//! The bytes of a last-good file: a header that says whose keys they are and of which
//! content, then the keys, encoded with postcard. Apart from where and when the files are
//! kept (`last_good`) because a change here is a new format version.
//!
//! Each `<tenant>.snapshot` file:
//!
//! | bytes  | what                                                              |
//! |--------|-------------------------------------------------------------------|
//! | 0..8   | magic, `keyward\0`                                                |
//! | 8..12  | format version, u32 little-endian                                 |
//! | 12..44 | SHA-256 of the `security.yml` the keys came from                  |
//! | 44..76 | SHA-256 of the payload                                            |
//! | 76..108| the owner: which tenant directory the keys came from (`Owner`)    |
//! | 108..  | the payload: the keys, encoded with postcard (`Payload` below),  |
//! |        | then (version 4) each key's hint and rotation time (`Additions`)  |

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::Owner;
use crate::domain::{
    Description, KeyEntry, KeyHash, KeyName, Permission, Permissions, PreviousHash, SecurityFile,
    Subject, TokenHint,
};

const MAGIC: [u8; 8] = *b"keyward\0";
/// Version 1 was YAML text in `<tenant>.yml`; version 2 had no owner; version 3 had no
/// `Additions`, and is still read (as keys without hints), so an upgrade whose file is
/// invalid keeps serving the last good keys. A change to `Payload` is a new version.
const VERSION: u32 = 4;
const VERSION_WITHOUT_ADDITIONS: u32 = 3;
const HEADER_LEN: usize = 108;

/// The keys as written: what `SecurityFile` holds, with each distinct permission set once
/// (most keys of a tenant share one of a few) and hashes as bytes.
#[derive(Serialize, Deserialize)]
struct Payload<'a> {
    #[serde(borrow)]
    permission_sets: Vec<Vec<&'a str>>,
    #[serde(borrow)]
    keys: Vec<Key<'a>>,
}

#[derive(Serialize, Deserialize)]
struct Key<'a> {
    name: &'a str,
    hash: [u8; 32],
    enabled: bool,
    /// Position in `permission_sets`.
    permissions: u32,
    description: Option<&'a str>,
    created_at: Option<OffsetDateTime>,
    created_by: Option<&'a str>,
    expires_at: Option<OffsetDateTime>,
    previous_hashes: Vec<([u8; 32], OffsetDateTime)>,
}

/// What version 4 added, one per key in `Payload::keys`' order: after the payload, so the
/// payload itself reads as version 3 wrote it.
type Additions<'a> = Vec<(Option<&'a str>, Option<OffsetDateTime>)>;

/// Why a snapshot is not used; never anything read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unusable {
    /// Kept for other content of the file: the file changed since (no warning).
    OtherSource,
    /// Kept by another tenant of the same name, since removed.
    OtherOwner,
    NotASnapshot,
    OtherVersion,
    Damaged,
}

/// A whole last-good file: the header, then the encoded keys.
pub(super) fn to_bytes<'a>(
    source: [u8; 32],
    owner: Owner,
    keys: impl IntoIterator<Item = &'a KeyEntry>,
) -> Vec<u8> {
    let payload = encode(keys);
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&source);
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&owner.0);
    bytes.extend_from_slice(&payload);
    bytes
}

/// Checks the header, then the payload's digest, and decodes it.
pub(super) fn check_and_decode(
    bytes: &[u8],
    source: Option<&[u8; 32]>,
    owner: Option<Owner>,
) -> Result<(SecurityFile, [u8; 32]), Unusable> {
    let (header, payload) = bytes
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(Unusable::Damaged)?;
    if header[..8] != MAGIC {
        return Err(Unusable::NotASnapshot);
    }
    let field = |r: std::ops::Range<usize>| -> [u8; 32] { header[r].try_into().expect("32 bytes") };
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != VERSION && version != VERSION_WITHOUT_ADDITIONS {
        return Err(Unusable::OtherVersion);
    }
    let saved_from = field(12..44);
    if source.is_some_and(|s| *s != saved_from) {
        return Err(Unusable::OtherSource);
    }
    if owner.is_some_and(|o| o.0 != field(76..108)) {
        return Err(Unusable::OtherOwner);
    }
    if <[u8; 32]>::from(Sha256::digest(payload)) != field(44..76) {
        return Err(Unusable::Damaged);
    }
    let file = decode_version(payload, version).ok_or(Unusable::Damaged)?;
    Ok((file, saved_from))
}

pub(super) fn encode<'a>(keys: impl IntoIterator<Item = &'a KeyEntry>) -> Vec<u8> {
    let all: Vec<&KeyEntry> = keys.into_iter().collect();
    let mut sets: Vec<&Permissions> = Vec::new();
    let mut positions: HashMap<&Permissions, u32> = HashMap::new();
    let keys = all
        .iter()
        .map(|k| {
            let set = *positions.entry(&k.permissions).or_insert_with(|| {
                sets.push(&k.permissions);
                sets.len() as u32 - 1
            });
            Key {
                name: k.name.as_str(),
                hash: *k.hash.as_bytes(),
                enabled: k.enabled,
                permissions: set,
                description: k.description.as_ref().map(Description::as_str),
                created_at: k.created_at,
                created_by: k.created_by.as_ref().map(Subject::as_str),
                expires_at: k.expires_at,
                previous_hashes: k
                    .previous_hashes
                    .iter()
                    .map(|p| (*p.hash.as_bytes(), p.expires_at))
                    .collect(),
            }
        })
        .collect();
    let payload = Payload {
        permission_sets: sets.iter().map(|s| s.as_strs()).collect(),
        keys,
    };
    let mut bytes = postcard::to_allocvec(&payload).expect("keys always encode");
    let additions: Additions = all
        .iter()
        .map(|k| (k.hint.as_ref().map(TokenHint::as_str), k.rotated_at))
        .collect();
    bytes.extend(postcard::to_allocvec(&additions).expect("keys always encode"));
    bytes
}

/// Decodes a payload of this version whose digest matched.
#[cfg(test)]
pub(super) fn decode(bytes: &[u8]) -> Option<SecurityFile> {
    decode_version(bytes, VERSION)
}

/// Decodes a payload whose digest matched; every value still goes through its domain type.
fn decode_version(bytes: &[u8], version: u32) -> Option<SecurityFile> {
    let (payload, rest): (Payload, _) = postcard::take_from_bytes(bytes).ok()?;
    let (additions, rest): (Additions, _) = if version == VERSION_WITHOUT_ADDITIONS {
        (vec![(None, None); payload.keys.len()], rest)
    } else {
        postcard::take_from_bytes(rest).ok()?
    };
    if !rest.is_empty() || additions.len() != payload.keys.len() {
        return None;
    }
    let sets = payload
        .permission_sets
        .iter()
        .map(|set| {
            let list = set
                .iter()
                .map(|p| Permission::parse(p).ok())
                .collect::<Option<_>>()?;
            Permissions::new(list).ok()
        })
        .collect::<Option<Vec<_>>>()?;
    let keys = payload
        .keys
        .into_iter()
        .zip(additions)
        .map(|(k, (hint, rotated_at))| {
            Some(KeyEntry {
                name: KeyName::parse(k.name).ok()?,
                hash: KeyHash::from_bytes(k.hash),
                hint: hint.map(TokenHint::parse).transpose().ok()?,
                enabled: k.enabled,
                permissions: sets.get(k.permissions as usize)?.clone(),
                description: k.description.map(Description::parse).transpose().ok()?,
                created_at: k.created_at,
                created_by: k.created_by.map(Subject::parse).transpose().ok()?,
                rotated_at,
                expires_at: k.expires_at,
                previous_hashes: k
                    .previous_hashes
                    .into_iter()
                    .map(|(h, expires_at)| PreviousHash {
                        hash: KeyHash::from_bytes(h),
                        expires_at,
                    })
                    .collect(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(SecurityFile { keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
apiKeys:
  - name: a
    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
    hint: kw_...0eOu
    rotatedAt: 2026-11-23T10:00:00Z
  - name: b
    hash: sha256:2222222222222222222222222222222222222222222222222222222222222222
";

    /// A snapshot as version 3 wrote it: the payload without `Additions`.
    fn version_3(keys: &[KeyEntry]) -> Vec<u8> {
        let encoded = encode(keys);
        let (_, additions): (Payload, _) = postcard::take_from_bytes(&encoded).unwrap();
        let payload = &encoded[..encoded.len() - additions.len()];
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&VERSION_WITHOUT_ADDITIONS.to_le_bytes());
        bytes.extend_from_slice(&[7; 32]);
        bytes.extend_from_slice(&Sha256::digest(payload));
        bytes.extend_from_slice(&[0; 32]);
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn hints_and_rotation_times_come_back_from_a_snapshot() {
        let file = SecurityFile::parse(FILE).unwrap();
        let bytes = to_bytes([7; 32], Owner([0; 32]), &file.keys);
        let (back, _) = check_and_decode(&bytes, None, None).unwrap();
        assert_eq!(back, file);
        assert!(back.keys[0].hint.is_some() && back.keys[0].rotated_at.is_some());
    }

    #[test]
    fn a_version_3_snapshot_still_serves_its_keys_without_hints() {
        let file = SecurityFile::parse(FILE).unwrap();
        let (back, _) = check_and_decode(&version_3(&file.keys), None, None).unwrap();
        let mut expected = file.clone();
        for key in &mut expected.keys {
            key.hint = None;
            key.rotated_at = None;
        }
        assert_eq!(back, expected);
    }
}
