//! File changes -> reloads. One recursive watch on the tenants directory (never on the
//! files: editors and git replace them by rename, which would kill a per-file watch),
//! debounced, plus a periodic rescan and SIGHUP for events that never come.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::domain::TenantId;
use crate::keys;

/// Events closer together than this are handled as one batch (a `git checkout` writes
/// many files; an editor writes a temp file and renames it).
pub const DEBOUNCE: Duration = Duration::from_millis(100);

enum Signal {
    Tenant(TenantId),
    All,
}

/// Keeps the watch alive; dropping it stops watching.
pub struct WatchGuard {
    _watcher: RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A watch set up before the initial load, so no change made during the load is missed;
/// its events wait in the channel until `run` starts handling them.
pub struct PendingWatch {
    watcher: RecommendedWatcher,
    rx: UnboundedReceiver<Signal>,
}

/// Starts watching the tenants directory `base`.
pub fn watch(base: &Path) -> notify::Result<PendingWatch> {
    let (tx, rx) = unbounded_channel();
    let base = base.to_path_buf();
    let canonical = std::fs::canonicalize(&base).unwrap_or_else(|_| base.clone());
    let mut watcher = notify::recommended_watcher(event_handler(tx, base, canonical.clone()))?;
    watcher.watch(&canonical, RecursiveMode::Recursive)?;
    Ok(PendingWatch { watcher, rx })
}

impl PendingWatch {
    /// Starts reloading on events (those queued since `watch` first) and every
    /// `rescan_every`. Needs a Tokio runtime.
    pub fn run(self, service: Arc<keys::Service>, rescan_every: Duration) -> WatchGuard {
        let task = tokio::spawn(reload_loop(service, self.rx, rescan_every));
        WatchGuard {
            _watcher: self.watcher,
            task,
        }
    }
}

fn event_handler(
    tx: UnboundedSender<Signal>,
    base: PathBuf,
    canonical: PathBuf,
) -> impl FnMut(notify::Result<notify::Event>) + Send + 'static {
    move |res| {
        let signals: Vec<Signal> = match res {
            // A full kernel queue drops events: only a full rescan is safe.
            Ok(ev) if ev.need_rescan() => vec![Signal::All],
            // Opening or reading a file changes nothing, and keyward's own reload reads the
            // file: heeding those events made every reload queue the next one, forever.
            // A file closed after writing is a change.
            Ok(ev) if is_read_only_access(&ev.kind) => Vec::new(),
            Ok(ev) => ev
                .paths
                .iter()
                // git's own files (a tenants_dir at the top of the work tree) are no tenant's:
                // every git command rewrites them.
                .filter(|p| !in_git_dir(p, &canonical) && !in_git_dir(p, &base))
                .map(|p| tenant_of(p, &canonical).or_else(|| tenant_of(p, &base)))
                .map(|t| t.map_or(Signal::All, Signal::Tenant))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "file watch error; rescanning everything");
                vec![Signal::All]
            }
        };
        for s in signals {
            let _ = tx.send(s);
        }
    }
}

fn is_read_only_access(kind: &EventKind) -> bool {
    matches!(kind, EventKind::Access(a) if *a != AccessKind::Close(AccessMode::Write))
}

fn in_git_dir(path: &Path, base: &Path) -> bool {
    path.strip_prefix(base)
        .ok()
        .and_then(|rest| rest.components().next())
        .is_some_and(|c| c.as_os_str() == ".git")
}

/// The tenant a path under the tenants directory belongs to; None for the directory itself
/// or anything that is not a tenant (which then triggers a full rescan, which is cheap).
fn tenant_of(path: &Path, base: &Path) -> Option<TenantId> {
    let rest = path.strip_prefix(base).ok()?;
    match rest.components().next()? {
        Component::Normal(name) => TenantId::parse(name.to_str()?).ok(),
        _ => None,
    }
}

async fn reload_loop(
    service: Arc<keys::Service>,
    mut rx: UnboundedReceiver<Signal>,
    rescan_every: Duration,
) {
    let mut rescan = tokio::time::interval(rescan_every);
    rescan.tick().await;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let first = tokio::select! {
            s = rx.recv() => match s { Some(s) => s, None => return },
            _ = rescan.tick() => Signal::All,
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                tracing::info!("SIGHUP: rescanning every tenant");
                Signal::All
            }
        };
        let mut all = false;
        let mut tenants = BTreeSet::new();
        let mut note = |s: Signal| match s {
            Signal::All => all = true,
            Signal::Tenant(t) => {
                tenants.insert(t);
            }
        };
        note(first);
        tokio::time::sleep(DEBOUNCE).await;
        while let Ok(s) = rx.try_recv() {
            note(s);
        }
        let service = service.clone();
        let job = move || {
            if all {
                if let Err(e) = service.load_all() {
                    tracing::error!(error = %e, "cannot rescan the tenants directory");
                }
            } else {
                for t in &tenants {
                    service.reload(t);
                }
            }
        };
        if let Err(e) = tokio::task::spawn_blocking(job).await {
            tracing::error!(error = %e, "reload task failed");
        }
    }
}
