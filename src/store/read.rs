//! Reading a tenant's file from disk and loading it: a read that is never torn, a symlinked
//! file that never leads out of its tenant directory, and a parse skipped when the content
//! is already known. Git mode hands content in through `load_content` instead of the disk.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::listing::TenantDir;
use super::{FILE_NAME, MAX_FILE_BYTES, Store, StoreError, Version, atomic};
use crate::domain::{FileProblem, Generation, SecurityFile, TenantId};

/// What one read of a tenant's file found on disk, held in memory: not a copy kept
/// anywhere, and not a last-good file (`last_good`).
pub enum OnDisk {
    /// The tenant directory is gone.
    Gone,
    /// The file's content as read (empty when there is no file).
    File {
        text: String,
        digest: [u8; 32],
        symlink: bool,
        /// The version read (`None`: there was no file), to tell if it is replaced later.
        stamp: Option<atomic::Stamp>,
    },
}

/// What a load found.
#[derive(Debug)]
pub enum Loaded {
    /// The content is what was loaded last (a write of keyward's own, or a touch).
    Unchanged,
    Valid(Version),
    /// The file is invalid: the tenant keeps the keys of its last valid version.
    Invalid {
        problem: FileProblem,
        generation: Generation,
    },
    /// The tenant directory is gone.
    Gone {
        generation: Generation,
    },
}

/// Does the symlink at `path` lead to a file inside `dir`'s real path?
fn link_stays_in(path: &Path, dir: &Path) -> bool {
    match (fs::canonicalize(path), fs::canonicalize(dir)) {
        (Ok(real), Ok(dir)) => real.starts_with(dir),
        // A dangling link: nothing to read, and nothing was read.
        (Err(e), Ok(_)) if e.kind() == io::ErrorKind::NotFound => true,
        _ => false,
    }
}

