//! The acknowledged writes the remote does not have yet (`push: async`, or no remote), kept
//! in `state_dir/git/journal.json` by meaning, so that a new remote head or a restart
//! replays them through the surgical editor, never as text and never as a stale copy.
//! Written whole to a temp file, fsynced and renamed before a write is acknowledged: a
//! crash leaves the old journal or the new one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keys::intent::Intent;

/// Why the journal could not be read or saved. An unsaved journal means the write it was
/// to hold is not acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the journal cannot be read")]
    Read(#[source] io::Error),
    #[error("the journal is not one this keyward can read")]
    Decode(#[source] serde_json::Error),
    #[error("the journal cannot be encoded")]
    Encode(#[source] serde_json::Error),
    #[error("the journal cannot be saved")]
    Save(#[source] io::Error),
}

/// One acknowledged write, until the remote has it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journalled {
    pub intent: Intent,
    /// Every commit this write has been made as, the newest last: a replay on a new head
    /// makes a new one, and the remote may land any of them.
    pub commits: Vec<String>,
}

pub struct Journal {
    path: PathBuf,
    entries: Vec<Journalled>,
}

impl Journal {
    /// Reads the journal an earlier run left (none: empty).
    pub fn open(state_dir: &Path) -> Result<Self, JournalError> {
        let path = state_dir.join("git").join("journal.json");
        let entries = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(JournalError::Decode)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(JournalError::Read(e)),
        };
        Ok(Self { path, entries })
    }

    pub fn entries(&self) -> &[Journalled] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replaces every entry (after a replay, a push, or new writes) and saves.
    pub fn replace(&mut self, entries: Vec<Journalled>) -> Result<(), JournalError> {
        self.entries = entries;
        let bytes = serde_json::to_vec_pretty(&self.entries).map_err(JournalError::Encode)?;
        self.save(&bytes).map_err(JournalError::Save)
    }

    fn save(&self, bytes: &[u8]) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".journal.")
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        fs::File::open(dir)?.sync_all()
    }
}
