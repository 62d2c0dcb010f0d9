//! The write path. The worker takes the writes that arrived since the remote was last
//! asked as one batch: after a fetch (or right after its own push), it decides each write by
//! meaning on the remote tip (each on the file as the writes before it left it), makes each
//! its own commit with `git fast-import`, and pushes the batch's last commit by id; writes
//! that arrive while that push is out wait for the next one. Each write is then answered
//! from what keyward knows, and nothing more:
//! - pushed: acknowledged (`sync`); its commit is on the remote;
//! - the remote moved: the batch is decided again on the new tip, with jitter, until the
//!   writes' deadline; a write that no longer applies gets the answer it gets there;
//! - the remote said no, or could not be reached: 503, nothing was written anywhere;
//! - the push did not finish in time: keyward asks the remote; if it still cannot tell,
//!   504 `outcome_unknown`, and the write's commits are watched for on the remote.
//!
//! `async` acknowledges once the batch is committed on `refs/keyward/local` and journalled;
//! the worker pushes after. With no remote, the commit is all there is.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::courier::Trip;
use super::journal::Journalled;
use super::{Applied, Engine, Job, file_path};
use crate::config::PushMode;
use crate::domain::{KeyEntry, TenantId};
use crate::git::{Author, GitError, LOCAL_REF, NewCommit, REMOTE_REF, RemoteError, Repo};
use crate::keys::intent::Intent;
use std::sync::Arc;

use crate::keys::{Error, GitFailure, Unsettled};
use crate::store::Store;

/// The trailer of a commit `keyward git reapply` made.
pub(super) const REAPPLIES: &str = "Reapplies: ";

/// How long a replica takes others to be pushing after it last saw one of their commits.
pub(super) const CONTENDED_FOR: Duration = Duration::from_secs(30);

/// One write decided on a base: its commit (None: the file did not change) and its entry.
pub(super) struct Decided {
    pub commit: Option<String>,
    pub entry: Option<KeyEntry>,
}

/// The commit a batch left, and its writes that were not refused.
type Decisions = (String, Vec<(Job, Decided)>);

/// A batch's writes decided: the commit they left, the kept ones, the refused ones.
type Decided3 = (String, Vec<(Job, Decided)>, Vec<(Job, Error)>);

/// Writes decided in order on one base, and the commit the last one left.
pub(super) struct Built {
    pub tip: String,
    pub outcomes: Vec<Result<Decided, Error>>,
}