impl Store {
    /// Reads the tenant's file as it is now. A missing file is an empty one.
    pub fn read_file(&self, tenant: &TenantId) -> Result<OnDisk, StoreError> {
        let linked = match self.resolve(tenant) {
            TenantDir::Missing | TenantDir::Refused => return Ok(OnDisk::Gone),
            TenantDir::Plain => false,
            TenantDir::Linked => true,
        };
        let dir = self.tenant_dir(tenant);
        let path = dir.join(FILE_NAME);
        let symlink = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        if symlink && !link_stays_in(&path, &dir) {
            // Not read at all: the link could lead to any file on the machine.
            return Err(StoreError::Invalid(FileProblem {
                line: None,
                column: None,
                message: "security.yml is a symlink that leads outside its tenant directory".into(),
            }));
        }
        // A symlinked file (a ConfigMap mount) or directory (a projected volume) is replaced
        // by its owner: keyward's writes would vanish at the next swap.
        let symlink = symlink || linked;
        // A stamp taken before and after the read tells a read that raced an in-place write.
        let (text, stamp) = loop {
            let before = atomic::Stamp::at(&path)?;
            let text = match read_limited(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(StoreError::Invalid(FileProblem {
                        line: None,
                        column: None,
                        message: e.to_string(),
                    }));
                }
                Err(e) => return Err(e.into()),
            };
            if atomic::Stamp::at(&path)? == before {
                break (text, before);
            }
        };
        let digest = Sha256::digest(text.as_bytes()).into();
        Ok(OnDisk::File {
            text,
            digest,
            symlink,
            stamp,
        })
    }

    /// Reads one tenant's file (watcher, rescan, start-up). Content already loaded is not
    /// parsed again; an invalid file is recorded in the tenant's health.
    pub fn load(&self, tenant: &TenantId) -> Result<Loaded, StoreError> {
        self.load_recalling(tenant, |_| None)
    }

    /// `load`, except that content whose meaning `recall` remembers is not parsed: once the
    /// file is read, `recall` gets the digest of exactly what was read and may return what
    /// that content means (a valid version it was parsed to before).
    pub fn load_recalling(
        &self,
        tenant: &TenantId,
        recall: impl FnOnce(&[u8; 32]) -> Option<SecurityFile>,
    ) -> Result<Loaded, StoreError> {
        let lock = self.tenant_lock(tenant);
        let _guard = lock.lock();
        let generation = self.next_generation();
        let on_disk = match self.read_settled(tenant) {
            Ok(s) => s,
            Err(StoreError::Invalid(problem)) => {
                self.record_invalid(tenant, None, &problem);
                return Ok(Loaded::Invalid {
                    problem,
                    generation,
                });
            }
            Err(e) => return Err(e),
        };
        let OnDisk::File {
            text,
            digest,
            symlink,
            ..
        } = on_disk
        else {
            self.health.lock().remove(tenant);
            self.parsed.lock().remove(tenant);
            return Ok(Loaded::Gone { generation });
        };
        if self.health.lock().get(tenant).and_then(|h| h.digest) == Some(digest) {
            return Ok(Loaded::Unchanged);
        }
        let meaning = match recall(&digest) {
            Some(file) => Ok(file),
            None => SecurityFile::parse(&text),
        };
        drop(text);
        match meaning {
            Ok(file) => {
                self.record_valid(tenant, digest, symlink);
                Ok(Loaded::Valid(Version {
                    file: Arc::new(file),
                    digest,
                    generation,
                }))
            }
            Err(problem) => {
                self.record_invalid(tenant, Some(digest), &problem);
                Ok(Loaded::Invalid {
                    problem,
                    generation,
                })
            }
        }
    }

    /// Like `read_file`, but a file caught in the middle of an outside write is read again
    /// shortly: an empty file modified a moment ago (between the truncate and the write of
    /// an editor, `echo >` or `git checkout`), or a missing one in a directory changed a
    /// moment ago (between `git checkout`'s unlink and its create). One that stays so is
    /// taken as it is.
    pub(super) fn read_settled(&self, tenant: &TenantId) -> Result<OnDisk, StoreError> {
        const SETTLE: Duration = Duration::from_millis(50);
        const FRESH: Duration = Duration::from_secs(1);
        let dir = self.tenant_dir(tenant);
        let path = dir.join(FILE_NAME);
        let fresh = |p: &Path| {
            fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < FRESH))
        };
        for _ in 0..10 {
            let on_disk = self.read_file(tenant)?;
            let unsettled = match &on_disk {
                OnDisk::File {
                    text, stamp: None, ..
                } if text.is_empty() => fresh(&dir),
                OnDisk::File { text, .. } if text.is_empty() => fresh(&path),
                _ => false,
            };
            if !unsettled {
                return Ok(on_disk);
            }
            std::thread::sleep(SETTLE);
        }
        self.read_file(tenant)
    }

    /// Takes a tenant file's content from elsewhere than the disk (git mode serves
    /// commits): `None` is a tenant that is gone. Like `load_recalling`, content already
    /// loaded is not parsed again, and neither is content keyward just wrote.
    pub fn load_content(
        &self,
        tenant: &TenantId,
        content: Option<&[u8]>,
        recall: impl FnOnce(&[u8; 32]) -> Option<SecurityFile>,
    ) -> Loaded {
        let lock = self.tenant_lock(tenant);
        let _guard = lock.lock();
        let generation = self.next_generation();
        let Some(bytes) = content else {
            self.health.lock().remove(tenant);
            self.parsed.lock().remove(tenant);
            return Loaded::Gone { generation };
        };
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if self.health.lock().get(tenant).and_then(|h| h.digest) == Some(digest) {
            return Loaded::Unchanged;
        }
        let remembered = self
            .parsed
            .lock()
            .get(tenant)
            .filter(|p| p.digest == digest)
            .map(|p| p.file.clone());
        let meaning = match remembered {
            Some(file) => Ok(file),
            None => match recall(&digest) {
                Some(file) => Ok(Arc::new(file)),
                None => parse_bytes(bytes).map(Arc::new),
            },
        };
        match meaning {
            Ok(file) => {
                self.record_valid(tenant, digest, false);
                Loaded::Valid(Version {
                    file,
                    digest,
                    generation,
                })
            }
            Err(problem) => {
                self.record_invalid(tenant, Some(digest), &problem);
                Loaded::Invalid {
                    problem,
                    generation,
                }
            }
        }
    }

    /// A tenant file keyward will not read (git mode: a symlink in the commit), recorded as
    /// invalid: the tenant keeps the keys it had.
    pub fn load_problem(&self, tenant: &TenantId, problem: FileProblem) -> Loaded {
        let lock = self.tenant_lock(tenant);
        let _guard = lock.lock();
        let generation = self.next_generation();
        self.record_invalid(tenant, None, &problem);
        Loaded::Invalid {
            problem,
            generation,
        }
    }
}

/// A tenant file's content as git holds it: at most `MAX_FILE_BYTES`, UTF-8, then parsed.
fn parse_bytes(bytes: &[u8]) -> Result<SecurityFile, FileProblem> {
    let problem = |message: String| FileProblem {
        line: None,
        column: None,
        message,
    };
    if bytes.len() > MAX_FILE_BYTES {
        return Err(problem(format!(
            "file is larger than {MAX_FILE_BYTES} bytes"
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| problem("file is not valid UTF-8".into()))?;
    SecurityFile::parse(text)
}

fn read_limited(path: &Path) -> io::Result<String> {
    let meta = fs::metadata(path)?;
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("file is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let bytes = fs::read(path)?;
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file is not valid UTF-8"))
}
