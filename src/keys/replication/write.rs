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
//!
//! Here the writes are taken and answered; [`super::decide`] decides a batch on a base and
//! commits it, and [`super::push`] pushes a `sync` batch and answers from what became of it.

use std::sync::Arc;
use std::time::Instant;

use super::decide::Decided;
use super::journal::Journalled;
use super::{Applied, Engine, Job};
use crate::config::PushMode;
use crate::git::{GitError, LOCAL_REF};
use crate::keys::intent::Intent;
use crate::keys::{Error, GitFailure};

// The write path's parts, by the paths the rest of replication takes them from.
pub(super) use super::decide::{REAPPLIES, Texts, build};
pub(super) use super::push::{CONTENDED_FOR, Flight, unreachable_now};

/// The commit a batch left, and its writes that were not refused.
type Decisions = (String, Vec<(Job, Decided)>);

/// A batch's writes decided: the commit they left, the kept ones, the refused ones.
type Decided3 = (String, Vec<(Job, Decided)>, Vec<(Job, Error)>);

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
    pub(super) fn decide(
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
    pub(super) fn committed(&mut self, tip: &str, done: Vec<(Job, Decided)>) {
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

    /// git itself failed (not the remote): nothing was acknowledged.
    pub(super) fn git_failed(&self, jobs: Vec<Job>, e: GitError) {
        tracing::error!(error = %e, stderr = e.stderr(), "git failed during a write");
        fail(jobs, GitFailure::Write(Arc::new(e)))
    }
}

pub(super) fn answer(done: Vec<(Job, Decided)>) {
    for (job, d) in done {
        let _ = job.reply.send(Ok(Applied { entry: d.entry }));
    }
}

pub(super) fn fail(jobs: Vec<Job>, why: GitFailure) {
    for job in jobs {
        let _ = job.reply.send(Err(why.clone().into()));
    }
}
