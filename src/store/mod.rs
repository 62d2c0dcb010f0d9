//! `security.yml` on disk: the only code that reads or writes those files.
//!
//! A write: per-tenant mutex + `flock` on the tenant directory, read the current file,
//! decide the change against what is really on disk, edit the text surgically, check it
//! means exactly the intended change (`check`), write a temp file, fsync, rename, fsync
//! the directory. A load reads the file and parses it, unless the caller remembers what
//! that exact content means. Both return the version they produced with a generation
//! taken under the tenant's lock; the store publishes nothing (the keys service does), and
//! keeps each tenant file's health: its digest, its problem, whether it is read-only.

mod atomic;
mod check;
mod parse;
pub mod render;
pub mod yaml_edit;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub use crate::domain::{FileProblem, SecurityFile};
pub(crate) use check::checks_agree;
pub use parse::MAX_FILE_BYTES;

use crate::domain::{Generation, KeyEntry, KeyName, TenantId};
use check::Edited;
use yaml_edit::Layout;

pub const FILE_NAME: &str = "security.yml";

/// A change to one key, decided by the caller against the file as it is on disk.
#[derive(Debug)]
pub enum Change {
    Create(KeyEntry),
    Replace(KeyEntry),
    Delete(KeyName),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("tenant not found")]
    TenantNotFound,
    #[error("security.yml is invalid: {0}")]
    Invalid(FileProblem),
    #[error("security.yml is read-only here")]
    ReadOnly,
    #[error("the surgical edit could not be made: {0}")]
    Edit(#[from] yaml_edit::EditError),
    #[error("the edited file would not mean the intended change; nothing was written")]
    EditMismatch,
    #[error("security.yml kept changing on disk while keyward was writing it")]
    Busy,
    #[error("i/o on the tenant's files failed")]
    Io(#[from] io::Error),
}

/// The outcome of reading a tenant's file from disk.
pub enum Snapshot {
    /// The tenant directory is gone.
    Gone,
    Read {
        text: String,
        digest: [u8; 32],
        symlink: bool,
        /// The version read (`None`: there was no file), to tell if it is replaced later.
        stamp: Option<atomic::Stamp>,
    },
}

/// How often a write starts again because the file was replaced from outside keyward while
/// it was being written, before it gives up with `StoreError::Busy`.
const WRITE_ATTEMPTS: usize = 5;

pub struct Store {
    dir: PathBuf,
    read_only: bool,
    locks: Mutex<HashMap<TenantId, Arc<Mutex<()>>>>,
    health: Mutex<HashMap<TenantId, FileHealth>>,
    /// Symlinked tenant directories as the last listing judged them: served (read-only)
    /// or refused.
    links: Mutex<HashMap<TenantId, bool>>,
    /// Taken under a tenant's lock for every version loaded or written, so versions of one
    /// tenant are ordered as the lock ordered them.
    generation: AtomicU64,
    /// The meaning of each file keyward last wrote, by content digest, and where the editor
    /// finds its items: the next write to an unchanged file parses none of it again.
    parsed: Mutex<HashMap<TenantId, Arc<Parsed>>>,
}

/// A file's text as already parsed: its keys, its other top-level values, and where the
/// editor finds its items (None until an edit needs it).
struct Parsed {
    digest: [u8; 32],
    file: Arc<SecurityFile>,
    others: serde_yaml::Mapping,
    layout: Option<Layout>,
}

/// One valid version of a tenant's file, as the store read or wrote it.
#[derive(Debug, Clone)]
pub struct Version {
    pub file: Arc<SecurityFile>,
    /// SHA-256 of the file's content.
    pub digest: [u8; 32],
    pub generation: Generation,
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

/// The tenants found in the tenants directory.
#[derive(Debug, Default)]
pub struct TenantListing {
    pub tenants: Vec<TenantId>,
    /// Directories whose names are not tenant ids.
    pub invalid_names: Vec<String>,
    /// Symlinked directories that lead outside the tenants directory or to another
    /// tenant's directory: never tenants.
    pub refused_links: Vec<TenantId>,
}

/// What a tenant's directory is.
enum TenantDir {
    Missing,
    Plain,
    /// A symlink within a hidden directory of the tenants directory: served, read-only.
    Linked,
    /// A symlink across a boundary: not a tenant.
    Refused,
}

/// Is `real` (canonical) inside a hidden directory (`..data`) of `base` (canonical)?
fn inside_hidden_dir(base: &Path, real: &Path) -> bool {
    let Ok(rest) = real.strip_prefix(base) else {
        return false;
    };
    let mut parts = rest.components();
    let first = parts.next();
    let hidden = matches!(first, Some(std::path::Component::Normal(n)) if n.to_string_lossy().starts_with('.'));
    hidden && parts.next().is_some()
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

/// A write that reached the disk.
#[derive(Debug)]
pub struct Written {
    pub version: Version,
    /// False when the change left the file byte for byte as it was (nothing was written).
    pub changed: bool,
    /// The created or replaced entry as stored (None for a delete).
    pub entry: Option<KeyEntry>,
}

/// The health of a tenant's file, as the status endpoint and the logs tell it.
#[derive(Debug, Clone)]
pub struct FileHealth {
    /// SHA-256 of the content last seen (valid or not): unchanged content is not re-parsed.
    digest: Option<[u8; 32]>,
    pub problem: Option<FileProblem>,
    /// The file is a symlink (a ConfigMap mount): keyward does not write it.
    pub read_only: bool,
    pub loaded_at: Option<OffsetDateTime>,
    pub checked_at: OffsetDateTime,
}

/// At most this many tenants' parsed files are kept (the ones written last).
const PARSED_CACHE: usize = 64;

impl Store {
    pub fn new(dir: PathBuf, read_only: bool) -> Self {
        Self {
            dir,
            read_only,
            locks: Mutex::default(),
            health: Mutex::default(),
            links: Mutex::default(),
            generation: AtomicU64::new(1),
            parsed: Mutex::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The health of a tenant's file as last loaded or written; None before the first load.
    pub fn health(&self, tenant: &TenantId) -> Option<FileHealth> {
        self.health.lock().get(tenant).cloned()
    }

    /// Every write is refused (`read_only: true`).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn next_generation(&self) -> Generation {
        self.generation.fetch_add(1, Ordering::Relaxed)
    }

    fn record_valid(&self, tenant: &TenantId, digest: [u8; 32], read_only: bool) {
        let now = OffsetDateTime::now_utc();
        self.health.lock().insert(
            tenant.clone(),
            FileHealth {
                digest: Some(digest),
                problem: None,
                read_only,
                loaded_at: Some(now),
                checked_at: now,
            },
        );
    }

    fn record_invalid(&self, tenant: &TenantId, digest: Option<[u8; 32]>, problem: &FileProblem) {
        let now = OffsetDateTime::now_utc();
        let mut health = self.health.lock();
        let h = health.entry(tenant.clone()).or_insert(FileHealth {
            digest: None,
            problem: None,
            read_only: false,
            loaded_at: None,
            checked_at: now,
        });
        h.digest = digest;
        h.problem = Some(problem.clone());
        h.checked_at = now;
    }

    pub fn tenant_dir(&self, tenant: &TenantId) -> PathBuf {
        self.dir.join(tenant.as_str())
    }

    pub fn tenant_exists(&self, tenant: &TenantId) -> bool {
        matches!(self.resolve(tenant), TenantDir::Plain | TenantDir::Linked)
    }

    /// What a tenant's directory is, its boundaries checked (SPEC 1, "Boundaries").
    fn resolve(&self, tenant: &TenantId) -> TenantDir {
        let Ok(meta) = fs::symlink_metadata(self.tenant_dir(tenant)) else {
            return TenantDir::Missing;
        };
        if meta.is_dir() {
            return TenantDir::Plain;
        }
        if !meta.file_type().is_symlink() {
            return TenantDir::Missing;
        }
        let known = self.links.lock().get(tenant).copied();
        // A link that appeared since the last listing is judged with all the others.
        let served = known.or_else(|| {
            let _ = self.list_tenants();
            self.links.lock().get(tenant).copied()
        });
        match served {
            Some(true) => TenantDir::Linked,
            Some(false) => TenantDir::Refused,
            None => TenantDir::Missing,
        }
    }

    /// Every tenant directory under the tenants directory. Hidden entries (the kubelet's
    /// `..data`, `..2026_x`) are skipped without a word; names that are not tenant ids and
    /// symlinks that cross a boundary are returned apart so the caller can warn once.
    ///
    /// A symlinked directory is a tenant only when its real path is inside a hidden
    /// directory of the tenants directory (the layout of a projected volume, `acme ->
    /// ..data/acme`) and no other tenant resolves to it: one tenant never aliases another,
    /// and nothing outside the tenants directory is ever read or written.
    pub fn list_tenants(&self) -> io::Result<TenantListing> {
        let base = fs::canonicalize(&self.dir)?;
        let mut listing = TenantListing::default();
        let mut linked: HashMap<PathBuf, Vec<TenantId>> = HashMap::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            let real = if kind.is_symlink() {
                match fs::canonicalize(entry.path()) {
                    Ok(real) if real.is_dir() => Some(real),
                    _ => continue,
                }
            } else if kind.is_dir() {
                None
            } else {
                continue;
            };
            let Ok(tenant) = TenantId::parse(&name) else {
                listing.invalid_names.push(name);
                continue;
            };
            match real {
                None => listing.tenants.push(tenant),
                Some(real) if inside_hidden_dir(&base, &real) => {
                    linked.entry(real).or_default().push(tenant);
                }
                Some(_) => listing.refused_links.push(tenant),
            }
        }
        for (_, tenants) in linked {
            if let [one] = tenants.as_slice() {
                listing.tenants.push(one.clone());
            } else {
                listing.refused_links.extend(tenants);
            }
        }
        let mut links = self.links.lock();
        links.clear();
        for t in &listing.tenants {
            if fs::symlink_metadata(self.tenant_dir(t)).is_ok_and(|m| m.file_type().is_symlink()) {
                links.insert(t.clone(), true);
            }
        }
        for t in &listing.refused_links {
            links.insert(t.clone(), false);
        }
        listing.tenants.sort();
        listing.refused_links.sort();
        Ok(listing)
    }

    fn tenant_lock(&self, tenant: &TenantId) -> Arc<Mutex<()>> {
        self.locks.lock().entry(tenant.clone()).or_default().clone()
    }

    /// Reads the tenant's file as it is now. A missing file is an empty one.
    pub fn snapshot(&self, tenant: &TenantId) -> Result<Snapshot, StoreError> {
        let linked = match self.resolve(tenant) {
            TenantDir::Missing | TenantDir::Refused => return Ok(Snapshot::Gone),
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
        Ok(Snapshot::Read {
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
        let snapshot = match self.settled_snapshot(tenant) {
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
        let Snapshot::Read {
            text,
            digest,
            symlink,
            ..
        } = snapshot
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

    /// Like `snapshot`, but a file caught in the middle of an outside write is read again
    /// shortly: an empty file modified a moment ago (between the truncate and the write of
    /// an editor, `echo >` or `git checkout`), or a missing one in a directory changed a
    /// moment ago (between `git checkout`'s unlink and its create). One that stays so is
    /// taken as it is.
    fn settled_snapshot(&self, tenant: &TenantId) -> Result<Snapshot, StoreError> {
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
            let snapshot = self.snapshot(tenant)?;
            let unsettled = match &snapshot {
                Snapshot::Read {
                    text, stamp: None, ..
                } if text.is_empty() => fresh(&dir),
                Snapshot::Read { text, .. } if text.is_empty() => fresh(&path),
                _ => false,
            };
            if !unsettled {
                return Ok(snapshot);
            }
            std::thread::sleep(SETTLE);
        }
        self.snapshot(tenant)
    }

    /// Applies one change decided by `decide` against the current file on disk.
    ///
    /// `decide` may run more than once: when the file is replaced from outside keyward
    /// (`git checkout`, an editor) during the write, nothing is renamed and the write starts
    /// again from the new file, so the outside edit is kept.
    ///
    /// Blocking: call it from a blocking thread.
    pub fn write<E, F>(&self, tenant: &TenantId, mut decide: F) -> Result<Written, E>
    where
        E: From<StoreError>,
        F: FnMut(&SecurityFile) -> Result<Change, E>,
    {
        if self.read_only {
            return Err(StoreError::ReadOnly.into());
        }
        let lock = self.tenant_lock(tenant);
        let _guard = lock.lock();
        let dir = self.tenant_dir(tenant);
        // Another keyward process on the same directory takes the same lock.
        let _flock = atomic::DirLock::exclusive(&dir).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::TenantNotFound
            } else {
                StoreError::Io(e)
            }
        })?;
        let path = dir.join(FILE_NAME);
        for _ in 0..WRITE_ATTEMPTS {
            let (text, stamp, digest) = match self.settled_snapshot(tenant)? {
                Snapshot::Gone => return Err(StoreError::TenantNotFound.into()),
                Snapshot::Read { symlink: true, .. } => return Err(StoreError::ReadOnly.into()),
                Snapshot::Read {
                    text,
                    stamp,
                    digest,
                    ..
                } => (text, stamp, digest),
            };
            let Edit {
                text: new_text,
                file,
                entry,
            } = self.edit_parsed(tenant, &text, digest, &mut decide)?;
            let changed = new_text != text;
            let replaced =
                !changed
                    || atomic::replace_file(&path, &new_text, || {
                        Ok(atomic::Stamp::at(&path)? == stamp)
                    })
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly,
                        _ => StoreError::Io(e),
                    })?;
            if !replaced {
                tracing::info!(%tenant, "security.yml changed on disk during a write; starting again");
                continue;
            }
            let digest = Sha256::digest(new_text.as_bytes()).into();
            self.record_valid(tenant, digest, false);
            let generation = self.next_generation();
            return Ok(Written {
                version: Version {
                    file,
                    digest,
                    generation,
                },
                changed,
                entry,
            });
        }
        Err(StoreError::Busy.into())
    }
}

impl Store {
    /// One change decided by `decide` against `text` (a tenant file's content as git has
    /// it), made in memory only: git mode writes the result as a commit, not to the disk.
    pub fn edit<E, F>(&self, tenant: &TenantId, text: &str, mut decide: F) -> Result<Edit, E>
    where
        E: From<StoreError>,
        F: FnMut(&SecurityFile) -> Result<Change, E>,
    {
        let digest = Sha256::digest(text.as_bytes()).into();
        self.edit_parsed(tenant, text, digest, &mut decide)
    }

    /// Decides, edits surgically and checks the meaning of the edit; remembers what the new
    /// text means, so that the next edit or load of it parses nothing.
    fn edit_parsed<E, F>(
        &self,
        tenant: &TenantId,
        text: &str,
        digest: [u8; 32],
        decide: &mut F,
    ) -> Result<Edit, E>
    where
        E: From<StoreError>,
        F: FnMut(&SecurityFile) -> Result<Change, E>,
    {
        let cached = self.parsed.lock().get(tenant).cloned();
        let current = match cached {
            Some(p) if p.digest == digest => p,
            _ => Arc::new(Parsed {
                digest,
                file: Arc::new(SecurityFile::parse(text).map_err(StoreError::Invalid)?),
                // A comparison that cannot be made is not a pass.
                others: other_top_level(text).ok_or_else(|| {
                    StoreError::Edit(yaml_edit::EditError::Unsupported(
                        "its other top-level values cannot be read as plain YAML values \
                         (an alias bomb?)"
                            .into(),
                    ))
                })?,
                layout: None,
            }),
        };
        let change = decide(&current.file)?;
        let parsed_now;
        let layout = match &current.layout {
            Some(layout) => layout,
            None => {
                parsed_now = Layout::of(text).map_err(StoreError::Edit)?;
                &parsed_now
            }
        };
        let edited = apply(text, layout, &current.file, change)?;
        let others = check::meaning(text, &current, layout, &edited)?;
        let layout = check::next_layout(layout, &edited);
        let Edited {
            text: new_text,
            expected,
            touched,
            ..
        } = edited;
        let entry = touched.and_then(|i| expected.keys.get(i).cloned());
        let file = Arc::new(expected);
        let new_digest: [u8; 32] = Sha256::digest(new_text.as_bytes()).into();
        let mut cache = self.parsed.lock();
        if cache.len() >= PARSED_CACHE && !cache.contains_key(tenant) {
            cache.clear();
        }
        cache.insert(
            tenant.clone(),
            Arc::new(Parsed {
                digest: new_digest,
                file: file.clone(),
                others,
                layout,
            }),
        );
        Ok(Edit {
            text: new_text,
            file,
            entry,
        })
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
}

impl Store {
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

/// An edit made in memory: the new text, what it means, and the created or replaced entry.
#[derive(Debug)]
pub struct Edit {
    pub text: String,
    pub file: Arc<SecurityFile>,
    pub entry: Option<KeyEntry>,
}

/// Makes the surgical edit in `text`, whose layout is `layout` and meaning `current`.
fn apply(
    text: &str,
    layout: &Layout,
    current: &SecurityFile,
    change: Change,
) -> Result<Edited, StoreError> {
    let mut expected = current.clone();
    let (edit, touched) = match change {
        Change::Create(entry) => {
            let edit = layout.append(text, &render::entry_node(&entry))?;
            expected.keys.push(entry);
            (edit, Some(expected.keys.len() - 1))
        }
        Change::Replace(entry) => {
            let (i, _) = current.find(&entry.name).ok_or(StoreError::EditMismatch)?;
            let edit = layout.replace(text, i, &render::entry_node(&entry))?;
            expected.keys[i] = entry;
            (edit, Some(i))
        }
        Change::Delete(name) => {
            let (i, _) = current.find(&name).ok_or(StoreError::EditMismatch)?;
            let edit = layout.remove(text, i)?;
            expected.keys.remove(i);
            (edit, None)
        }
    };
    Ok(Edited {
        text: edit.text,
        expected,
        touched,
        splice: edit.splice,
    })
}

fn other_top_level(text: &str) -> Option<serde_yaml::Mapping> {
    let mut map = match serde_yaml::from_str(text).ok()? {
        // An empty file, or one with only comments, has no top-level keys.
        serde_yaml::Value::Null => serde_yaml::Mapping::new(),
        serde_yaml::Value::Mapping(m) => m,
        _ => return None,
    };
    map.remove("apiKeys");
    Some(map)
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

/// The store's safety nets, which no HTTP request can reach: they guard against a bug in the
/// editor and against a file that never stops changing.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::KeyHash;

    const FILE: &str = "\
apiKeys:
  - name: a   # kept
    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
  - name: b
    hash: sha256:2222222222222222222222222222222222222222222222222222222222222222
users: [alice]
";

    fn entry(name: &str, digit: char) -> KeyEntry {
        KeyEntry {
            name: KeyName::parse(name).unwrap(),
            hash: KeyHash::parse(&digit.to_string().repeat(64)).unwrap(),
            enabled: true,
            permissions: Default::default(),
            description: None,
            created_at: None,
            created_by: None,
            expires_at: None,
            previous_hashes: Vec::new(),
        }
    }

    fn store_with(text: &str) -> (tempfile::TempDir, Store, TenantId) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("acme")).unwrap();
        fs::write(dir.path().join("acme").join(FILE_NAME), text).unwrap();
        let store = Store::new(dir.path().to_path_buf(), false);
        (dir, store, TenantId::parse("acme").unwrap())
    }

    fn parsed(text: &str) -> (Parsed, Layout) {
        let parsed = Parsed {
            digest: [0; 32],
            file: Arc::new(SecurityFile::parse(text).unwrap()),
            others: other_top_level(text).unwrap(),
            layout: None,
        };
        (parsed, Layout::of(text).unwrap())
    }

    #[test]
    fn an_edit_that_changes_more_than_intended_is_refused() {
        let (before, layout) = parsed(FILE);
        let edited = apply(FILE, &layout, &before.file, Change::Create(entry("c", '3'))).unwrap();
        assert!(check::meaning(FILE, &before, &layout, &edited).is_ok());

        // The same edit, had the editor also touched another key or another top-level value.
        let other_key = edited.text.replace("name: b", "name: bb");
        let other_value = edited.text.replace("[alice]", "[alice, mallory]");
        for wrong in [other_key, other_value] {
            let wrong = Edited {
                text: wrong,
                ..apply(FILE, &layout, &before.file, Change::Create(entry("c", '3'))).unwrap()
            };
            assert!(matches!(
                check::meaning(FILE, &before, &layout, &wrong),
                Err(StoreError::EditMismatch)
            ));
        }
    }

    #[test]
    fn a_file_that_keeps_changing_during_a_write_gives_busy_and_keeps_the_outside_edit() {
        let (dir, store, acme) = store_with(FILE);
        let path = dir.path().join("acme").join(FILE_NAME);
        let mut round = 0;

        let result = store.write(&acme, |_| -> Result<Change, StoreError> {
            // Someone outside keyward replaces the file while keyward decides and writes.
            round += 1;
            fs::write(&path, format!("{FILE}# outside edit {round}\n")).unwrap();
            Ok(Change::Create(entry("c", '3')))
        });

        assert!(matches!(result, Err(StoreError::Busy)), "{result:?}");
        assert_eq!(round, WRITE_ATTEMPTS);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with(&format!("# outside edit {WRITE_ATTEMPTS}\n")),
            "{text}"
        );
        assert!(!text.contains("name: c"));
    }

    #[test]
    fn versions_are_ordered_by_the_tenant_lock() {
        let (_dir, store, acme) = store_with(FILE);
        let Loaded::Valid(first) = store.load(&acme).unwrap() else {
            panic!("the file loads");
        };
        let written = store
            .write(&acme, |_| -> Result<Change, StoreError> {
                Ok(Change::Delete(KeyName::parse("b").unwrap()))
            })
            .unwrap();
        assert!(written.version.generation > first.generation);
        assert!(
            matches!(store.load(&acme).unwrap(), Loaded::Unchanged),
            "keyward's own write is not parsed again"
        );
    }
}
