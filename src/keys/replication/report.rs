//! What git mode owes ops an account of: acknowledged writes that no longer applied on the
//! remote's head (dropped), and acknowledged writes a rewrite of the remote's history
//! removed (rewritten). Each is logged once at WARN, counted, and shown in its tenant's
//! status; rewritten ones are also kept in `state_dir/git/rewritten.json`, from which
//! `keyward git reapply` applies them again.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::{KeyName, TenantId};
use crate::keys::intent::{Intent, Verb};

/// How many reports of each kind status remembers, and the file keeps.
const KEPT: usize = 200;

/// One acknowledged write that is not on the remote's head.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    #[schema(value_type = String)]
    pub verb: Verb,
    #[schema(value_type = String)]
    pub tenant: TenantId,
    #[schema(value_type = String)]
    pub key_name: KeyName,
    pub actor: String,
    #[schema(required = true)]
    pub request_id: Option<String>,
    /// The commit the write was (the removed one, for a rewrite).
    #[schema(required = true)]
    pub commit: Option<String>,
    /// Why it is not on the head.
    pub reason: String,
    /// A rewrite that removed this write made a revoked, deleted, disabled or rotated-out
    /// token valid again.
    pub revives: bool,
    #[schema(format = DateTime)]
    pub at: String,
    /// The write by meaning, for `keyward git reapply` (never shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub intent: Option<Intent>,
}

/// The reports of one kind: in memory for status, and on disk for rewritten ones.
pub struct Reports {
    kept: Vec<Report>,
    file: Option<PathBuf>,
}

impl Reports {
    /// Reports kept in memory only (dropped writes).
    pub fn in_memory() -> Self {
        Self {
            kept: Vec::new(),
            file: None,
        }
    }

    /// Reports also kept in `state_dir/git/rewritten.json`, read back at start-up.
    pub fn rewritten(state_dir: &Path) -> Self {
        let file = rewritten_file(state_dir);
        Self {
            kept: read(&file).unwrap_or_default(),
            file: Some(file),
        }
    }

    pub fn add(&mut self, report: Report) {
        self.kept.push(report);
        let excess = self.kept.len().saturating_sub(KEPT);
        self.kept.drain(..excess);
        if let Some(file) = &self.file
            && let Err(e) = write(file, &self.kept)
        {
            tracing::error!(error = %e, "cannot keep the report of rewritten writes in state_dir");
        }
    }

    pub fn of(&self, tenant: &TenantId) -> Vec<Report> {
        self.kept
            .iter()
            .filter(|r| &r.tenant == tenant)
            .cloned()
            .map(|mut r| {
                r.intent = None;
                r
            })
            .collect()
    }
}

pub fn rewritten_file(state_dir: &Path) -> PathBuf {
    state_dir.join("git").join("rewritten.json")
}

pub fn read(file: &Path) -> io::Result<Vec<Report>> {
    match fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn write(file: &Path, reports: &[Report]) -> io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".rewritten.")
        .tempfile_in(dir)?;
    tmp.write_all(&serde_json::to_vec_pretty(reports).map_err(io::Error::other)?)?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}