/// Decides each of `intents` on `base`, in order, each on the file as the ones before it
/// left it, and commits the ones that change a file (one commit each, by its principal).
/// Shared by the worker and `keyward git reapply`.
#[allow(clippy::too_many_arguments)]
pub(in crate::keys) fn build(
    repo: &Repo,
    store: &Store,
    prefix: &str,
    base: &str,
    intents: &mut [&mut Intent],
    now: OffsetDateTime,
    applied: Option<&HashMap<String, String>>,
    known: Option<&mut Texts>,
) -> Result<Built, GitError> {
    let mut scratch = Texts::default();
    let known = known.unwrap_or(&mut scratch);
    if known.commit.as_deref() != Some(base) {
        // What another writer changed since is read again; the rest is as it was.
        let changed = known
            .commit
            .as_deref()
            .and_then(|old| repo.changed_paths(old, base, prefix).ok());
        match changed {
            Some(paths) => {
                for path in paths {
                    let rel = if prefix.is_empty() {
                        path.as_str()
                    } else {
                        path.strip_prefix(prefix)
                            .and_then(|r| r.strip_prefix('/'))
                            .unwrap_or(&path)
                    };
                    if let Some(tenant) =
                        rel.split('/').next().and_then(|t| TenantId::parse(t).ok())
                    {
                        known.files.remove(&tenant);
                    }
                }
            }
            None => known.files.clear(),
        }
        known.commit = Some(base.to_owned());
    }
    let texts = &mut known.files;
    let mut outcomes = Vec::with_capacity(intents.len());
    let mut made: Vec<(usize, Author, String, String, String)> = Vec::new();
    for (i, intent) in intents.iter_mut().enumerate() {
        // A write whose Idempotency-Key is in the history already is not applied again.
        if let Some(tag) = &intent.idempotency
            && let Some(body) = applied.and_then(|a| a.get(&tag.scope))
        {
            outcomes.push(Err(if *body == tag.body {
                Error::AppliedElsewhere
            } else {
                Error::IdempotencyKeyReused
            }));
            continue;
        }
        let tenant = intent.tenant.clone();
        if !texts.contains_key(&tenant) {
            let text = tenant_text(repo, prefix, base, &tenant)?;
            texts.insert(tenant.clone(), text);
        }
        let text = match texts.get(&tenant) {
            Some(Ok(t)) => t.clone(),
            Some(Err(why)) => {
                outcomes.push(Err(why.error()));
                continue;
            }
            None => unreachable!("inserted above"),
        };
        let edit = store.edit(&tenant, &text, |file| intent.decide(file, now));
        match edit {
            Ok(edit) => {
                if edit.text != text {
                    let path = file_path(prefix, &tenant);
                    let message = message(intent);
                    made.push((
                        i,
                        Author::of(&intent.actor),
                        message,
                        path,
                        edit.text.clone(),
                    ));
                    texts.insert(tenant, Ok(edit.text));
                }
                outcomes.push(Ok(Decided {
                    commit: None,
                    entry: edit.entry,
                }));
            }
            Err(e) => outcomes.push(Err(e)),
        }
    }
    let time = now.unix_timestamp();
    let commits: Vec<NewCommit<'_>> = made
        .iter()
        .map(|(_, author, message, path, text)| NewCommit {
            author,
            time,
            message,
            path,
            content: text.as_bytes(),
        })
        .collect();
    let ids = repo.commit_all(base, &commits)?;
    let tip = ids.last().cloned().unwrap_or_else(|| base.to_owned());
    for ((i, ..), id) in made.iter().zip(ids) {
        if let Ok(d) = &mut outcomes[*i] {
            d.commit = Some(id);
        }
    }
    // The texts now are those of the tip.
    known.commit = Some(tip.clone());
    Ok(Built { tip, outcomes })
}

/// Tenant files' texts at one commit, as the last batch read or wrote them: a batch on the
/// tip the one before left reads no file from git again, and one on a tip another writer
/// moved reads only the files that writer changed.
#[derive(Default)]
pub(super) struct Texts {
    commit: Option<String>,
    files: HashMap<TenantId, Result<String, Unwritable>>,
}

/// Why a tenant's file in a commit cannot be written.
#[derive(Debug, Clone, Copy)]
pub(super) enum Unwritable {
    NoTenant,
    /// A symlink or a submodule in git.
    NotAFile,
    NotUtf8,
}

impl Unwritable {
    fn error(self) -> Error {
        use crate::store::StoreError;
        match self {
            Self::NoTenant => Error::TenantNotFound,
            Self::NotAFile => StoreError::ReadOnly.into(),
            Self::NotUtf8 => StoreError::Invalid(crate::domain::FileProblem {
                line: None,
                column: None,
                message: "file is not valid UTF-8".into(),
            })
            .into(),
        }
    }
}

/// A tenant's file at `base`: its text (none: empty), or why it cannot be written.
fn tenant_text(
    repo: &Repo,
    prefix: &str,
    base: &str,
    tenant: &TenantId,
) -> Result<Result<String, Unwritable>, GitError> {
    let dir = if prefix.is_empty() {
        tenant.to_string()
    } else {
        format!("{prefix}/{tenant}")
    };
    let files = repo.files(base, &dir)?;
    if files.is_empty() {
        // No tenant, or one below a link: held out of bounds, not absent.
        return Ok(Err(match repo.link_on_path(base, &dir)? {
            Some(_) => Unwritable::NotAFile,
            None => Unwritable::NoTenant,
        }));
    }
    if files.iter().any(|f| f.path == dir) {
        // The tenant's directory is itself a symlink or a submodule.
        return Ok(Err(Unwritable::NotAFile));
    }
    let path = file_path(prefix, tenant);
    let Some(file) = files.iter().find(|f| f.path == path) else {
        return Ok(Ok(String::new()));
    };
    if !matches!(file.mode.as_str(), "100644" | "100755") {
        return Ok(Err(Unwritable::NotAFile));
    }
    let blob = repo.read_blobs(std::slice::from_ref(&file.oid))?;
    let bytes = blob.into_iter().next().flatten().unwrap_or_default();
    Ok(String::from_utf8(bytes).map_err(|_| Unwritable::NotUtf8))
}

