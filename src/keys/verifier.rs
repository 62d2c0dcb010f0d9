//! The hot path: is this key valid for this tenant, and may it do this?

use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::{KeyHash, PresentedKey, Refusal, TokenPrefix, Verdict};
use crate::index::{Index, Verified};
use crate::metrics::Metrics;

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

    /// Checks a presented key and counts the outcome in metrics. A token a rotation left
    /// in its grace period verifies too: the answer says so, and when it stops.
    pub fn check<S: AsRef<str>>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
    ) -> Result<Verified, Refusal> {
        let verdict = self.find(tenant, presented, required);
        self.metrics.verify_outcome(verdict.as_ref().err().copied());
        verdict
    }

    /// The hash a well-formed presented key is looked up by.
    pub fn hash_of(&self, presented: &str) -> Option<KeyHash> {
        PresentedKey::parse(presented, &self.prefix)
            .ok()
            .map(|k| *k.hash())
    }

    /// Checks a presented key that would act as its key on the admin API, without counting
    /// it. Only the key's current token may: a token rotated out verifies until its grace
    /// ends, but whoever still holds it must never rotate, delete or hand out keys (a
    /// rotation away from a leaked token would otherwise change nothing).
    pub fn lookup<S: AsRef<str>>(&self, tenant: &str, presented: &str, required: &[S]) -> Verdict {
        match self.find(tenant, presented, required) {
            Ok(v) if v.is_grace() => Verdict::Invalid(Refusal::NotFound),
            Ok(v) => Verdict::Valid(v.entry),
            Err(r) => Verdict::Invalid(r),
        }
    }

    fn find<S: AsRef<str>>(
        &self,
        tenant: &str,
        presented: &str,
        required: &[S],
    ) -> Result<Verified, Refusal> {
        let Ok(key) = PresentedKey::parse(presented, &self.prefix) else {
            return Err(Refusal::Malformed);
        };
        let now = self.clock.now();
        self.index.with_keys(tenant, |keys| match keys {
            Some(keys) => keys.check(key.hash(), required, now),
            None => Err(Refusal::NotFound),
        })
    }
}
