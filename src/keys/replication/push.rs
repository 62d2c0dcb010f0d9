//! A `sync` batch out to the remote: one push of its last commit, then each write answered
//! from what became of it (landed, lost the race to another replica, refused, or not known
//! in time and asked about), and the pause a winner takes while others contend.

use std::time::{Duration, Instant};

use super::courier::Trip;
use super::decide::Decided;
use super::write::{answer, fail};
use super::{Engine, Job};
use crate::git::{REMOTE_REF, RemoteError};
use crate::keys::{Error, GitFailure, Unsettled};

/// How long a replica takes others to be pushing after it last saw one of their commits.
pub(super) const CONTENDED_FOR: Duration = Duration::from_secs(30);

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
    /// `sync`: decides `jobs` on the remote tip just fetched (or just pushed) and sends
    /// one push for all of them. Jobs carry how often they were decided (`rounds`).
    pub(super) fn push_sync(&mut self, jobs: Vec<Job>) {
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
            base,
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