/// `<verb> <tenant>/<key>`, then the request id and the scoped idempotency key: never a
/// token, a hash or a JWT.
fn message(intent: &Intent) -> String {
    let mut m = format!(
        "{} {}/{}\n\n",
        intent.verb().as_str(),
        intent.tenant,
        intent.key
    );
    match &intent.request_id {
        Some(id) => m.push_str(&format!("Request-Id: {id}\n")),
        None => m.push_str("Made by keyward.\n"),
    }
    if let Some(tag) = &intent.idempotency {
        m.push_str(&tag.trailer());
        m.push('\n');
    }
    if let Some(old) = &intent.reapplies {
        m.push_str(&format!("{REAPPLIES}{old}\n"));
    }
    m
}

/// The trip out, and what it is for.
pub(super) enum Flight {
    Fetch,
    Sync(Batch),
    /// An async push of the local chain up to `tip`, which holds the first `covered`
    /// journalled writes.
    Async {
        tip: String,
        covered: usize,
    },
    Ask(Batch),
}

/// A batch of `sync` writes whose commits are being pushed.
pub(super) struct Batch {
    pub tip: String,
    pub done: Vec<(Job, Decided)>,
    pub deadline: Instant,
}

impl Engine {
    /// Takes writes as they arrive, answering what needs no network now:
    /// - no remote: committed and answered at once;
    /// - `async`: decided on the local chain, journalled, committed and answered at once,
    ///   except a write with an `Idempotency-Key` (another replica may have applied it) and
    ///   one that found no key or a taken name, which wait for the next fetch;
    /// - `sync`: all wait for the next fetch, then go out in one push.
    pub(super) fn accept(&mut self, jobs: Vec<Job>) {
        match (&self.remote, self.mode) {
            (None, _) => self.take_locally(jobs),
            (Some(_), PushMode::Sync) => {
                self.waiting.extend(jobs);
                self.fetch_wanted = true;
            }
            (Some(_), PushMode::Async) => {
                let (later, now): (Vec<Job>, Vec<Job>) = jobs
                    .into_iter()
                    .partition(|j| j.intent.idempotency.is_some());
                if !later.is_empty() {
                    self.waiting.extend(later);
                    self.fetch_wanted = true;
                }
                self.take_async(now, false);
            }
        }
    }

    /// A fetch has brought the remote tip, and the chain is built on it: `jobs`, the writes
    /// that waited for that fetch, are decided. Writes that came later wait for the next.
    pub(super) fn decide_fetched(&mut self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        match self.mode {
            PushMode::Sync => self.push_sync(jobs),
            PushMode::Async => self.take_async(jobs, true),
        }
    }

    /// Decides `jobs` on `base`; answers the refusals, returns the rest with their outcome.
    /// `redecided`: these writes were decided before, on an older tip.
    fn decide(
        &mut self,
        base: &str,
        jobs: Vec<Job>,
        redecided: bool,
    ) -> Result<Decisions, (Vec<Job>, GitError)> {
        let (tip, kept, refused) = self.decide_all(base, jobs)?;
        for (job, e) in refused {
            if redecided {
                // Not acknowledged yet, decided again on a new head: refused there.
                self.metrics.git_refused_write();
            }
            let _ = job.reply.send(Err(e));
        }
        Ok((tip, kept))
    }

