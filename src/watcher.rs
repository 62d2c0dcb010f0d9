//! File changes -> reloads. One recursive watch on the tenants directory (never on the
//! files: editors and git replace them by rename, which would kill a per-file watch),
//! debounced, plus a periodic rescan and SIGHUP for events that never come.

use std::collections::{BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::domain::TenantId;
use crate::metrics;
use crate::store::{ReloadOutcome, Store};

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

/// Loads every tenant (start-up, rescans) and forgets tenants whose directory is gone.
pub fn load_all(store: &Store) -> std::io::Result<()> {
    let (tenants, bad) = store.list_tenants()?;
    for name in bad {
        warn_once(&name);
    }
    let present: HashSet<&TenantId> = tenants.iter().collect();
    for tenant in store.index().tenants() {
        if !present.contains(&tenant) {
            reload(store, &tenant);
        }
    }
    store.index().add_tenants(&tenants);
    let started = std::time::Instant::now();
    // Parsing is CPU work: spread the tenants over the cores (start-up, full rescans).
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = tenants.len().div_ceil(workers).max(1);
    let counted = AtomicUsize::new(0);
    let (count, loaded) = std::thread::scope(|s| {
        let parts: Vec<_> = tenants
            .chunks(chunk)
            .map(|part| {
                let counted = &counted;
                s.spawn(move || {
                    let mut loaded = Vec::new();
                    for t in part {
                        store.remove_stale_temp_files(t);
                        if let Some(added) = reload_quietly(store, t) {
                            // Past the per-tenant limit (over all workers) the whole index is
                            // checked at once: holding every added hash would only cost memory.
                            if counted.fetch_add(1, Ordering::Relaxed) < SHARED_CHECK_PER_TENANT {
                                loaded.push((t, added));
                            } else {
                                loaded = Vec::new();
                            }
                        }
                    }
                    loaded
                })
            })
            .collect();
        let loaded: Vec<_> = parts
            .into_iter()
            .filter_map(|p| p.join().ok())
            .flatten()
            .collect();
        (counted.load(Ordering::Relaxed), loaded)
    });
    if count <= SHARED_CHECK_PER_TENANT {
        // A pair of tenants loaded together is reported once.
        let mut done: HashSet<&TenantId> = HashSet::new();
        for (tenant, added) in loaded {
            log_loaded(store, tenant);
            warn_shared(store, tenant, &added, &done);
            done.insert(tenant);
        }
    } else {
        // Start-up, SIGHUP or a rescan that found many changes: one line rather than one per
        // tenant, and one pass over the whole index for shared hashes, off this thread.
        let keys: usize = tenants
            .iter()
            .filter_map(|t| store.index().keys(t))
            .map(|k| k.len())
            .sum();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        tracing::info!(
            loaded = count,
            tenants = tenants.len(),
            keys,
            elapsed_ms,
            "tenants loaded"
        );
        let index = store.index().clone();
        std::thread::spawn(move || warn_all_shared(&index));
    }
    Ok(())
}

/// Up to this many tenants loaded at once are checked one by one for hashes shared with
/// other tenants; more are checked in one pass over the whole index.
const SHARED_CHECK_PER_TENANT: usize = 64;

/// Warns about keys of `tenant` that have the same hash as a key of another tenant. Names
/// only: a hash is never logged.
fn warn_shared(
    store: &Store,
    tenant: &TenantId,
    added: &[crate::domain::KeyHash],
    reported: &HashSet<&TenantId>,
) {
    let mut shared = store.index().sharing(tenant, added);
    shared.retain(|s| !reported.contains(&s.tenant));
    if shared.is_empty() {
        return;
    }
    shared.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    let Some(keys) = store.index().keys(tenant) else {
        return;
    };
    for s in shared {
        let Some(key) = keys.by_hash(&s.hash).map(|k| &k.entry.name) else {
            continue;
        };
        tracing::warn!(%tenant, %key, other_tenant = %s.tenant, other_key = %s.name,
            "a key has the same hash as a key of another tenant (legal, but usually a copy-paste mistake)");
    }
}

fn warn_all_shared(index: &crate::index::Index) {
    for group in index.shared_hashes() {
        let keys: Vec<String> = group
            .iter()
            .map(|s| format!("{}/{}", s.tenant, s.name))
            .collect();
        tracing::warn!(keys = %keys.join(", "),
            "keys of different tenants have the same hash (legal, but usually a copy-paste mistake)");
    }
}

fn reload(store: &Store, tenant: &TenantId) {
    if let Some(added) = reload_quietly(store, tenant) {
        log_loaded(store, tenant);
        warn_shared(store, tenant, &added, &HashSet::new());
    }
}

fn log_loaded(store: &Store, tenant: &TenantId) {
    let keys = store.index().keys(tenant).map_or(0, |k| k.len());
    tracing::info!(%tenant, keys, "tenant loaded");
}

/// Reloads and logs a failure; for a loaded tenant (which the caller logs), returns the
/// hashes it did not have.
fn reload_quietly(store: &Store, tenant: &TenantId) -> Option<Vec<crate::domain::KeyHash>> {
    match store.reload(tenant) {
        Ok(ReloadOutcome::Unchanged) => {}
        Ok(ReloadOutcome::Loaded { added }) => {
            metrics::reload(tenant, "loaded");
            return Some(added);
        }
        Ok(ReloadOutcome::Invalid) => {
            metrics::reload(tenant, "invalid");
            metrics::reload_error(tenant);
            let problem = store.index().status(tenant).and_then(|s| s.problem);
            let problem = problem.map(|p| p.to_string()).unwrap_or_default();
            tracing::warn!(%tenant, %problem, "security.yml is invalid; keeping the last valid keys");
        }
        Ok(ReloadOutcome::Removed) => {
            metrics::reload(tenant, "removed");
            tracing::info!(%tenant, "tenant removed");
        }
        Err(e) => {
            metrics::reload_error(tenant);
            tracing::error!(%tenant, error = %e, "cannot reload tenant");
        }
    }
    None
}

fn warn_once(name: &str) {
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut warned = WARNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if warned.insert(name.to_owned()) {
        tracing::warn!(directory = %name, "ignoring a directory whose name is not a valid tenant id");
    }
}

/// Starts watching `store`'s directory; reloads run on blocking threads.
/// A watch set up before the initial load, so no change made during the load is missed;
/// its events wait in the channel until `run` starts handling them.
pub struct PendingWatch {
    watcher: RecommendedWatcher,
    rx: UnboundedReceiver<Signal>,
}

pub fn watch(store: &Store) -> notify::Result<PendingWatch> {
    let (tx, rx) = unbounded_channel();
    let base = store.dir().to_path_buf();
    let canonical = std::fs::canonicalize(&base).unwrap_or_else(|_| base.clone());
    let mut watcher = notify::recommended_watcher(event_handler(tx, base, canonical.clone()))?;
    watcher.watch(&canonical, RecursiveMode::Recursive)?;
    Ok(PendingWatch { watcher, rx })
}

impl PendingWatch {
    /// Starts reloading on events (those queued since `watch` first) and every
    /// `rescan_every`. Needs a Tokio runtime.
    pub fn run(self, store: Arc<Store>, rescan_every: Duration) -> WatchGuard {
        let task = tokio::spawn(reload_loop(store, self.rx, rescan_every));
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
            Ok(ev) => ev
                .paths
                .iter()
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

/// The tenant a path under the tenants directory belongs to; None for the directory itself
/// or anything that is not a tenant (which then triggers a full rescan, which is cheap).
fn tenant_of(path: &Path, base: &Path) -> Option<TenantId> {
    let rest = path.strip_prefix(base).ok()?;
    match rest.components().next()? {
        Component::Normal(name) => TenantId::parse(name.to_str()?).ok(),
        _ => None,
    }
}

async fn reload_loop(store: Arc<Store>, mut rx: UnboundedReceiver<Signal>, rescan_every: Duration) {
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
        let store = store.clone();
        let job = move || {
            if all {
                if let Err(e) = load_all(&store) {
                    tracing::error!(error = %e, "cannot rescan the tenants directory");
                }
            } else {
                for t in &tenants {
                    reload(&store, t);
                }
            }
        };
        if let Err(e) = tokio::task::spawn_blocking(job).await {
            tracing::error!(error = %e, "reload task failed");
        }
    }
}
