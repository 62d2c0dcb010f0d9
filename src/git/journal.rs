//! keyward's writes that the remote does not have yet, kept in `state_dir/git/journal.json`
//! by meaning (create this entry, replace that one, delete that one), so that they can be
//! replayed on a new remote head through the surgical editor, never merged as text, and so
//! that a restart after a crash knows which changes in the work tree are its own.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One write, from before its file is touched until the remote has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub id: u64,
    pub tenant: String,
    /// `create`, `update`, `rotate`, `delete`, `revoke`.
    pub verb: String,
    pub key: String,
    /// The principal (JWT `sub`, or `apikey:<name>`): the commit's author.
    pub actor: String,
    pub request_id: Option<String>,
    pub change: PendingChange,
    /// The local commit, once made.
    pub commit: Option<String>,
}

/// A change by meaning; an entry is the YAML keyward writes for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PendingChange {
    Create { entry: String },
    Replace { entry: String },
    Delete,
}

pub struct Journal {
    path: PathBuf,
    entries: Vec<Pending>,
    next_id: u64,
}

impl Journal {
    /// Reads the journal left by an earlier run (none: empty).
    pub fn open(state_dir: &std::path::Path) -> io::Result<Self> {
        let path = state_dir.join("git").join("journal.json");
        let entries: Vec<Pending> = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let next_id = entries.iter().map(|e| e.id + 1).max().unwrap_or(1);
        Ok(Self {
            path,
            entries,
            next_id,
        })
    }

    pub fn entries(&self) -> &[Pending] {
        &self.entries
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub fn push(&mut self, pending: Pending) -> io::Result<()> {
        self.entries.push(pending);
        self.save()
    }

    pub fn set_commit(&mut self, id: u64, commit: Option<String>) -> io::Result<()> {
        if let Some(e) = self.entries.iter_mut().find(|e| e.id == id) {
            e.commit = commit;
        }
        self.save()
    }

    pub fn remove(&mut self, id: u64) -> io::Result<()> {
        self.entries.retain(|e| e.id != id);
        self.save()
    }

    /// Forgets every write (the remote has them all).
    pub fn clear(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.save()
    }

    /// Written whole to a temp file, fsynced and renamed: a crash leaves the old journal or
    /// the new one.
    fn save(&self) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".journal.")
            .tempfile_in(dir)?;
        tmp.write_all(&serde_json::to_vec_pretty(&self.entries).map_err(io::Error::other)?)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        fs::File::open(dir)?.sync_all()
    }
}
