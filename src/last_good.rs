//! The last valid version of each tenant's keys, kept in `state_dir/last-good/`: a restart
//! whose file has not changed decodes it instead of parsing the YAML again, and a restart
//! whose file is broken serves it instead of nothing.
//!
//! One file per tenant, `<tenant>.snapshot`:
//!
//! | bytes  | what                                                              |
//! |--------|-------------------------------------------------------------------|
//! | 0..8   | magic, `keyward\0`                                                |
//! | 8..12  | format version, u32 little-endian                                 |
//! | 12..44 | SHA-256 of the `security.yml` the keys came from                  |
//! | 44..76 | SHA-256 of the payload                                            |
//! | 76..   | the payload: the keys, encoded with postcard (`Payload` below)    |
//!
//! The source digest tells an unchanged file once it has been read and hashed: the file is
//! always read, so a snapshot is never trusted over it. The payload digest makes a torn,
//! truncated or corrupted snapshot worthless rather than wrong, and one of another format
//! version is ignored; either way the file is parsed. (It is no signature: whoever can
//! write `state_dir` can write a snapshot, as they can `last_used.json` and git's journal.)
//! Snapshots are replaced by rename and never live inside `tenants_dir`.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write as _};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domain::{
    Description, KeyEntry, KeyHash, KeyName, Permission, Permissions, PreviousHash, SecurityFile,
    Subject, TenantId,
};

const MAGIC: [u8; 8] = *b"keyward\0";
/// Version 1 was YAML text in `<tenant>.yml`; a change to `Payload` is a new version.
const VERSION: u32 = 2;
const HEADER_LEN: usize = 76;
const EXTENSION: &str = "snapshot";

/// A snapshot read back.
#[derive(Debug)]
pub struct Saved {
    pub file: SecurityFile,
    /// SHA-256 of the `security.yml` it was taken from.
    pub source: [u8; 32],
    pub saved_at: Option<OffsetDateTime>,
}

pub struct LastGood {
    dir: PathBuf,
}

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

/// Why a snapshot is not used; never anything read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unusable {
    /// Kept for other content of the file: the file changed since (no warning).
    OtherSource,
    NotASnapshot,
    OtherVersion,
    Damaged,
}

impl LastGood {
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            dir: state_dir.join("last-good"),
        }
    }

    fn path(&self, tenant: &TenantId) -> PathBuf {
        self.dir.join(format!("{tenant}.{EXTENSION}"))
    }

    /// Keeps `keys` (which came from content with digest `source`) as the tenant's last
    /// valid version, replacing what was kept.
    pub fn save<'a>(
        &self,
        tenant: &TenantId,
        source: [u8; 32],
        keys: impl IntoIterator<Item = &'a KeyEntry>,
    ) -> io::Result<()> {
        let path = self.path(tenant);
        let payload = encode(keys);
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
        bytes.extend_from_slice(&source);
        bytes.extend_from_slice(&Sha256::digest(&payload));
        bytes.extend_from_slice(&payload);
        fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".last-good.")
            .tempfile_in(&self.dir)?;
        tmp.write_all(&bytes)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        // What version 1 kept for this tenant is superseded.
        let _ = fs::remove_file(self.dir.join(format!("{tenant}.yml")));
        Ok(())
    }

    /// The keys kept for exactly the content whose digest is `source`, if a whole snapshot
    /// of it is kept: the fast start, which parses no YAML for an unchanged file.
    pub fn recall(&self, tenant: &TenantId, source: &[u8; 32]) -> Option<SecurityFile> {
        self.read(tenant, Some(source)).map(|(file, _)| file)
    }

    /// The tenant's last valid version, whatever its source, if one is kept and whole.
    pub fn load(&self, tenant: &TenantId) -> Option<Saved> {
        let (file, source) = self.read(tenant, None)?;
        let saved_at = fs::metadata(self.path(tenant))
            .and_then(|m| m.modified())
            .ok()
            .map(OffsetDateTime::from);
        Some(Saved {
            file,
            source,
            saved_at,
        })
    }

    /// Reads and checks a snapshot (of content `source`, when given). A missing one is
    /// silently absent, and so is one of other content (the file changed since); any other
    /// that cannot be used is warned about.
    fn read(
        &self,
        tenant: &TenantId,
        source: Option<&[u8; 32]>,
    ) -> Option<(SecurityFile, [u8; 32])> {
        // Read whole: a snapshot is a third of its file's size, and one read is fewer calls.
        let bytes = match fs::read(self.path(tenant)) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "cannot read the last-good snapshot");
                return None;
            }
        };
        let why = match check_and_decode(&bytes, source) {
            Ok(found) => return Some(found),
            Err(Unusable::OtherSource) => return None,
            Err(Unusable::NotASnapshot) => "it is not a keyward snapshot",
            Err(Unusable::OtherVersion) => "it is of another format version",
            Err(Unusable::Damaged) => "it is damaged or truncated",
        };
        tracing::warn!(%tenant, why, "ignoring the last-good snapshot");
        None
    }
}