    fn decide_all(
        &mut self,
        base: &str,
        mut jobs: Vec<Job>,
    ) -> Result<Decided3, (Vec<Job>, GitError)> {
        let now = self.now();
        let mut intents: Vec<&mut Intent> = jobs.iter_mut().map(|j| &mut j.intent).collect();
        let built = build(
            &self.repo,
            &self.publisher.store,
            &self.prefix,
            base,
            &mut intents,
            now,
            Some(&self.applied),
            Some(&mut self.texts),
        );
        let built = match built {
            Ok(b) => b,
            Err(e) => return Err((jobs, e)),
        };
        let (mut kept, mut refused) = (Vec::new(), Vec::new());
        for (job, outcome) in jobs.into_iter().zip(built.outcomes) {
            match outcome {
                Ok(d) => kept.push((job, d)),
                Err(e) => refused.push((job, e)),
            }
        }
        Ok((built.tip, kept, refused))
    }

    /// No remote: the commit is the write.
    fn take_locally(&mut self, jobs: Vec<Job>) {
        let Some(base) = self.local_tip.clone() else {
            return fail(jobs, GitFailure::NoBase);
        };
        let (tip, done) = match self.decide(&base, jobs, false) {
            Ok(d) => d,
            Err((jobs, e)) => return self.git_failed(jobs, e),
        };
        if let Err(e) = self.repo.set_ref(LOCAL_REF, Some(&tip)) {
            return self.git_failed(done.into_iter().map(|(j, _)| j).collect(), e);
        }
        self.committed(&tip, done);
    }

    /// The writes are kept (committed, journalled or pushed): remembered by their keys,
    /// served, and acknowledged, whatever serving them costs.
    fn committed(&mut self, tip: &str, done: Vec<(Job, Decided)>) {
        self.local_tip = Some(tip.to_owned());
        for (job, _) in &done {
            if let Some(tag) = &job.intent.idempotency {
                self.applied.insert(tag.scope.clone(), tag.body.clone());
            }
        }
        if let Some(serving) = self.serving()
            && let Err(e) = self.serve(&serving)
        {
            tracing::error!(error = %e, stderr = e.stderr(), "cannot serve the new commit; the next pull will");
        }
        answer(done);
    }

    /// `async`: acknowledged once committed on the local chain and journalled. A write
    /// that finds no key or a taken name waits for a fetch first, unless it has had one
    /// (`fetched`): its answer is then final.
    fn take_async(&mut self, jobs: Vec<Job>, fetched: bool) {
        if jobs.is_empty() {
            return;
        }
        let Some(base) = self.local_tip.clone() else {
            return fail(jobs, GitFailure::NoBase);
        };
        let (tip, done, refused) = match self.decide_all(&base, jobs) {
            Ok(d) => d,
            Err((jobs, e)) => return self.git_failed(jobs, e),
        };
        for (job, e) in refused {
            if !fetched && matches!(e, Error::KeyNotFound | Error::KeyExists) {
                // Maybe another replica's write this one has not fetched yet.
                self.waiting.push(job);
                self.fetch_wanted = true;
            } else {
                let _ = job.reply.send(Err(e));
            }
        }
        let before = self.journal.entries().to_vec();
        let mut entries = before.clone();
        for (job, d) in &done {
            if let Some(c) = &d.commit {
                entries.push(Journalled {
                    intent: job.intent.clone(),
                    commits: vec![c.clone()],
                });
            }
        }
        if let Err(e) = self.journal.replace(entries) {
            tracing::error!(error = %e, "cannot journal a write in state_dir; it is not acknowledged");
            // Answered as failed, so never replayed or pushed either.
            let _ = self.journal.replace(before);
            return fail(
                done.into_iter().map(|(j, _)| j).collect(),
                GitFailure::Journal(Arc::new(e)),
            );
        }
        if let Err(e) = self.repo.set_ref(LOCAL_REF, Some(&tip)) {
            // Not kept after all: the journal goes back to what it was.
            let _ = self.journal.replace(before);
            return self.git_failed(done.into_iter().map(|(j, _)| j).collect(), e);
        }
        self.committed(&tip, done);
        self.push_soon(Instant::now());
    }

    /// Async writes that waited for a fetch that failed: decided on what is known.
    pub(super) fn take_waiting_async(&mut self, jobs: Vec<Job>) {
        self.take_async(jobs, true);
    }

