//! The last valid version of each tenant's keys, kept in `state_dir/last-good/`: a restart
//! whose file has not changed decodes it instead of parsing the YAML again, and a restart
//! whose file is broken serves it instead of nothing.
//!
//! One file per tenant, `<tenant>.snapshot`, in the format `format` describes.
//!
//! The source digest tells an unchanged file once it has been read and hashed: the file is
//! always read, so a snapshot is never trusted over it. The payload digest makes a torn,
//! truncated or corrupted snapshot worthless rather than wrong, and one of another format
//! version is ignored; either way the file is parsed. (It is no signature: whoever can
//! write `state_dir` can write a snapshot, as they can `last_used.json` and git's journal.)
//! Snapshots are replaced by rename and never live inside `tenants_dir`.
//!
//! A snapshot serves an invalid file only for the tenant that wrote it: its owner must be
//! the tenant directory there is now (its device, inode and birth time), so a tenant
//! removed and created again under the same name, while keyward ran or while it was
//! down, never serves the removed one's keys. A scan that finds a tenant gone deletes its
//! snapshot too.

mod format;

use std::fs;
use std::io::{self, Write as _};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domain::{KeyEntry, SecurityFile, TenantId};
use format::{Unusable, check_and_decode};

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

/// Which tenant a snapshot belongs to: a digest of its directory's identity. Two owners
/// are the same tenant; a directory removed and made again is another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner([u8; 32]);

impl Owner {
    /// The directory at `dir` as it is now: device, inode, and birth time where the
    /// filesystem records one (an inode number alone can be handed out again at once).
    /// None when it cannot be examined.
    pub fn of_dir(dir: &std::path::Path) -> Option<Self> {
        use rustix::fs::{AtFlags, CWD, StatxFlags, statx};
        let st = statx(
            CWD,
            dir,
            AtFlags::empty(),
            StatxFlags::INO | StatxFlags::BTIME,
        )
        .ok()?;
        let born = if st.stx_mask & StatxFlags::BTIME.bits() != 0 {
            (st.stx_btime.tv_sec, st.stx_btime.tv_nsec)
        } else {
            (0, 0)
        };
        let mut h = Sha256::new();
        h.update(b"dir");
        h.update(st.stx_dev_major.to_le_bytes());
        h.update(st.stx_dev_minor.to_le_bytes());
        h.update(st.stx_ino.to_le_bytes());
        h.update(born.0.to_le_bytes());
        h.update(born.1.to_le_bytes());
        Some(Self(h.finalize().into()))
    }

