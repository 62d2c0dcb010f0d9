//! A new remote tip. keyward follows it whatever it is, the remote being the truth:
//! - a tip that does not contain the one before is a rewrite of the remote's history (a
//!   force-push): each acknowledged write it removed is reported once, and named apart when
//!   removing it brings a revoked or rotated-out token back to life. Nothing removed is ever
//!   pushed back: keyward's chain is rebuilt from the journal by meaning, never from old
//!   commits;
//! - the journalled writes (acknowledged, not pushed) are decided again by meaning on the
//!   new tip, in order; one that no longer applies is dropped and reported, and the replay
//!   goes on with the next;
//! - a retry of a write answered `outcome_unknown` is settled on it.
//!
//! A replay goes a slice of the journal at a time, and the worker takes new writes between
//! slices: a backlog after an outage never holds a write up for long. Until it is over,
//! the old chain is served and written on; the new chain replaces it once it holds all.

use std::time::Instant;

use time::OffsetDateTime;

use super::Engine;
use super::journal::Journalled;
use super::report::Report;
use super::write::{CONTENDED_FOR, Texts, build};
use crate::config::PushMode;
use crate::domain::{KeyName, SecurityFile, TenantId};
use crate::git::{LOCAL_REF, LoggedCommit, REMOTE_REF, REPLAY_REF, RemoteError};
use crate::keys::idempotency::{Doubt, IdempotencyTag};
use crate::keys::intent::{self, Intent, Verb};
use crate::store::render;

/// How many removed commits one rewrite is searched for keyward's writes.
const REWRITE_SCAN: usize = 1000;
/// How many commits one look for idempotency keys reads.
const IDEMPOTENCY_SCAN: usize = 10_000;
/// How many journalled writes one slice of a replay decides: a slice takes tens of
/// milliseconds, and new writes are taken between slices.
const REPLAY_SLICE: usize = 64;

/// A rebuild of the local chain on a new remote tip, under way.
pub(super) struct Replay {
    /// The remote tip the chain is rebuilt on.
    base: String,
    /// The commit the slices so far left.
    tip: String,
    /// How many journal entries the slices so far looked at.
    next: usize,
    kept: Vec<Journalled>,
    /// Reported once the replay is over: one that restarts on a newer tip decides again.
    dropped: Vec<(Journalled, String)>,
    /// The commits the remote gained since the chain was last built.
    gained: std::collections::HashSet<String>,
    /// The replay's own texts: the worker's follow the old chain meanwhile.
    texts: Texts,
    /// How long the journal was at the last slice.
    seen: usize,
    /// The writes that waited for the fetch that started this replay.
    waiting: Vec<super::Job>,
}

impl Engine {
    /// The commit to serve: the newest one known to hold every acknowledged write.
    pub(super) fn serving(&self) -> Option<String> {
        match (&self.remote, self.mode) {
            (Some(_), PushMode::Sync) => self.remote_tip.clone(),
            _ => self.local_tip.clone(),
        }
    }

    /// A fetch came back: the new tip is followed (rewrites reported, the journal replayed,
    /// the result served), the doubts it settles are answered, and the writes waiting for a
    /// fresh tip are decided on it.
    pub(super) fn fetched(&mut self, result: Result<String, RemoteError>) {
        let new = match result {
            Ok(new) => new,
            Err(e) => {
                tracing::warn!(error = %e, "git fetch failed");
                self.fetch_failed(e.clone());
                for (_, reply) in self.settling.drain(..) {
                    let _ = reply.send(Settled::Unknown);
                }
                // Nothing of the waiting writes reached the remote.
                let waiting = std::mem::take(&mut self.waiting);
                match self.mode {
                    PushMode::Sync => super::write::unreachable_now(waiting, &e),
                    // Decided on what this replica knows, for good.
                    PushMode::Async => self.take_waiting_async(waiting),
                }
                return;
            }
        };
        self.view.lock().last_pull = Some((OffsetDateTime::now_utc(), Instant::now()));
        self.metrics.git_pull_succeeded();
        self.reached_remote();
        if let Some(old) = self.remote_tip.clone()
            && old != new
        {
            // keyward's own pushes move what it knows of the remote: another writer did this.
            self.contended_until = Some(Instant::now() + CONTENDED_FOR);
            if !self.repo.is_ancestor(&old, &new) {
                self.rewritten(&old, &new);
            }
            self.learn_idempotency(&new, &[old.as_str()]);
        }
        if let Err(e) = self.repo.set_ref(REMOTE_REF, Some(&new)) {
            tracing::warn!(error = %e, "cannot record the fetched tip in refs/keyward/remote");
        }
        self.remote_tip = Some(new);
        for (doubt, reply) in std::mem::take(&mut self.settling) {
            let _ = reply.send(self.settle(&doubt));
        }
        // The writes that waited for this fetch are decided once the chain is built on it.
        let waiting = std::mem::take(&mut self.waiting);
        if self.start_replay() {
            self.caught_up(waiting);
        } else if let Some(r) = &mut self.replay {
            r.waiting = waiting;
        }
    }