    /// `sync`: decides `jobs` on the remote tip just fetched (or just pushed) and sends
    /// one push for all of them. Jobs carry how often they were decided (`rounds`).
    fn push_sync(&mut self, jobs: Vec<Job>) {
        let (redecided, first): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.rounds > 0);
        let deadline = redecided
            .iter()
            .chain(&first)
            .map(|j| j.deadline)
            .min()
            .unwrap_or_else(Instant::now);
        let Some(base) = self.remote_tip.clone() else {
            return fail(
                redecided.into_iter().chain(first).collect(),
                GitFailure::NoRemoteBranch,
            );
        };
        let mut done = Vec::new();
        for (jobs, redecided) in [(redecided, true), (first, false)] {
            if jobs.is_empty() {
                continue;
            }
            // Decided one group after the other, each on the tip the one before left.
            let on = done
                .last()
                .map_or(base.clone(), |(tip, _): &(String, _)| tip.clone());
            match self.decide(&on, jobs, redecided) {
                Ok((tip, kept)) => done.push((tip, kept)),
                Err((mut jobs, e)) => {
                    // Every write of the batch is answered, the ones decided already too.
                    jobs.extend(done.into_iter().flat_map(|(_, d)| d).map(|(j, _)| j));
                    return self.git_failed(jobs, e);
                }
            }
        }
        let Some(tip) = done.last().map(|(tip, _)| tip.clone()) else {
            return;
        };
        let done: Vec<(Job, Decided)> = done.into_iter().flat_map(|(_, d)| d).collect();
        if tip == base {
            // Nothing changed a file (an update to the values it had).
            return answer(done);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        // A third of what is left stays for asking the remote, should the push hang.
        let trip = Trip::Push {
            tip: tip.clone(),
            limit: left * 2 / 3,
        };
        self.fly(
            Flight::Sync(Batch {
                tip,
                done,
                deadline,
            }),
            trip,
        );
    }

    /// What became of a `sync` batch's push.
    pub(super) fn sync_pushed(&mut self, batch: Batch, result: Result<(), RemoteError>) {
        match result {
            Ok(()) => {
                self.metrics.git_push("ok");
                self.push_took = self.round_started.elapsed().min(Duration::from_secs(1));
                self.pushed(&batch.tip, batch.done);
                self.next_after_push();
            }
            Err(RemoteError::NotFastForward) => {
                self.metrics.git_push("behind");
                let jobs: Vec<Job> = batch.done.into_iter().map(|(j, _)| j).collect();
                if Instant::now() >= batch.deadline {
                    return unreachable_now(jobs, &RemoteError::NotFastForward);
                }
                // Another replica won this round: tried again on its tip at once; the winner
                // is the one that waits (`next_after_push`).
                let rounds = jobs.iter().map(|j| j.rounds).max().unwrap_or(0) + 1;
                let mut jobs = jobs;
                for j in &mut jobs {
                    j.rounds = rounds;
                }
                jobs.append(&mut self.waiting);
                self.waiting = jobs;
                self.contended_until = Some(Instant::now() + CONTENDED_FOR);
                self.fetch_wanted = true;
                self.fetch_after = None;
            }
            Err(RemoteError::Unknown) => {
                self.metrics.git_push("unknown");
                let left = batch.deadline.saturating_duration_since(Instant::now());
                self.fly(Flight::Ask(batch), Trip::Ask { limit: left });
            }
            Err(e) => {
                self.metrics.git_push(if e == RemoteError::Refused {
                    "refused"
                } else {
                    "unreachable"
                });
                self.push_failed(batch.done.iter().map(|(j, _)| &j.intent.tenant), &e);
                unreachable_now(batch.done.into_iter().map(|(j, _)| j).collect(), &e);
            }
        }
    }