    /// A tenant of a served commit (git mode): named by its id alone, since a commit has no
    /// directory identity. Its snapshot is deleted when a served commit drops the tenant.
    pub fn of_name(tenant: &TenantId) -> Self {
        let mut h = Sha256::new();
        h.update(b"name");
        h.update(tenant.as_str().as_bytes());
        Self(h.finalize().into())
    }
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
        owner: Owner,
        source: [u8; 32],
        keys: impl IntoIterator<Item = &'a KeyEntry>,
    ) -> io::Result<()> {
        let path = self.path(tenant);
        let bytes = format::to_bytes(source, owner, keys);
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
        self.read(tenant, Some(source), None).map(|(file, _)| file)
    }

    /// The tenant's last valid version, whatever its source, if one is kept and whole and
    /// `owner` wrote it.
    pub fn load(&self, tenant: &TenantId, owner: Owner) -> Option<Saved> {
        let (file, source) = self.read(tenant, None, Some(owner))?;
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
        owner: Option<Owner>,
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
        let why = match check_and_decode(&bytes, source, owner) {
            Ok(found) => return Some(found),
            Err(Unusable::OtherSource) => return None,
            Err(Unusable::OtherOwner) => {
                tracing::info!(%tenant, "the last-good snapshot is another tenant's of this name; not used");
                return None;
            }
            Err(Unusable::NotASnapshot) => "it is not a keyward snapshot",
            Err(Unusable::OtherVersion) => "it is of another format version",
            Err(Unusable::Damaged) => "it is damaged or truncated",
        };
        tracing::warn!(%tenant, why, "ignoring the last-good snapshot");
        None
    }

    /// Deletes the tenant's snapshot: the tenant is gone.
    pub fn forget(&self, tenant: &TenantId) {
        match fs::remove_file(self.path(tenant)) {
            Ok(()) => tracing::info!(%tenant, "deleted the last-good snapshot of a removed tenant"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "cannot delete the last-good snapshot of a removed tenant")
            }
        }
    }

    /// Deletes the snapshots of every tenant but `present` (a start-up's listing).
    pub fn forget_all_but<'a>(&self, present: impl IntoIterator<Item = &'a TenantId>) {
        let present: std::collections::HashSet<&TenantId> = present.into_iter().collect();
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(stem) = name
                .to_str()
                .and_then(|n| n.strip_suffix(&format!(".{EXTENSION}")))
            else {
                continue;
            };
            if let Ok(tenant) = TenantId::parse(stem)
                && !present.contains(&tenant)
            {
                self.forget(&tenant);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::format::{decode, encode};
    use super::*;

    const FILE: &str = "\
apiKeys:
  - name: a
    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
    hint: kw_...0eOu
    permissions: [x, 'orders:*']
    description: \"two\\nlines\"
    createdAt: 2026-11-22T10:00:00+02:00
    createdBy: alice
    rotatedAt: 2026-11-23T10:00:00Z
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

    fn owner() -> Owner {
        Owner::of_name(&TenantId::parse("acme").unwrap())
    }

    #[test]
    fn a_snapshot_serves_only_the_tenant_directory_that_wrote_it() {
        let (dir, kept, acme, _) = kept();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        let (owner_a, owner_b) = (Owner::of_dir(&a).unwrap(), Owner::of_dir(&b).unwrap());
        assert_eq!(Owner::of_dir(&a), Some(owner_a), "stable");
        assert_ne!(owner_a, owner_b);
        let file = SecurityFile::parse(FILE).unwrap();
        kept.save(&acme, owner_a, [7; 32], &file.keys).unwrap();
        assert!(kept.load(&acme, owner_a).is_some());
        assert!(kept.load(&acme, owner_b).is_none(), "another directory");
        assert!(
            kept.recall(&acme, &[7; 32]).is_some(),
            "same content, same keys"
        );
        kept.forget_all_but([&TenantId::parse("globex").unwrap()]);
        assert!(kept.load(&acme, owner_a).is_none(), "forgotten");
    }

    fn kept() -> (tempfile::TempDir, LastGood, TenantId, SecurityFile) {
        let dir = tempfile::tempdir().unwrap();
        let kept = LastGood::new(dir.path().to_path_buf());
        let file = SecurityFile::parse(FILE).unwrap();
        kept.save(
            &TenantId::parse("acme").unwrap(),
            owner(),
            [7; 32],
            &file.keys,
        )
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
        let saved = kept.load(&acme, owner()).unwrap();
        assert_eq!(saved.file, file);
        assert_eq!(saved.source, [7; 32]);
        assert!(saved.saved_at.is_some());

        assert!(kept.recall(&acme, &[8; 32]).is_none(), "another source");
        assert!(
            kept.load(&acme, owner()).is_some(),
            "kept for the invalid-file fallback"
        );
        let other = TenantId::parse("other").unwrap();
        assert!(kept.recall(&other, &[7; 32]).is_none() && kept.load(&other, owner()).is_none());
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
        other_version[8] = 9;
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
            assert!(kept.load(&acme, owner()).is_none(), "{what}");
            // Whatever was there, the next save writes a whole snapshot again.
            kept.save(&acme, owner(), [7; 32], &file.keys).unwrap();
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
        assert!(
            kept.load(&acme, owner()).is_none(),
            "another format: not read"
        );

        kept.save(
            &acme,
            owner(),
            [7; 32],
            &SecurityFile::parse(FILE).unwrap().keys,
        )
        .unwrap();
        assert!(!v1.exists());
        assert!(kept.load(&acme, owner()).is_some());
    }
}