    /// Rebuilds the local chain on the remote tip, all at once (at start-up, before
    /// anything is served).
    pub(super) fn rebuild_local(&mut self) {
        if !self.start_replay() {
            while !self.replay_slice() {}
        }
    }

    /// Starts rebuilding the local chain on the remote tip: the journalled writes the
    /// remote does not have, decided again by meaning. Returns whether the chain is built
    /// already (nothing to replay, or one slice was enough); otherwise the worker goes on a
    /// slice at a time between the writes it takes. With no remote, the chain is what it is.
    pub(super) fn start_replay(&mut self) -> bool {
        let Some(base) = self.remote_tip.clone() else {
            return true;
        };
        if self.local_base.as_deref() == Some(base.as_str()) {
            self.replay = None;
            return true;
        }
        if self.replay.as_ref().is_some_and(|r| r.base == base) {
            return false;
        }
        if self.journal.is_empty() {
            // Nothing to replay (always so in sync mode): the chain is the tip.
            self.replay = None;
            self.built(base.clone(), base);
            return true;
        }
        // A journalled write reached the remote when one of its commits is among those the
        // remote gained since the chain was last built (a push whose answer was lost).
        let gained = match self.repo.commits_since(&base, self.local_base.as_deref()) {
            Ok(gained) => gained,
            Err(e) => {
                tracing::error!(error = %e, stderr = e.stderr(), "cannot list the remote's new commits");
                self.replay = None;
                return true;
            }
        };
        self.replay = Some(Replay {
            tip: base.clone(),
            base,
            next: 0,
            seen: self.journal.entries().len(),
            waiting: Vec::new(),
            kept: Vec::new(),
            dropped: Vec::new(),
            gained,
            texts: Texts::default(),
        });
        self.replay_slice()
    }

    /// Replays the next slice of the journal on the new tip. Writes taken meanwhile are
    /// journalled on the old chain and replayed in their turn: the new chain replaces the
    /// old one once it holds them all. Returns whether the replay is over.
    pub(super) fn replay_slice(&mut self) -> bool {
        let Some(mut r) = self.replay.take() else {
            return true;
        };
        let entries = self.journal.entries();
        // A slice takes the writes that came since the last one on top of its own share:
        // however fast writes come, the replay gains on them.
        let came = entries.len().saturating_sub(r.seen);
        r.seen = entries.len();
        let end = (r.next + REPLAY_SLICE + came).min(entries.len());
        let (landed, mut waiting): (Vec<Journalled>, Vec<Journalled>) = entries[r.next..end]
            .iter()
            .cloned()
            .partition(|e| e.commits.iter().any(|c| r.gained.contains(c)));
        if !landed.is_empty() {
            tracing::debug!(
                writes = landed.len(),
                "journalled writes found on the remote"
            );
        }
        let now = self.now();
        let mut intents: Vec<&mut Intent> = waiting.iter_mut().map(|e| &mut e.intent).collect();
        let built = build(
            &self.repo,
            &self.publisher.store,
            &self.prefix,
            &r.tip,
            &mut intents,
            now,
            // Its own keys are known already: a replay is the same write, not a retry.
            None,
            Some(&mut r.texts),
        );
        let built = match built {
            Ok(b) => b,
            Err(e) => {
                // Not the writes' fault: they stay journalled, and the replay is tried again
                // after the push's backoff.
                tracing::error!(error = %e, stderr = e.stderr(), "cannot replay the journal on the remote's tip");
                self.retry_push_after_failure();
                self.finished = r.waiting;
                let _ = self.repo.set_ref(REPLAY_REF, None);
                return true;
            }
        };
        for (mut entry, outcome) in waiting.into_iter().zip(built.outcomes) {
            match outcome {
                Ok(d) => {
                    // A write that changes nothing any more is already what the tip says.
                    if let Some(c) = d.commit {
                        entry.commits.push(c);
                        r.kept.push(entry);
                    }
                }
                Err(e) => r.dropped.push((entry, e.to_string())),
            }
        }
        r.tip = built.tip;
        r.next = end;
        if r.next < self.journal.entries().len() {
            // Referenced, so a `git gc` between slices cannot take what the slices made.
            let _ = self.repo.set_ref(REPLAY_REF, Some(&r.tip));
            self.replay = Some(r);
            return false;
        }
        let _ = self.repo.set_ref(REPLAY_REF, None);
        self.finished = r.waiting;
        for (entry, why) in &r.dropped {
            self.dropped(entry, why);
        }
        if let Err(e) = self.journal.replace(r.kept) {
            tracing::error!(error = %e, "cannot rewrite the journal in state_dir");
        }
        self.built(r.tip, r.base);
        true
    }

