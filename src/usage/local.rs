//! This replica's own copy of `lastUsedAt`, in every mode: kept in the index, flushed to
//! `state_dir/last_used.json` every 30 s and at shutdown, read back at start-up. Never in
//! the tenants tree: git stays clean.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{KeyName, TenantId};
use crate::index::Index;

pub const FLUSH_EVERY: Duration = Duration::from_secs(30);
const FILE_NAME: &str = "last_used.json";

/// tenant -> key name -> unix seconds of the last successful verification.
type Snapshot = BTreeMap<String, BTreeMap<String, i64>>;

fn snapshot(index: &Index) -> Snapshot {
    let mut out = Snapshot::new();
    for (tenant, keys) in index.all() {
        let used: BTreeMap<String, i64> = keys
            .iter()
            .filter_map(|k| Some((k.entry.name.to_string(), k.last_used()?.unix_timestamp())))
            .collect();
        if !used.is_empty() {
            out.insert(tenant.to_string(), used);
        }
    }
    out
}

/// Flushes every `FLUSH_EVERY` until the returned task is aborted; then call `flush` once
/// more for the uses since.
pub fn flush_periodically(index: Arc<Index>, dir: PathBuf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = String::new();
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let (index, dir) = (index.clone(), dir.clone());
            match tokio::task::spawn_blocking(move || flush_logged(&index, &dir, last)).await {
                Ok(written) => last = written,
                Err(_) => return,
            }
        }
    })
}

/// `flush`, with a failure logged (and `previous` kept); returns what is on disk now.
pub fn flush_logged(index: &Index, dir: &Path, previous: String) -> String {
    match flush(index, dir, &previous) {
        Ok(written) => written,
        Err(e) => {
            tracing::error!(error = %e, "cannot write lastUsedAt to the state directory");
            previous
        }
    }
}

/// Writes the current last-use times if they changed since `previous`; returns what it wrote.
pub fn flush(index: &Index, dir: &Path, previous: &str) -> io::Result<String> {
    let text = serde_json::to_string_pretty(&snapshot(index)).map_err(io::Error::other)?;
    if text == previous {
        return Ok(text);
    }
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".last_used.")
        .tempfile_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(FILE_NAME)).map_err(|e| e.error)?;
    Ok(text)
}

/// Restores last-use times saved by an earlier run; a missing or broken file is no error.
pub fn restore(index: &Index, dir: &Path) {
    let Ok(text) = fs::read_to_string(dir.join(FILE_NAME)) else {
        return;
    };
    let saved: Snapshot = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an unreadable last_used.json");
            return;
        }
    };
    for (tenant, keys) in saved {
        let Some(index_keys) = TenantId::parse(&tenant).ok().and_then(|t| index.keys(&t)) else {
            continue;
        };
        for (name, unix) in keys {
            if let Some(k) = KeyName::parse(&name).ok().and_then(|n| index_keys.get(&n)) {
                k.restore_last_used(unix);
            }
        }
    }
}
