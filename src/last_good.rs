//! The last valid version of each tenant's keys, kept in `state_dir/last-good/` so that a
//! restart with a broken file serves what was served before instead of nothing.
//!
//! One file per tenant: a header line `# keyward last-good v1 <source> <content>` and the
//! keys as the YAML keyward writes. `<source>` is the SHA-256 of the `security.yml` the
//! keys came from (so an unchanged file can be recognised without parsing it), `<content>`
//! the SHA-256 of the rest, so a torn or edited snapshot is never trusted. Files are
//! replaced by rename and never live inside `tenants_dir`.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::domain::{SecurityFile, TenantId};
use crate::store::render;

const HEADER: &str = "# keyward last-good v1 ";

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

impl LastGood {
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            dir: state_dir.join("last-good"),
        }
    }

    fn path(&self, tenant: &TenantId) -> PathBuf {
        self.dir.join(format!("{tenant}.yml"))
    }

    /// Keeps `file` (which came from content with digest `source`) as the tenant's last
    /// valid version, unless that version is already kept.
    pub fn save(&self, tenant: &TenantId, source: [u8; 32], file: &SecurityFile) -> io::Result<()> {
        let path = self.path(tenant);
        if self.source_of(tenant).is_some_and(|s| s == source) {
            return Ok(());
        }
        let mut body = String::from("apiKeys:\n");
        for key in &file.keys {
            // Each rendered entry is a one-item `apiKeys:` list; keep its item lines.
            let yaml = render::entry_yaml(key);
            body.push_str(yaml.strip_prefix("apiKeys:\n").unwrap_or(&yaml));
        }
        let mut text = String::with_capacity(body.len() + 160);
        let _ = writeln!(
            text,
            "{HEADER}{} {}",
            hex(&source),
            hex(&Sha256::digest(body.as_bytes()).into())
        );
        text.push_str(&body);
        fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".last-good.")
            .tempfile_in(&self.dir)?;
        tmp.write_all(text.as_bytes())?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    /// The digest of the source a kept version came from, reading only its first line.
    pub fn source_of(&self, tenant: &TenantId) -> Option<[u8; 32]> {
        let text = fs::read_to_string(self.path(tenant)).ok()?;
        parse_header(text.lines().next()?).map(|(source, _)| source)
    }

    /// The tenant's last valid version, if one is kept and whole.
    pub fn load(&self, tenant: &TenantId) -> Option<Saved> {
        let path = self.path(tenant);
        let text = fs::read_to_string(&path).ok()?;
        let (first, body) = text.split_once('\n')?;
        let (source, content) = parse_header(first)?;
        if <[u8; 32]>::from(Sha256::digest(body.as_bytes())) != content {
            tracing::warn!(%tenant, "ignoring a damaged last-good snapshot");
            return None;
        }
        let file = SecurityFile::parse(body).ok()?;
        let saved_at = fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .map(OffsetDateTime::from);
        Some(Saved {
            file,
            source,
            saved_at,
        })
    }
}

fn parse_header(line: &str) -> Option<([u8; 32], [u8; 32])> {
    let (source, content) = line.strip_prefix(HEADER)?.split_once(' ')?;
    Some((unhex(source)?, unhex(content)?))
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "apiKeys:\n  - name: a\n    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111\n    permissions: [x]\n";

    #[test]
    fn a_kept_version_comes_back_and_a_damaged_one_never_does() {
        let dir = tempfile::tempdir().unwrap();
        let kept = LastGood::new(dir.path().to_path_buf());
        let acme = TenantId::parse("acme").unwrap();
        let file = SecurityFile::parse(FILE).unwrap();

        kept.save(&acme, [7; 32], &file).unwrap();
        let saved = kept.load(&acme).unwrap();
        assert_eq!(saved.file, file);
        assert_eq!(saved.source, [7; 32]);
        assert_eq!(kept.source_of(&acme), Some([7; 32]));

        let path = dir.path().join("last-good/acme.yml");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.len() - 10]).unwrap();
        assert!(kept.load(&acme).is_none(), "torn");
        fs::write(&path, text.replace("[x]", "['*']")).unwrap();
        assert!(kept.load(&acme).is_none(), "edited");
        fs::write(&path, text.replace(" v1 ", " v0 ")).unwrap();
        assert!(kept.load(&acme).is_none(), "another version");
    }
}