    /// The local chain is `tip`, built on the remote's `base`.
    fn built(&mut self, tip: String, base: String) {
        if let Err(e) = self.repo.set_ref(LOCAL_REF, Some(&tip)) {
            tracing::warn!(error = %e, "cannot record refs/keyward/local");
        }
        let _ = self.repo.set_ref(REMOTE_REF, Some(&base));
        self.local_tip = Some(tip);
        self.local_base = Some(base);
        self.publish_view();
    }

    /// The chain is built on the remote's tip: it is served, then `waiting`, the writes that
    /// waited for the fetch that brought it, are decided on it.
    pub(super) fn caught_up(&mut self, waiting: Vec<super::Job>) {
        // Served before the waiting writes are answered: an answer that a key exists (or
        // was made elsewhere) is followed by reads that find it.
        if let Some(tip) = self.serving()
            && let Err(e) = self.serve(&tip)
        {
            tracing::error!(error = %e, stderr = e.stderr(), "cannot serve the remote's tip");
        }
        self.decide_fetched(waiting);
    }

    /// An acknowledged write that no longer applies: logged, counted, shown in status.
    fn dropped(&mut self, entry: &Journalled, reason: &str) {
        let i = &entry.intent;
        tracing::warn!(tenant = %i.tenant, key = %i.key, actor = %i.actor,
            action = i.verb().as_str(), request_id = i.request_id.as_deref().unwrap_or(""),
            reason, "an acknowledged write no longer applies on the remote's head and was dropped");
        self.metrics.git_dropped_write();
        let report = Report {
            verb: i.verb(),
            tenant: i.tenant.clone(),
            key_name: i.key.clone(),
            actor: i.actor.clone(),
            request_id: i.request_id.clone(),
            commit: entry.commits.last().cloned(),
            reason: reason.to_owned(),
            revives: false,
            at: render::timestamp(OffsetDateTime::now_utc()),
            intent: None,
        };
        if let Some(r) = self.view.lock().dropped.as_mut() {
            r.add(report);
        }
    }

