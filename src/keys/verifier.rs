//! The hot path: is this key valid for this tenant, and may it do this?

use std::sync::Arc;
use std::time::Instant;

use crate::clock::Clock;
use crate::domain::{KeyHash, PresentedKey, Refusal, TokenPrefix, Verdict};
use crate::index::{Index, Verified};
use crate::metrics::Metrics;
use crate::rate_limit::{Decision, Ledger, REFILL_WAIT};

/// The hot path: is this key valid for this tenant, and may it do this? One lookup in the
/// index (and a format check when it finds nothing), no I/O and no lock. (A limited key
/// whose share of a cluster's allowance ran out waits for the next, at most `REFILL_WAIT`.)
#[derive(Clone)]
pub struct Verifier {
    index: Arc<Index>,
    prefix: TokenPrefix,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// Rate limits shared across replicas: what a verification waiting for a lease
    /// listens to.
    ledger: Option<Arc<Ledger>>,
}

impl Verifier {
    pub fn new(
        index: Arc<Index>,
        prefix: TokenPrefix,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            index,
            prefix,
            clock,
            metrics,
            ledger: None,
        }
    }

    /// Rate limits are held across replicas through `ledger` (when there is one).
    pub fn with_ledger(self, ledger: Option<Arc<Ledger>>) -> Self {
        Self { ledger, ..self }
    }

    /// Checks a presented key, spends one verification of its rate limit when it has one
    /// and passes every other check, counts the outcome in metrics, and hands it to
    /// `answer`, which writes the reply from the index as it is. A token a rotation left in
    /// its grace period verifies too: the answer says so, and when it stops. The limit's
    /// decision comes along for a limited key, refused or not (`Refusal::RateLimited`).
    ///
    /// Answers at once, except for a limited key whose lease of a cluster's allowance is
    /// empty: then it waits for the refill, at most `REFILL_WAIT`, after which the key's
    /// limiter decides alone.
    pub async fn check<S: AsRef<str>, R>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
        answer: impl FnOnce(Result<Verified<'_>, Refusal>, Option<Decision>) -> R,
    ) -> R {
        let timer = self.metrics.verify_timer();
        // Nearly every verification ends here, without waiting: no `await` runs on it.
        match self.attempt(tenant, presented, required, timer, true, answer) {
            Attempt::Answered(answered) => answered,
            // Boxed: its timer and watch would otherwise make every verification's future,
            // and so every handler's, several hundred bytes larger, all of it moved on each
            // request.
            Attempt::Refilling(answer) => {
                Box::pin(self.after_refill(tenant, presented, required, timer, answer)).await
            }
        }
    }

    /// `check` for a limited key whose lease was empty: asks again as refills end, until
    /// one answers or `REFILL_WAIT` has passed, when the key's limiter decides alone.
    async fn after_refill<S: AsRef<str>, R, F>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
        timer: Option<Instant>,
        mut answer: F,
    ) -> R
    where
        F: FnOnce(Result<Verified<'_>, Refusal>, Option<Decision>) -> R,
    {
        let until = Instant::now() + REFILL_WAIT;
        loop {
            // Listening before asking: a refill that ends in between still wakes the wait.
            let refills = self.ledger.as_ref().map(|l| l.refills());
            let may_wait = Instant::now() < until;
            answer = match self.attempt(tenant, presented, required, timer, may_wait, answer) {
                Attempt::Answered(answered) => return answered,
                Attempt::Refilling(answer) => answer,
            };
            if let Some(mut refills) = refills {
                let until = tokio::time::Instant::from_std(until);
                let _ = tokio::time::timeout_at(until, refills.changed()).await;
            }
        }
    }

    /// One look at the key: answered and counted, or, when the key's lease is refilling
    /// and `may_wait`, `answer` handed back to wait with.
    fn attempt<S: AsRef<str>, R, F>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
        timer: Option<Instant>,
        may_wait: bool,
        answer: F,
    ) -> Attempt<R, F>
    where
        F: FnOnce(Result<Verified<'_>, Refusal>, Option<Decision>) -> R,
    {
        self.look(tenant, presented, required, true, |verdict, limit| {
            if may_wait && limit.is_some_and(|d| d.refilling) {
                return Attempt::Refilling(answer);
            }
            self.metrics
                .verify_outcome(verdict.as_ref().err().copied(), timer);
            Attempt::Answered(answer(verdict, limit))
        })
    }

    /// `check`, for a key calling the admin API about itself (`/apiKeys/current`):
    /// counted as a verification, but its rate limit is never spent or looked at.
    pub fn check_unlimited<S: AsRef<str>, R>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
        answer: impl FnOnce(Result<Verified<'_>, Refusal>) -> R,
    ) -> R {
        let timer = self.metrics.verify_timer();
        self.find(tenant, presented, required, |verdict| {
            self.metrics
                .verify_outcome(verdict.as_ref().err().copied(), timer);
            answer(verdict)
        })
    }

    /// Looks the presented key up in `tenant`'s keys and hands `then` the verdict, with the
    /// limit's decision when `spend` spends one verification of the key's rate limit.
    fn look<S: AsRef<str>, R>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
        spend: bool,
        then: impl FnOnce(Result<Verified<'_>, Refusal>, Option<Decision>) -> R,
    ) -> R {
        let Ok(key) = PresentedKey::hashed(presented) else {
            return then(Err(Refusal::Malformed), None);
        };
        let now = self.clock.now();
        self.index.with_keys(tenant, |keys| {
            let (verdict, limit) = match keys {
                Some(keys) if spend => keys.check_and_spend(key.hash(), required, now),
                Some(keys) => (keys.check(key.hash(), required, now), None),
                None => (Err(Refusal::NotFound), None),
            };
            then(verdict.map_err(|r| self.told_apart(r, presented)), limit)
        })
    }

    /// A key nothing holds is `malformed` when it cannot be a key at all (a typo, a probe).
    /// Told apart after the lookup, so that a valid key never pays for the checksum.
    fn told_apart(&self, refusal: Refusal, presented: &str) -> Refusal {
        if refusal == Refusal::NotFound && !PresentedKey::could_be_a_key(presented, &self.prefix) {
            Refusal::Malformed
        } else {
            refusal
        }
    }

    /// The hash a well-formed presented key is looked up by.
    pub fn hash_of(&self, presented: &str) -> Option<KeyHash> {
        PresentedKey::parse(presented, &self.prefix)
            .ok()
            .map(|k| *k.hash())
    }

    /// Checks a presented key that would act as its key on the admin API, without counting
    /// it or spending its rate limit. Only the key's current token may: a token rotated out verifies until its grace
    /// ends, but whoever still holds it must never rotate, delete or hand out keys (a
    /// rotation away from a leaked token would otherwise change nothing).
    pub fn lookup<S: AsRef<str>>(&self, tenant: &str, presented: &str, required: &[S]) -> Verdict {
        self.find(tenant, presented, required, |verdict| match verdict {
            Ok(v) if v.is_grace() => Verdict::Invalid(Refusal::NotFound),
            Ok(v) => Verdict::Valid(v.entry.clone()),
            Err(r) => Verdict::Invalid(r),
        })
    }

    fn find<S: AsRef<str>, R>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
        then: impl FnOnce(Result<Verified<'_>, Refusal>) -> R,
    ) -> R {
        self.look(tenant, presented, required, false, |verdict, _| {
            then(verdict)
        })
    }
}

/// What one look at a key came to: its answer, or the answer still to give once the key's
/// lease is refilled.
enum Attempt<R, F> {
    Answered(R),
    Refilling(F),
}