/// Checks the header, then the payload's digest, and decodes it.
fn check_and_decode(
    bytes: &[u8],
    source: Option<&[u8; 32]>,
) -> Result<(SecurityFile, [u8; 32]), Unusable> {
    let (header, payload) = bytes
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(Unusable::Damaged)?;
    if header[..8] != MAGIC {
        return Err(Unusable::NotASnapshot);
    }
    let field = |r: std::ops::Range<usize>| -> [u8; 32] { header[r].try_into().expect("32 bytes") };
    if header[8..12] != VERSION.to_le_bytes() {
        return Err(Unusable::OtherVersion);
    }
    let saved_from = field(12..44);
    if source.is_some_and(|s| *s != saved_from) {
        return Err(Unusable::OtherSource);
    }
    if <[u8; 32]>::from(Sha256::digest(payload)) != field(44..76) {
        return Err(Unusable::Damaged);
    }
    let file = decode(payload).ok_or(Unusable::Damaged)?;
    Ok((file, saved_from))
}

fn encode<'a>(keys: impl IntoIterator<Item = &'a KeyEntry>) -> Vec<u8> {
    let mut sets: Vec<&Permissions> = Vec::new();
    let mut positions: HashMap<&Permissions, u32> = HashMap::new();
    let keys = keys
        .into_iter()
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
    postcard::to_allocvec(&payload).expect("keys always encode")
}

