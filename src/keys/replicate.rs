//! Git mode's step in the write flow, between the store and the index: every API write a
//! commit of that tenant's file, pushed before it is acknowledged (`sync`) or after
//! (`async`); and the pull that keeps the clone in step with its remote.
//!
//! keyward never merges text. When the remote moved, the clone is reset to the remote head
//! (`git reset --keep`, which never drops an edit keyward did not make) and keyward's
//! unpushed writes are replayed by meaning from the journal, through the same surgical
//! editor; a write that no longer applies is dropped, logged with its actor, counted and
//! shown in status. Every git operation holds one lock: one work tree, one index.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use time::OffsetDateTime;

use super::Error;
use super::command::Actor;
use super::publish::Publisher;
use crate::config::{GitSettings, PushMode};
use crate::domain::{KeyName, SecurityFile, TenantId};
use crate::git::{Author, Journal, Pending, PendingChange, PushError, Repo};
use crate::metrics::Metrics;
use crate::store::{Change, FILE_NAME, Written, render};

/// A write's decision, made against the file as it is on disk.
type Decide<'a> = dyn FnMut(&SecurityFile) -> Result<Change, Error> + 'a;

/// How often a push refused as not fast-forward is replayed and tried again.
const PUSH_ATTEMPTS: usize = 5;
/// How many dropped writes status remembers.
const DROPPED_KEPT: usize = 50;

/// What an API write does, as its commit subject names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Create,
    Update,
    Rotate,
    Delete,
    Revoke,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Rotate => "rotate",
            Self::Delete => "delete",
            Self::Revoke => "revoke",
        }
    }

    pub const ALL: [Verb; 5] = [
        Self::Create,
        Self::Update,
        Self::Rotate,
        Self::Delete,
        Self::Revoke,
    ];
}

/// A write replay could no longer apply.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dropped {
    pub tenant: String,
    pub action: String,
    pub key_name: String,
    pub actor: String,
    pub reason: String,
    pub at: String,
}

/// What status shows of git mode.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GitStatus {
    pub head: Option<String>,
    pub remote_head: Option<String>,
    /// keyward's writes the remote does not have yet.
    pub unpushed: usize,
    pub last_pull_at: Option<String>,
    pub last_error: Option<String>,
    pub dropped: Vec<Dropped>,
}

struct State {
    journal: Journal,
    /// The last push was refused by the remote's policy.
    refused: bool,
    last_pull_at: Option<OffsetDateTime>,
    last_error: Option<String>,
    dropped: Vec<Dropped>,
}

pub struct Replicator {
    repo: Repo,
    /// `tenants_dir`, relative to the work tree's top.
    prefix: PathBuf,
    remote: Option<String>,
    branch: String,
    mode: PushMode,
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    /// Wakes the background pusher (`async`).
    pub wake_push: tokio::sync::Notify,
    /// Asks for a pull now (the webhook, SIGHUP).
    pub wake_pull: tokio::sync::Notify,
    pull_every: Option<Duration>,
}