    /// The remote went from `old` to `new`, which does not contain it: every keyward write
    /// only `old` had is reported.
    fn rewritten(&mut self, old: &str, new: &str) {
        let removed = match self.repo.log(old, &[new], None, Some(REWRITE_SCAN), None) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot list the commits a rewrite of the remote removed");
                return;
            }
        };
        tracing::warn!(
            removed = removed.len(),
            "the remote's history was rewritten: keyward follows its new tip"
        );
        for commit in removed.iter().rev() {
            if let Some(report) = self.report_of(commit, new) {
                tracing::warn!(tenant = %report.tenant, key = %report.key_name,
                    action = report.verb.as_str(), request_id = report.request_id.as_deref().unwrap_or(""),
                    commit = %commit.id, revives = report.revives,
                    "an acknowledged write was removed by a rewrite of the remote's history");
                self.metrics.git_rewritten_write(report.revives);
                if let Some(r) = self.view.lock().rewritten.as_mut() {
                    r.add(report);
                }
            }
        }
    }

    /// The report of a removed commit, if it is one of keyward's writes.
    fn report_of(&self, commit: &LoggedCommit, new: &str) -> Option<Report> {
        let (verb, tenant, key) = ours(commit)?;
        let path = super::file_path(&self.prefix, &tenant);
        let at = |rev: String| format!("{rev}:{path}");
        let blobs = self
            .repo
            .read_blobs(&[
                at(format!("{}^1", commit.id)),
                at(commit.id.clone()),
                at(new.to_owned()),
            ])
            .ok()?;
        let parse = |b: &Option<Vec<u8>>| {
            b.as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|t| SecurityFile::parse(t).ok())
                .unwrap_or_default()
        };
        let (before, after, tip) = (parse(&blobs[0]), parse(&blobs[1]), parse(&blobs[2]));
        let now = self.now();
        let killed: Vec<_> = intent::live_hashes(&before, &key, now)
            .into_iter()
            .filter(|h| !intent::live_hashes(&after, &key, now).contains(h))
            .collect();
        let live_now = intent::live_hashes(&tip, &key, now);
        let revives = killed.iter().any(|h| live_now.contains(h));
        let mut recovered = intent::recover(
            verb,
            tenant.clone(),
            key.clone(),
            commit.author.clone(),
            &before,
            &after,
        );
        if let Some(i) = recovered.as_mut() {
            i.request_id = request_id(&commit.body);
        }
        Some(Report {
            verb,
            tenant,
            key_name: key,
            actor: commit.author.clone(),
            request_id: request_id(&commit.body),
            commit: Some(commit.id.clone()),
            reason: "removed from the remote by a rewrite of its history".into(),
            revives,
            at: render::timestamp(OffsetDateTime::now_utc()),
            intent: recovered,
        })
    }
}

impl Engine {
    /// Remembers the idempotency keys of keyward's commits reachable from `tip` and not
    /// from `known` (at start-up: the last day's), so no replica applies one twice.
    pub(super) fn learn_idempotency(&mut self, tip: &str, known: &[&str]) {
        let since = (known.is_empty()).then_some("24.hours.ago");
        let Ok(commits) = self
            .repo
            .log(tip, known, None, Some(IDEMPOTENCY_SCAN), since)
        else {
            return;
        };
        for c in commits {
            if c.committer != "keyward" {
                continue;
            }
            for line in c.body.lines() {
                if let Some(tag) = IdempotencyTag::from_trailer(line) {
                    self.applied.insert(tag.scope, tag.body);
                }
            }
        }
        if self.applied.len() > 4 * IDEMPOTENCY_SCAN {
            // Bounded: what is forgotten is learned again from the last day's history.
            self.applied.clear();
            self.learn_idempotency(tip, &[]);
        }
    }

    /// Settles a write answered `outcome_unknown`, on a tip just fetched: did it land?
    pub(super) fn settle(&self, doubt: &Doubt) -> Settled {
        let Some(tip) = self.remote_tip.clone() else {
            return Settled::Unknown;
        };
        let landed = doubt
            .commits
            .iter()
            .any(|c| self.repo.rev(c).is_some() && self.repo.is_ancestor(c, &tip));
        let moved_on = doubt.base.as_deref() != Some(tip.as_str());
        if landed {
            Settled::Landed
        } else if moved_on || doubt.since.elapsed() > self.push_timeout {
            // The remote moves a branch only from the tip a push expected: moved past that
            // tip without the write, it can never take it. Still there after another whole
            // push timeout, the push keyward killed has ended on the remote's side too.
            Settled::Lost
        } else {
            Settled::Unknown
        }
    }
}

/// What became of a write answered `outcome_unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its commit is on the remote.
    Landed,
    /// The remote moved on without it: it can never land.
    Lost,
    Unknown,
}

/// A commit keyward made for an API write: committer `keyward`, subject `<verb>
/// <tenant>/<key>`.
pub(super) fn ours(commit: &LoggedCommit) -> Option<(Verb, TenantId, KeyName)> {
    if commit.committer != "keyward" {
        return None;
    }
    let (verb, rest) = commit.subject.split_once(' ')?;
    let (tenant, key) = rest.split_once('/')?;
    Some((
        Verb::parse(verb)?,
        TenantId::parse(tenant).ok()?,
        KeyName::parse(key).ok()?,
    ))
}

/// The `Request-Id:` trailer of a commit's body.
pub(super) fn request_id(body: &str) -> Option<String> {
    body.lines()
        .find_map(|l| l.strip_prefix("Request-Id: "))
        .map(|s| s.trim().to_owned())
}