/// Decodes a payload whose digest matched; every value still goes through its domain type.
fn decode(bytes: &[u8]) -> Option<SecurityFile> {
    let (payload, rest): (Payload, _) = postcard::take_from_bytes(bytes).ok()?;
    if !rest.is_empty() {
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
        .map(|k| {
            Some(KeyEntry {
                name: KeyName::parse(k.name).ok()?,
                hash: KeyHash::from_bytes(k.hash),
                enabled: k.enabled,
                permissions: sets.get(k.permissions as usize)?.clone(),
                description: k.description.map(Description::parse).transpose().ok()?,
                created_at: k.created_at,
                created_by: k.created_by.map(Subject::parse).transpose().ok()?,
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
    permissions: [x, 'orders:*']
    description: \"two\\nlines\"
    createdAt: 2026-11-22T10:00:00+02:00
    createdBy: alice
    expiresAt: 2027-01-01T00:00:00.5Z
    previousHashes:
      - hash: sha256:2222222222222222222222222222222222222222222222222222222222222222
        expiresAt: 2026-12-01T00:00:00Z
  - name: b
    hash: 3333333333333333333333333333333333333333333333333333333333333333
    enabled: false
    permissions: [x, 'orders:*']
  - name: c
    hash: 4444444444444444444444444444444444444444444444444444444444444444
";

    fn kept() -> (tempfile::TempDir, LastGood, TenantId, SecurityFile) {
        let dir = tempfile::tempdir().unwrap();
        let kept = LastGood::new(dir.path().to_path_buf());
        let file = SecurityFile::parse(FILE).unwrap();
        kept.save(&TenantId::parse("acme").unwrap(), [7; 32], &file.keys)
            .unwrap();
        (dir, kept, TenantId::parse("acme").unwrap(), file)
    }

    #[test]
    fn a_kept_version_comes_back_as_it_was_and_only_for_its_source() {
        let (_dir, kept, acme, file) = kept();

        let recalled = kept.recall(&acme, &[7; 32]).unwrap();
        assert_eq!(recalled, file);
        // Equality of timestamps ignores the offset: the offset must come back too.
        let offsets = |f: &SecurityFile| f.keys[0].created_at.map(|t| t.offset());
        assert_eq!(offsets(&recalled), offsets(&file));
        let saved = kept.load(&acme).unwrap();
        assert_eq!(saved.file, file);
        assert_eq!(saved.source, [7; 32]);
        assert!(saved.saved_at.is_some());

        assert!(kept.recall(&acme, &[8; 32]).is_none(), "another source");
        assert!(
            kept.load(&acme).is_some(),
            "kept for the invalid-file fallback"
        );
        let other = TenantId::parse("other").unwrap();
        assert!(kept.recall(&other, &[7; 32]).is_none() && kept.load(&other).is_none());
    }

    #[test]
    fn keys_with_one_permission_set_share_it() {
        let (_dir, kept, acme, _) = kept();
        let keys = kept.recall(&acme, &[7; 32]).unwrap().keys;
        assert_eq!(keys[0].permissions.as_strs(), ["x", "orders:*"]);
        assert_eq!(keys[0].permissions, keys[1].permissions);
        assert!(keys[2].permissions.is_empty());
    }

    #[test]
    fn a_damaged_truncated_or_foreign_snapshot_is_never_used() {
        let (dir, kept, acme, file) = kept();
        let path = dir.path().join("last-good/acme.snapshot");
        let good = fs::read(&path).unwrap();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let mut other_version = good.clone();
        other_version[8] = 3;
        let mut other_magic = good.clone();
        other_magic[0] = b'K';
        let damaged: [(&str, Vec<u8>); 6] = [
            ("a flipped bit", flipped),
            ("truncated payload", good[..good.len() - 10].to_vec()),
            ("truncated header", good[..40].to_vec()),
            ("empty", Vec::new()),
            ("another version", other_version),
            ("another magic", other_magic),
        ];
        for (what, bytes) in damaged {
            fs::write(&path, &bytes).unwrap();
            assert!(kept.recall(&acme, &[7; 32]).is_none(), "{what}");
            fs::write(&path, &bytes).unwrap();
            assert!(kept.load(&acme).is_none(), "{what}");
            // Whatever was there, the next save writes a whole snapshot again.
            kept.save(&acme, [7; 32], &file.keys).unwrap();
            assert_eq!(kept.recall(&acme, &[7; 32]).unwrap(), file, "{what}");
        }
    }

    #[test]
    fn a_payload_with_trailing_bytes_is_refused_even_with_its_digest_right() {
        let payload = encode(&SecurityFile::parse(FILE).unwrap().keys);
        assert!(decode(&payload).is_some());
        let mut longer = payload.clone();
        longer.push(0);
        assert!(decode(&longer).is_none());
        assert!(decode(&payload[..payload.len() - 1]).is_none());
    }

    #[test]
    fn a_version_one_snapshot_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("last-good/acme.yml");
        fs::create_dir_all(v1.parent().unwrap()).unwrap();
        fs::write(
            &v1,
            format!(
                "# keyward last-good v1 {} {}\n{FILE}",
                "7".repeat(64),
                "0".repeat(64)
            ),
        )
        .unwrap();
        let kept = LastGood::new(dir.path().to_path_buf());
        let acme = TenantId::parse("acme").unwrap();
        assert!(kept.load(&acme).is_none(), "another format: not read");

        kept.save(&acme, [7; 32], &SecurityFile::parse(FILE).unwrap().keys)
            .unwrap();
        assert!(!v1.exists());
        assert!(kept.load(&acme).is_some());
    }
}
