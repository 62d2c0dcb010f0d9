use std::sync::Arc;

use crate::clock::Clock;
use crate::domain::{KeyHash, PresentedKey, Refusal, TokenPrefix, Verdict};
use crate::index::Index;
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

    /// Checks a presented key and counts the outcome in metrics.
    pub fn check<S: AsRef<str>>(&self, tenant: &str, presented: &str, required: &[S]) -> Verdict {
        let verdict = self.lookup(tenant, presented, required);
        self.metrics.verify_outcome(match &verdict {
            Verdict::Valid(_) => None,
            Verdict::Invalid(r) => Some(*r),
        });
        verdict
    }

    /// The hash a well-formed presented key is looked up by.
    pub fn hash_of(&self, presented: &str) -> Option<KeyHash> {
        PresentedKey::parse(presented, &self.prefix)
            .ok()
            .map(|k| *k.hash())
    }

    /// Checks a presented key without counting it (an API key acting as an admin).
    pub fn lookup<S: AsRef<str>>(&self, tenant: &str, presented: &str, required: &[S]) -> Verdict {
        let Ok(key) = PresentedKey::parse(presented, &self.prefix) else {
            return Verdict::Invalid(Refusal::Malformed);
        };
        let now = self.clock.now();
        self.index.with_keys(tenant, |keys| match keys {
            Some(keys) => keys.verify(key.hash(), required, now),
            None => Verdict::Invalid(Refusal::NotFound),
        })
    }
}