impl Replicator {
    /// Checks the clone and repairs what a crash left (start-up, before the first load).
    pub fn open(
        tenants_dir: &Path,
        state_dir: &Path,
        settings: &GitSettings,
        metrics: Arc<Metrics>,
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
            .to_path_buf();
        let on = repo
            .run(&["symbolic-ref", "--quiet", "--short", "HEAD"])
            .map(|b| b.trim().to_owned())
            .unwrap_or_default();
        anyhow::ensure!(
            on == settings.branch,
            "git mode: the clone at {} is on {:?}, not on git.branch {:?}: `git checkout {}` first",
            top.display(),
            if on.is_empty() {
                "a detached HEAD"
            } else {
                &on
            },
            settings.branch,
            settings.branch
        );
        if let Some(remote) = &settings.remote {
            repo.run(&["remote", "get-url", remote]).map_err(|_| {
                anyhow::anyhow!(
                    "git mode: the clone has no remote {remote:?} (git.remote); add it, or set git.remote: null to commit without pushing"
                )
            })?;
        }
        repair_interrupted_git(&repo, &settings.branch, settings.remote.as_deref());
        let mut journal = Journal::open(state_dir)?;
        // keyward's own unfinished writes (a crash before their commit): never acknowledged,
        // so their files go back to HEAD and they are forgotten.
        let unfinished: Vec<Pending> = journal
            .entries()
            .iter()
            .filter(|e| e.commit.is_none())
            .cloned()
            .collect();
        // Any journalled write may have been cut short between its file and its commit (a
        // replay too): those files go back to HEAD, and the writes are replayed from the
        // journal by the first pull.
        let paths: Vec<String> = journal
            .entries()
            .iter()
            .map(|e| file_path(&prefix, &e.tenant))
            .collect();
        let dirty_now = repo.dirty(&path_str(&prefix))?;
        let restore: Vec<String> = paths
            .into_iter()
            .filter(|p| dirty_now.contains(p))
            .collect();
        repo.restore(&restore)?;
        for e in unfinished {
            journal.remove(e.id)?;
        }
        // The temp file of a write killed before its rename: one clone has one keyward, so
        // it is ours, and nothing in it was ever acknowledged.
        for path in repo.dirty(&path_str(&prefix))? {
            let name = path.rsplit('/').next().unwrap_or_default();
            if name.starts_with(".security.yml.") && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(top.join(&path));
            }
        }
        let dirty = repo.dirty(&path_str(&prefix))?;
        anyhow::ensure!(
            dirty.is_empty(),
            "git mode: the clone has uncommitted changes under {} that keyward did not make: {}. \
             Commit and push them, or discard them (`git -C {} checkout -- {}`), then start keyward again",
            path_str(&prefix),
            dirty.join(", "),
            top.display(),
            path_str(&prefix)
        );
        Ok(Self {
            repo,
            prefix,
            remote: settings.remote.clone(),
            branch: settings.branch.clone(),
            mode: settings.push,
            state: Mutex::new(State {
                journal,
                refused: false,
                last_pull_at: None,
                last_error: None,
                dropped: Vec::new(),
            }),
            metrics,
            wake_push: tokio::sync::Notify::new(),
            wake_pull: tokio::sync::Notify::new(),
            pull_every: (settings.pull_interval_seconds > 0)
                .then(|| Duration::from_secs(settings.pull_interval_seconds)),
        })
    }

    pub fn mode(&self) -> PushMode {
        self.mode
    }

    /// Does this clone have a remote to pull from and push to?
    pub fn has_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The pull interval (`pull_interval_seconds`; None: only on demand).
    pub fn pull_every(&self) -> Option<Duration> {
        self.pull_every
    }

    fn path_of(&self, tenant: &str) -> String {
        file_path(&self.prefix, tenant)
    }

    /// One API write: journal, file, commit, (push), index. Blocking.
    pub(super) fn write<F>(
        &self,
        publisher: &Publisher,
        actor: &Actor,
        verb: Verb,
        key: &KeyName,
        mut decide: F,
    ) -> Result<Written, Error>
    where
        F: FnMut(&SecurityFile) -> Result<Change, Error>,
    {
        let mut st = self.state.lock();
        let tenant = &actor.tenant;
        let id = st.journal.next_id();
        let base = self.repo.head();
        // The change is journalled by meaning before the file is touched.
        let written = publisher.store.write(tenant, |file| {
            let change = decide(file)?;
            let pending = Pending {
                id,
                tenant: tenant.to_string(),
                verb: verb.as_str().into(),
                key: key.to_string(),
                actor: actor.name().to_owned(),
                request_id: actor.request_id.clone(),
                change: by_meaning(&change),
                commit: None,
            };
            st.journal.remove(id).map_err(store_io)?;
            st.journal.push(pending).map_err(store_io)?;
            Ok(change)
        });
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = st.journal.remove(id);
                return Err(e);
            }
        };
        if !written.changed {
            // The change left the file as it was (an update to the same values): there is
            // nothing to commit, and nothing for the remote to learn.
            let _ = st.journal.remove(id);
            return Ok(written);
        }
        let pending = st.journal.entries().iter().find(|e| e.id == id).cloned();
        let Some(pending) = pending else {
            return Err(Error::Git("the journal lost a write".into()));
        };
        if let Err(e) = self.commit(&mut st, &pending) {
            // Not acknowledged: the file goes back to what HEAD has.
            let _ = self.repo.restore(&[self.path_of(&pending.tenant)]);
            let _ = st.journal.remove(id);
            return Err(e);
        }
        if self.remote.is_none() {
            // Commit only: the commit is all there is to do.
            let _ = st.journal.remove(id);
        } else if self.mode == PushMode::Sync {
            self.push_sync(&mut st, publisher, id, base.as_deref(), &mut decide)?;
        } else {
            self.wake_push.notify_one();
        }
        // A replay may have published a newer version of the tenant already: publishing this
        // one then changes nothing (the index refuses an older generation).
        Ok(written)
    }

    fn commit(&self, st: &mut MutexGuard<'_, State>, pending: &Pending) -> Result<(), Error> {
        let path = self.path_of(&pending.tenant);
        let subject = format!("{} {}/{}", pending.verb, pending.tenant, pending.key);
        let body = match &pending.request_id {
            Some(id) => format!("Request-Id: {id}"),
            None => "Made by keyward.".to_owned(),
        };
        let sha = self
            .repo
            .commit_path(&path, &subject, &body, &Author::of(&pending.actor))
            .map_err(|e| Error::Git(e.to_string()))?;
        st.journal
            .set_commit(pending.id, Some(sha))
            .map_err(|e| Error::Git(e.to_string()))
    }

    /// Pushes until the remote has the write `id`, replaying on each new remote head; when
    /// the remote cannot take it, undoes the local commit. Holds the lock throughout.
    fn push_sync(
        &self,
        st: &mut MutexGuard<'_, State>,
        publisher: &Publisher,
        id: u64,
        base: Option<&str>,
        decide: &mut Decide<'_>,
    ) -> Result<(), Error> {
        let (Some(remote), branch) = (&self.remote, &self.branch) else {
            return Ok(());
        };
        for _ in 0..PUSH_ATTEMPTS {
            match self.repo.push(remote, branch) {
                Ok(()) => {
                    st.last_error = None;
                    return st.journal.clear().map_err(|e| Error::Git(e.to_string()));
                }
                Err(PushError::NotFastForward) => {
                    tracing::info!("the remote moved: replaying keyward's writes on its head");
                    if let Err(e) = self.repo.fetch(remote, branch) {
                        return self.undo(st, id, base, e);
                    }
                    // This write is decided again on the new head, as if it came after what
                    // the remote has now (a rotation raced by another replica's rotation
                    // rotates the winner's key, it does not bring back its own old entry).
                    let dropped = self.replay(st, publisher, Some((id, decide)));
                    if let Some((_, error)) = dropped.into_iter().find(|(p, _)| p.id == id) {
                        // The answer it would have got on the new head.
                        return Err(error);
                    }
                }
                Err(e) => {
                    // A push that failed late (a timeout, a dropped connection) may have
                    // landed: ask the remote before undoing anything.
                    if self.remote_has(st, id) {
                        st.last_error = None;
                        let _ = st.journal.clear();
                        return Ok(());
                    }
                    return self.undo(st, id, base, e);
                }
            }
        }
        let e = PushError::Refused("the remote kept moving".into());
        self.undo(st, id, base, e)
    }

    /// Does the remote's branch already hold write `id`'s commit?
    fn remote_has(&self, st: &MutexGuard<'_, State>, id: u64) -> bool {
        let Some(remote) = &self.remote else {
            return false;
        };
        let commit = st
            .journal
            .entries()
            .iter()
            .find(|e| e.id == id)
            .and_then(|e| e.commit.clone());
        let (Some(commit), Ok(())) = (commit, self.repo.fetch(remote, &self.branch)) else {
            return false;
        };
        self.repo
            .remote_head(remote, &self.branch)
            .is_some_and(|theirs| self.repo.is_ancestor(&commit, &theirs))
    }

    /// The remote did not take write `id`: it is undone locally and the client told so.
    fn undo(
        &self,
        st: &mut MutexGuard<'_, State>,
        id: u64,
        base: Option<&str>,
        why: PushError,
    ) -> Result<(), Error> {
        let target = st.journal.entries().iter().find(|e| e.id == id).cloned();
        // Back to where the branch was before this write: the remote's head if it moved and
        // was fetched since, else the commit before ours.
        let back = self
            .remote
            .as_deref()
            .and_then(|r| self.repo.remote_head(r, &self.branch))
            .filter(|r| base.is_some_and(|b| self.repo.is_ancestor(b, r)))
            .or_else(|| base.map(str::to_owned));
        let undone = back.is_some_and(|back| {
            self.repo.reset_keep(&back).is_ok() || self.repo.reset_keep(&back).is_ok()
        });
        if undone {
            let _ = st.journal.remove(id);
        } else {
            // Still in HEAD: kept in the journal, so that it is pushed, not lost, later.
            tracing::error!("cannot undo a write the remote did not take; it will be pushed later");
        }
        if let Some(t) = target {
            tracing::warn!(tenant = %t.tenant, key = %t.key, actor = %t.actor, error = %why,
                "the remote did not take a write; it was undone");
        }
        st.last_error = Some(why.to_string());
        Err(Error::RemoteUnavailable(why.to_string()))
    }

    /// Resets the clone to the fetched remote head and replays every committed write of the
    /// journal by meaning. Returns the writes that no longer apply, with the error each
    /// would have got.
    fn replay(
        &self,
        st: &mut MutexGuard<'_, State>,
        publisher: &Publisher,
        mut current: Option<(u64, &mut Decide<'_>)>,
    ) -> Vec<(Pending, Error)> {
        let (Some(remote), branch) = (&self.remote, &self.branch) else {
            return Vec::new();
        };
        let Some(target) = self.repo.remote_head(remote, branch) else {
            return Vec::new();
        };
        if let Err(e) = self.repo.reset_keep(&target) {
            st.last_error = Some(e.to_string());
            return Vec::new();
        }
        let mut dropped = Vec::new();
        let writes: Vec<Pending> = st.journal.entries().to_vec();
        for pending in writes {
            let Ok(tenant) = TenantId::parse(&pending.tenant) else {
                continue;
            };
            let mut decided = None;
            let result = publisher.store.write(&tenant, |file| match &mut current {
                Some((id, decide)) if *id == pending.id => {
                    let change = decide(file)?;
                    decided = Some(by_meaning(&change));
                    Ok(change)
                }
                _ => again(&pending, file),
            });
            let mut pending = pending;
            if let Some(change) = decided {
                pending.change = change;
                let _ = st.journal.remove(pending.id);
                let _ = st.journal.push(pending.clone());
            }
            let written = match result {
                Ok(w) => w,
                // It no longer applies on this head: the answer it would have got there.
                Err(
                    e @ (Error::KeyExists
                    | Error::KeyNotFound
                    | Error::KeyLimit(_)
                    | Error::PreconditionFailed
                    | Error::Forbidden(_)
                    | Error::Validation(_)),
                ) => {
                    self.drop_write(st, &pending, &e);
                    dropped.push((pending, e));
                    continue;
                }
                Err(e) => {
                    // Not the write's fault (the disk, a lock): keep it for the next try.
                    st.last_error = Some(e.to_string());
                    break;
                }
            };
            // Published either way: the reset may have changed the file under the index,
            // and the store already knows this content, so no reload will.
            publisher.publish(&tenant, &written.version);
            if !written.changed {
                let _ = st.journal.remove(pending.id);
                continue;
            }
            if let Err(e) = self.commit(st, &pending) {
                let _ = self.repo.restore(&[self.path_of(&pending.tenant)]);
                st.last_error = Some(e.to_string());
                break;
            }
        }
        dropped
    }

    fn drop_write(&self, st: &mut MutexGuard<'_, State>, pending: &Pending, why: &Error) {
        let _ = st.journal.remove(pending.id);
        tracing::warn!(tenant = %pending.tenant, key = %pending.key, actor = %pending.actor,
            action = %pending.verb, reason = %why,
            "a write no longer applies on the remote's head and was dropped");
        self.metrics.git_dropped_write();
        st.dropped.push(Dropped {
            tenant: pending.tenant.clone(),
            action: pending.verb.clone(),
            key_name: pending.key.clone(),
            actor: pending.actor.clone(),
            reason: why.to_string(),
            at: render::timestamp(OffsetDateTime::now_utc()),
        });
        let excess = st.dropped.len().saturating_sub(DROPPED_KEPT);
        st.dropped.drain(..excess);
    }

    /// Fetches and brings the clone to the remote's head, replaying keyward's unpushed
    /// writes on it; then pushes them. Blocking. Idempotent: a webhook that arrives twice
    /// costs one fetch more.
    pub(super) fn pull(&self, publisher: &Publisher) {
        let Some(remote) = self.remote.clone() else {
            return;
        };
        let mut st = self.state.lock();
        if let Err(e) = self.repo.fetch(&remote, &self.branch) {
            st.last_error = Some(e.to_string());
            tracing::warn!(error = %e, "git fetch failed");
            return;
        }
        st.last_pull_at = Some(OffsetDateTime::now_utc());
        let (Some(head), Some(theirs)) = (
            self.repo.head(),
            self.repo.remote_head(&remote, &self.branch),
        ) else {
            return;
        };
        // A journalled commit HEAD no longer holds (a replay cut short by a crash) must be
        // replayed even when HEAD is ahead of the remote.
        let lost = st
            .journal
            .entries()
            .iter()
            .filter_map(|e| e.commit.as_deref())
            .any(|c| !self.repo.is_ancestor(c, &head));
        if lost {
            self.replay(&mut st, publisher, None);
        } else if head != theirs && !self.repo.is_ancestor(&theirs, &head) {
            if self.repo.is_ancestor(&head, &theirs) {
                // Nothing of ours to replay: move forward. The watcher reloads what changed.
                if let Err(e) = self.repo.reset_keep(&theirs) {
                    st.last_error = Some(e.to_string());
                    return;
                }
            } else {
                self.replay(&mut st, publisher, None);
            }
        }
        self.push_pending(&mut st, publisher);
    }

    /// Pushes what the journal holds (async mode, or writes replayed by a pull).
    fn push_pending(&self, st: &mut MutexGuard<'_, State>, publisher: &Publisher) {
        let Some(remote) = self.remote.clone() else {
            return;
        };
        for _ in 0..PUSH_ATTEMPTS {
            if st.journal.entries().iter().all(|e| e.commit.is_none()) {
                return;
            }
            match self.repo.push(&remote, &self.branch) {
                Ok(()) => {
                    st.last_error = None;
                    self.forget_pushed(st);
                    return;
                }
                Err(PushError::NotFastForward) => {
                    if self.repo.fetch(&remote, &self.branch).is_err() {
                        return;
                    }
                    self.replay(st, publisher, None);
                }
                Err(e) => {
                    st.refused = matches!(e, PushError::Refused(_));
                    st.last_error = Some(e.to_string());
                    return;
                }
            }
        }
    }

    /// The background pusher of `async` mode: pushes after each write, and retries with
    /// backoff (1 s doubling to 60 s) while the remote cannot be reached.
    pub(super) fn push_in_background(&self, publisher: &Publisher) -> Option<Duration> {
        let mut st = self.state.lock();
        self.push_pending(&mut st, publisher);
        let unpushed = st.journal.entries().iter().any(|e| e.commit.is_some());
        // A refusal by policy (a protected branch) is reported, not retried forever: the
        // next write or pull tries again.
        (unpushed && !st.refused).then_some(Duration::from_secs(1))
    }

    /// Forgets the writes whose commits HEAD (just pushed) holds; keeps any other.
    fn forget_pushed(&self, st: &mut MutexGuard<'_, State>) {
        let Some(head) = self.repo.head() else {
            return;
        };
        let pushed: Vec<u64> = st
            .journal
            .entries()
            .iter()
            .filter(|e| {
                e.commit
                    .as_deref()
                    .is_some_and(|c| self.repo.is_ancestor(c, &head))
            })
            .map(|e| e.id)
            .collect();
        for id in pushed {
            let _ = st.journal.remove(id);
        }
    }

    pub fn status(&self) -> GitStatus {
        let st = self.state.lock();
        GitStatus {
            head: self.repo.head(),
            remote_head: self
                .remote
                .as_deref()
                .and_then(|r| self.repo.remote_head(r, &self.branch)),
            unpushed: st
                .journal
                .entries()
                .iter()
                .filter(|e| e.commit.is_some())
                .count(),
            last_pull_at: st.last_pull_at.map(render::timestamp),
            last_error: st.last_error.clone(),
            dropped: st.dropped.clone(),
        }
    }

    /// The tenant's file history, newest first (`git log`), ops' commits included.
    pub fn history(&self, tenant: &TenantId, key: Option<&KeyName>) -> Result<History, Error> {
        let path = self.path_of(tenant.as_str());
        const FORMAT: &str = "--format=%H%x1f%an%x1f%aI%x1f%s%x1e";
        let log = |extra: &[&str]| -> Result<Vec<HistoryEntry>, Error> {
            let mut args = vec!["log", FORMAT];
            args.extend_from_slice(extra);
            args.extend(["--", path.as_str()]);
            let out = self
                .repo
                .run(&args)
                .map_err(|e| Error::Git(e.to_string()))?;
            Ok(out
                .split('\u{1e}')
                .filter_map(|r| parse_log_record(r, tenant))
                .collect())
        };
        let mut entries = log(&[])?;
        if let Some(key) = key {
            // keyward's commits name the key; an ops commit counts when its diff touches a
            // line naming it.
            let pattern = format!(
                "name:[[:space:]]*['\"]?{}(['\"[:space:]#]|$)",
                regex_escape(key.as_str())
            );
            let touched: Vec<String> = log(&["-G", &pattern])?
                .into_iter()
                .map(|e| e.commit)
                .collect();
            entries.retain(|e| match &e.key_name {
                Some(k) => k == key.as_str(),
                None => touched.contains(&e.commit),
            });
        }
        Ok(History {
            entries,
            shallow: self.repo.is_shallow(),
        })
    }
}