    /// The push landed: the remote tip is `tip`, served, and every write acknowledged.
    fn pushed(&mut self, tip: &str, done: Vec<(Job, Decided)>) {
        if let Err(e) = self.repo.set_ref(REMOTE_REF, Some(tip)) {
            tracing::warn!(error = %e, "cannot record the pushed commit in refs/keyward/remote");
        }
        self.remote_tip = Some(tip.to_owned());
        self.local_base = Some(tip.to_owned());
        self.push_landed(done.iter().map(|(j, _)| &j.intent.tenant));
        self.committed(tip, done);
        // The remote's tip is known this moment: the doubts waiting for one are settled.
        for (doubt, reply) in std::mem::take(&mut self.settling) {
            let _ = reply.send(self.settle(&doubt));
        }
    }

    /// After a push: what waits goes out next, after a fetch like every other replica's
    /// batch. While other writers' commits were seen in the last 30 s, the replica that just
    /// won first pauses a random while of one to two and a half times its last round (fetch,
    /// decide, push):
    /// a replica that lost must fetch and decide again before it can push, and would lose
    /// every round to one that went straight on.
    fn next_after_push(&mut self) {
        // The pause holds for writes already waiting and for the ones about to come (the
        // clients just answered send their next at once).
        self.fetch_wanted |= !self.waiting.is_empty();
        if self.contended_until.is_some_and(|t| Instant::now() < t) {
            // At least one round: a replica that lost this one has just begun its own
            // (fetch, decide, push) and lands first. Past two and a half, the pause is only
            // this replica's writes waiting.
            let round = self.push_took.as_millis() as u64;
            let pause = rand::random_range(round..=round * 5 / 2);
            self.fetch_after = Some(Instant::now() + Duration::from_millis(pause));
        }
    }

    /// A push that did not finish in time, and what the remote said its tip is now.
    pub(super) fn asked(&mut self, batch: Batch, theirs: Option<String>) {
        let tip = batch.tip.clone();
        let landed = theirs.is_some_and(|theirs| {
            theirs == tip
                || (self.repo.rev(&theirs).is_some() && self.repo.is_ancestor(&tip, &theirs))
        });
        if landed {
            self.pushed(&tip, batch.done);
            return self.next_after_push();
        }
        self.push_failed(
            batch.done.iter().map(|(j, _)| &j.intent.tenant),
            &RemoteError::Unknown,
        );
        let base = self.remote_tip.clone();
        for (job, d) in batch.done {
            self.metrics.git_outcome_unknown();
            tracing::warn!(tenant = %job.intent.tenant, key = %job.intent.key,
                action = job.intent.verb().as_str(),
                "a push did not finish in time; the write may still land");
            let unsettled = Unsettled {
                doubt: crate::keys::idempotency::Doubt {
                    commits: d.commit.into_iter().collect(),
                    base: base.clone(),
                    since: Instant::now(),
                },
                issued: None,
                key: d.entry.map(|e| crate::keys::KeyState {
                    entry: std::sync::Arc::new(e),
                    last_used: None,
                }),
            };
            let _ = job
                .reply
                .send(Err(Error::OutcomeUnknown(Box::new(unsettled))));
        }
        self.next_after_push();
    }

    /// git itself failed (not the remote): nothing was acknowledged.
    fn git_failed(&self, jobs: Vec<Job>, e: GitError) {
        tracing::error!(error = %e, stderr = e.stderr(), "git failed during a write");
        fail(jobs, GitFailure::Write(Arc::new(e)))
    }
}

fn answer(done: Vec<(Job, Decided)>) {
    for (job, d) in done {
        let _ = job.reply.send(Ok(Applied { entry: d.entry }));
    }
}

fn fail(jobs: Vec<Job>, why: GitFailure) {
    for job in jobs {
        let _ = job.reply.send(Err(why.clone().into()));
    }
}

/// Nothing of these writes reached the remote: 503, and nothing is kept.
pub(super) fn unreachable_now(jobs: Vec<Job>, why: &RemoteError) {
    for job in jobs {
        tracing::warn!(tenant = %job.intent.tenant, key = %job.intent.key,
            action = job.intent.verb().as_str(), reason = %why,
            "the remote did not take a write; nothing was written");
        let _ = job.reply.send(Err(Error::RemoteUnavailable(why.clone())));
    }
}
