//! `security.yml` on disk: the only code that reads or writes those files.
//!
//! A write: per-tenant mutex + `flock` on the tenant directory, read the current file,
//! decide the change against what is really on disk, edit the text surgically, check it
//! means exactly the intended change (`check`), write a temp file, fsync, rename, fsync
//! the directory. A load reads the file and parses it, unless the caller remembers what
//! that exact content means. Both return the version they produced with a generation
//! taken under the tenant's lock; the store publishes nothing (the keys service does), and
//! keeps each tenant file's health: its digest, its problem, whether it is read-only.
//!
//! The files, one job each:
//! - `mod.rs`: the `Store` itself, its error, and the version it hands out.
//! - `listing.rs`: the tenant directories, and the symlink boundaries that make one a tenant.
//! - `read.rs`: reading a tenant's file from disk (never torn) and loading it.
//! - `write.rs`: the write engine and its parse cache.
//! - `health.rs`: what the last load or write found in each tenant's file.
//! - `parse/`: the loader, text to `SecurityFile`; `parse/problem.rs` words its problems
//!   without ever quoting the file.
//! - `check.rs`: proof that an edited text means exactly the intended change.
//! - `atomic.rs`: the directory lock, and a replace by temp file, fsync and rename.
//! - `render.rs`: a key entry as the editor's YAML node.
//! - `yaml_edit/`: the surgical editor of the file's text.

mod atomic;
mod check;
mod edit;
mod health;
mod listing;
mod parse;
mod read;
pub mod render;
mod write;
pub mod yaml_edit;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

pub use crate::domain::{FileProblem, SecurityFile};
pub(crate) use check::checks_agree;
pub use health::FileHealth;
pub use listing::TenantListing;
pub use parse::MAX_FILE_BYTES;
pub use read::{Loaded, OnDisk};
pub use write::{Change, Edit, Written};

use crate::domain::{Generation, TenantId};
use edit::Parsed;

pub const FILE_NAME: &str = "security.yml";

/// Why a read or a write of a tenant's file did not happen; the keys service maps each to
/// an HTTP answer.
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

/// The tenants directory and what the store knows of each tenant in it: its lock, its
/// file's health, its symlink verdict and the meaning of the file keyward last wrote.
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

/// One valid version of a tenant's file, as the store read or wrote it.
#[derive(Debug, Clone)]
pub struct Version {
    pub file: Arc<SecurityFile>,
    /// SHA-256 of the file's content.
    pub digest: [u8; 32],
    pub generation: Generation,
}

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

    /// Every write is refused (`read_only: true`).
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn next_generation(&self) -> Generation {
        self.generation.fetch_add(1, Ordering::Relaxed)
    }

    fn tenant_lock(&self, tenant: &TenantId) -> Arc<Mutex<()>> {
        self.locks.lock().entry(tenant.clone()).or_default().clone()
    }
}
