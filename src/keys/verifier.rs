//! The hot path: is this key valid for this tenant, and may it do this?

use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::{KeyHash, PresentedKey, Refusal, TokenPrefix, Verdict};
use crate::index::{Index, Verified};
use crate::metrics::Metrics;
use crate::rate_limit::Decision;

/// The hot path: is this key valid for this tenant, and may it do this? A format check,
/// one lookup in the index, no I/O and no lock.
#[derive(Clone)]
pub struct Verifier {
    index: Arc<Index>,
    prefix: TokenPrefix,
    clock: Clock,
    metrics: Arc<Metrics>,
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
        }
    }

    /// Checks a presented key, spends one verification of its rate limit when it has one
    /// and passes every other check, counts the outcome in metrics, and hands it to
    /// `answer`, which writes the reply from the index as it is. A token a rotation left in
    /// its grace period verifies too: the answer says so, and when it stops. The limit's
    /// decision comes along for a limited key, refused or not (`Refusal::RateLimited`).
    pub fn check<S: AsRef<str>, R>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
        answer: impl FnOnce(Result<Verified<'_>, Refusal>, Option<Decision>) -> R,
    ) -> R {
        let timer = self.metrics.verify_timer();
        self.find_and_spend(tenant, presented, required, |verdict, limit| {
            self.metrics
                .verify_outcome(verdict.as_ref().err().copied(), timer);
            answer(verdict, limit)
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

    fn find_and_spend<S: AsRef<str>, R>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
        then: impl FnOnce(Result<Verified<'_>, Refusal>, Option<Decision>) -> R,
    ) -> R {
        let Ok(key) = PresentedKey::parse(presented, &self.prefix) else {
            return then(Err(Refusal::Malformed), None);
        };
        let now = self.clock.now();
        self.index.with_keys(tenant, |keys| match keys {
            Some(keys) => {
                let (verdict, limit) = keys.check_and_spend(key.hash(), required, now);
                then(verdict, limit)
            }
            None => then(Err(Refusal::NotFound), None),
        })
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
        let Ok(key) = PresentedKey::parse(presented, &self.prefix) else {
            return then(Err(Refusal::Malformed));
        };
        let now = self.clock.now();
        self.index.with_keys(tenant, |keys| match keys {
            Some(keys) => then(keys.check(key.hash(), required, now)),
            None => then(Err(Refusal::NotFound)),
        })
    }
}