/// A tenant's history from git.
#[derive(Debug)]
pub struct History {
    pub entries: Vec<HistoryEntry>,
    /// The clone's history is cut short (`git clone --depth`): older commits exist.
    pub shallow: bool,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub commit: String,
    pub author: String,
    pub date: String,
    /// `create`, `update`, `rotate`, `delete`, `revoke`, or `edit` (not keyward's commit).
    pub action: String,
    pub key_name: Option<String>,
}

fn parse_log_record(record: &str, tenant: &TenantId) -> Option<HistoryEntry> {
    let mut parts = record.trim_matches(['\n', '\r']).split('\u{1f}');
    let commit = parts.next()?.trim().to_owned();
    if commit.is_empty() {
        return None;
    }
    let author = parts.next()?.to_owned();
    let date = parts.next()?.to_owned();
    let subject = parts.next().unwrap_or_default();
    let ours = subject.split_once(' ').and_then(|(verb, rest)| {
        let (t, key) = rest.split_once('/')?;
        let known = Verb::ALL.iter().any(|v| v.as_str() == verb);
        (known && t == tenant.as_str() && KeyName::parse(key).is_ok())
            .then(|| (verb.to_owned(), key.to_owned()))
    });
    let (action, key_name) = match ours {
        Some((verb, key)) => (verb, Some(key)),
        None => ("edit".to_owned(), None),
    };
    Some(HistoryEntry {
        commit,
        author,
        date,
        action,
        key_name,
    })
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = matches!(c, '.' | '-' | '[' | ']' | '\\' | '*' | '^' | '$');
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// A write's change by meaning, for the journal.
fn by_meaning(change: &Change) -> PendingChange {
    match change {
        Change::Create(e) => PendingChange::Create {
            entry: render::entry_yaml(e),
        },
        Change::Replace(e) => PendingChange::Replace {
            entry: render::entry_yaml(e),
        },
        Change::Delete(_) => PendingChange::Delete,
    }
}

/// A journalled write applied again, to the file as it is now.
fn again(pending: &Pending, file: &SecurityFile) -> Result<Change, Error> {
    let name = KeyName::parse(&pending.key).map_err(|_| Error::KeyNotFound)?;
    let entry = |yaml: &str| {
        SecurityFile::parse(yaml)
            .ok()
            .and_then(|f| f.keys.into_iter().next())
            .ok_or_else(|| Error::Git("a journalled entry does not parse".into()))
    };
    match &pending.change {
        PendingChange::Create { entry: yaml } => {
            if file.find(&name).is_some() {
                return Err(Error::KeyExists);
            }
            Ok(Change::Create(entry(yaml)?))
        }
        PendingChange::Replace { entry: yaml } => {
            file.find(&name).ok_or(Error::KeyNotFound)?;
            Ok(Change::Replace(entry(yaml)?))
        }
        PendingChange::Delete => {
            file.find(&name).ok_or(Error::KeyNotFound)?;
            Ok(Change::Delete(name))
        }
    }
}

fn store_io(e: std::io::Error) -> Error {
    Error::Store(crate::store::StoreError::Io(e))
}

fn file_path(prefix: &Path, tenant: &str) -> String {
    path_str(&prefix.join(tenant).join(FILE_NAME))
}

fn path_str(p: &Path) -> String {
    let s = p.to_string_lossy().into_owned();
    if s.is_empty() { ".".into() } else { s }
}

/// What a killed git leaves: a stale `index.lock` (no git of keyward's runs before start-up
/// finishes), an interrupted rebase or merge (keyward never starts one, but the clone must be
/// clean).
fn repair_interrupted_git(repo: &Repo, branch: &str, remote: Option<&str>) {
    let Some(dir) = repo.git_dir() else {
        return;
    };
    // Locks a killed git leaves: the index's, and those of the refs keyward moves.
    let locks = [
        dir.join("index.lock"),
        dir.join("HEAD.lock"),
        dir.join("packed-refs.lock"),
        dir.join("refs/heads").join(format!("{}.lock", branch)),
    ];
    let remote_locks = remote
        .map(|r| {
            dir.join("refs/remotes")
                .join(r)
                .join(format!("{branch}.lock"))
        })
        .into_iter();
    // A lock younger than this may belong to a git of ops' running right now.
    const STALE: Duration = Duration::from_secs(10);
    let age = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
    };
    for lock in locks.into_iter().chain(remote_locks) {
        while age(&lock).is_some_and(|a| a < STALE) {
            std::thread::sleep(Duration::from_millis(200));
        }
        if lock.exists() && std::fs::remove_file(&lock).is_ok() {
            tracing::warn!(path = %lock.display(), "removed a stale git lock left by a killed git");
        }
    }
    if dir.join("rebase-merge").exists() || dir.join("rebase-apply").exists() {
        let _ = repo.run(&["rebase", "--abort"]);
        tracing::warn!("aborted an interrupted rebase in the clone");
    }
    if dir.join("MERGE_HEAD").exists() {
        let _ = repo.run(&["merge", "--abort"]);
        tracing::warn!("aborted an interrupted merge in the clone");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_records_tell_keyward_s_commits_from_ops_edits() {
        let acme = TenantId::parse("acme").unwrap();
        let ours = parse_log_record(
            "\nabc\u{1f}alice\u{1f}2026-11-28T10:00:00+00:00\u{1f}create acme/ci-deploy",
            &acme,
        )
        .unwrap();
        assert_eq!(
            (ours.action.as_str(), ours.key_name.as_deref()),
            ("create", Some("ci-deploy"))
        );
        let theirs = parse_log_record(
            "def\u{1f}bob\u{1f}2026-11-28T10:00:00+00:00\u{1f}Rotate keys for Q4",
            &acme,
        )
        .unwrap();
        assert_eq!((theirs.action.as_str(), theirs.key_name), ("edit", None));
        let other_tenant =
            parse_log_record("ghi\u{1f}bob\u{1f}d\u{1f}create globex/x", &acme).unwrap();
        assert_eq!(other_tenant.action, "edit");
    }
}
