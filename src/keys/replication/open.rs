//! Start-up: the clone is checked and what a crash left is repaired, then the first commit
//! is served, before any request. No network: the remote is fetched by the worker, so a
//! remote that is down never keeps keyward from starting on what it last knew.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::journal::Journal;
use super::report::Reports;
use super::serve::Served;
use super::{Engine, Remote, View};
use crate::clock::Clock;
use crate::config::GitSettings;
use crate::git::{LOCAL_REF, REMOTE_REF, Repo};
use crate::keys::publish::Publisher;
use crate::metrics::Metrics;

/// A clone checked and repaired, its first commit served: ready for its worker.
pub struct Opened {
    pub(super) engine: Engine,
}

impl Opened {
    /// Checks the clone, repairs what a crash left, and loads the commit to serve into the
    /// index. Blocking.
    pub(in crate::keys) fn open(
        tenants_dir: &Path,
        state_dir: &Path,
        settings: &GitSettings,
        publisher: Arc<Publisher>,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let repo = Repo::discover(tenants_dir).map_err(|e| {
            anyhow::anyhow!(
                "git mode needs tenants_dir {} inside a git work tree: {e}",
                tenants_dir.display()
            )
        })?;
        let top = std::fs::canonicalize(repo.top())?;
        let tenants = std::fs::canonicalize(tenants_dir)?;
        let prefix = tenants
            .strip_prefix(&top)
            .map_err(|_| anyhow::anyhow!("tenants_dir is not inside the work tree"))?
            .to_string_lossy()
            .into_owned();
        let on = repo.current_branch();
        anyhow::ensure!(
            on.as_deref() == Some(settings.branch.as_str()),
            "git mode: the clone at {} is on {}, not on git.branch {:?}: `git checkout {}` first",
            top.display(),
            on.map_or("a detached HEAD".to_owned(), |b| format!("{b:?}")),
            settings.branch,
            settings.branch
        );
        anyhow::ensure!(
            settings.push_timeout_seconds > 0,
            "git.push_timeout_seconds must be at least 1"
        );
        let remote = match &settings.remote {
            Some(name) => {
                repo.push_url(name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "git mode: the clone has no remote {name:?} (git.remote); add it, or set git.remote: null to commit without pushing"
                    )
                })?;
                Some(Remote { name: name.clone() })
            }
            None => None,
        };
        repair_interrupted_git(&repo, &settings.branch, state_dir);
        // The cause stays in the chain that start-up prints.
        let journal = Journal::open(state_dir).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "git mode: cannot read {}. A journal from a keyward before this release: push the \
                 clone's branch by hand (`git push`), then remove that file and start again",
                state_dir.join("git/journal.json").display()
            ))
        })?;
        let dirty = repo.dirty(if prefix.is_empty() { "." } else { &prefix })?;
        if !dirty.is_empty() {
            tracing::warn!(
                files = dirty.len(),
                "the clone has uncommitted changes under the tenants directory: git mode serves commits, \
                 so they are not served; commit and push them"
            );
        }
        let head = repo
            .head()
            .ok_or_else(|| anyhow::anyhow!("git mode: the clone has no commit yet"))?;
        // What keyward knew before: its own refs, else the clone's view of the remote.
        let (remote_tip, local_tip) = match &remote {
            Some(r) => {
                let known = repo
                    .rev(REMOTE_REF)
                    .or_else(|| repo.rev(&format!("refs/remotes/{}/{}", r.name, settings.branch)))
                    .unwrap_or_else(|| head.clone());
                (Some(known.clone()), Some(known))
            }
            None => (None, Some(repo.rev(LOCAL_REF).unwrap_or(head))),
        };
        let view = Arc::new(Mutex::new(View {
            dropped: Some(Reports::in_memory()),
            rewritten: Some(Reports::rewritten(state_dir)),
            ..View::default()
        }));
        let mut engine = Engine {
            repo,
            prefix,
            remote,
            branch: settings.branch.clone(),
            mode: settings.push,
            push_timeout: Duration::from_secs(settings.push_timeout_seconds),
            pull_every: (settings.pull_interval_seconds > 0)
                .then(|| Duration::from_secs(settings.pull_interval_seconds)),
            publisher,
            metrics,
            clock,
            journal,
            remote_tip,
            local_tip,
            local_base: None,
            replay: None,
            finished: Vec::new(),
            served: Served::default(),
            view,
            applied: Default::default(),
            state_dir: state_dir.to_path_buf(),
            courier: None,
            in_flight: None,
            waiting: Vec::new(),
            settling: Vec::new(),
            fetch_wanted: true,
            fetch_after: None,
            push_at: None,
            backoff: Duration::from_secs(1),
            push_not_before: None,
            flight_due: None,
            last_was_fetch: false,
            texts: Default::default(),
            contended_until: None,
            push_took: Duration::ZERO,
            round_started: std::time::Instant::now(),
        };
        if let Some(tip) = engine
            .remote_tip
            .clone()
            .or_else(|| engine.local_tip.clone())
        {
            engine.learn_idempotency(&tip, &[]);
        }
        // Acknowledged and not pushed: a retry of one of these is not applied again either.
        for e in engine.journal.entries() {
            if let Some(tag) = &e.intent.idempotency {
                engine.applied.insert(tag.scope.clone(), tag.body.clone());
            }
        }
        // Acknowledged writes an earlier run did not push: replayed on what it knew.
        engine.rebuild_local();
        let first = engine
            .serving()
            .ok_or_else(|| anyhow::anyhow!("git mode: no commit to serve"))?;
        engine.serve(&first)?;
        Ok(Self { engine })
    }
}

/// What a killed git of keyward's leaves: locks on its own refs, and, when keyward was
/// killed in the middle of moving the work tree forward (its marker in `state_dir` says
/// so), the locks that fast-forward took. A lock younger than 10 s may be a live git's and
/// is waited out; a lock of anyone else's is never touched.
fn repair_interrupted_git(repo: &Repo, branch: &str, state_dir: &Path) {
    let Some(dir) = repo.git_dir() else {
        return;
    };
    const STALE: Duration = Duration::from_secs(10);
    let age = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
    };
    let mut locks = Vec::new();
    if let Ok(ours) = std::fs::read_dir(dir.join("refs/keyward")) {
        locks.extend(
            ours.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "lock")),
        );
    }
    let marker = state_dir.join("git").join("fast-forward-running");
    if marker.exists() {
        locks.extend(repo.merge_locks(branch));
    }
    for lock in locks {
        while age(&lock).is_some_and(|a| a < STALE) {
            std::thread::sleep(Duration::from_millis(200));
        }
        if lock.exists() && std::fs::remove_file(&lock).is_ok() {
            tracing::warn!(path = %lock.display(), "removed a stale git lock left by a killed git of keyward's");
        }
    }
    let _ = std::fs::remove_file(marker);
}
