//! A key's rate limit as `security.yml` holds it: `rateLimit: {requests: 100, perSeconds: 60}`.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DomainError, DomainErrorKind};

/// At most `requests` verifications every `per_seconds` seconds, all of them at once if
/// they come at once (the burst is the whole quota). Valid by construction: both bounds
/// are checked by `new`, and the file and the API only ever reach it through there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawRateLimit", into = "RawRateLimit")]
pub struct RateLimit {
    requests: NonZeroU32,
    per_seconds: NonZeroU32,
}

/// The field names and order of the file and of the API.
#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRateLimit {
    requests: u32,
    per_seconds: u32,
}

impl RateLimit {
    pub const MAX_REQUESTS: u32 = 1_000_000;
    /// A day: a longer window is a quota for billing, not a rate limit.
    pub const MAX_PER_SECONDS: u32 = 86_400;

    pub fn new(requests: u32, per_seconds: u32) -> Result<Self, DomainError> {
        let in_bounds = |v: u32, max: u32| NonZeroU32::new(v).filter(|v| v.get() <= max);
        match (
            in_bounds(requests, Self::MAX_REQUESTS),
            in_bounds(per_seconds, Self::MAX_PER_SECONDS),
        ) {
            (Some(requests), Some(per_seconds)) => Ok(Self {
                requests,
                per_seconds,
            }),
            _ => Err(DomainError::new(
                DomainErrorKind::BadRateLimit,
                format!(
                    "a rate limit is 1 to {} requests per 1 to {} seconds",
                    Self::MAX_REQUESTS,
                    Self::MAX_PER_SECONDS
                ),
            )),
        }
    }

    pub fn requests(&self) -> NonZeroU32 {
        self.requests
    }

    pub fn per_seconds(&self) -> NonZeroU32 {
        self.per_seconds
    }

    /// The window as a duration.
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.per_seconds.get().into())
    }
}

impl TryFrom<RawRateLimit> for RateLimit {
    type Error = DomainError;
    fn try_from(raw: RawRateLimit) -> Result<Self, DomainError> {
        Self::new(raw.requests, raw.per_seconds)
    }
}

impl From<RateLimit> for RawRateLimit {
    fn from(limit: RateLimit) -> Self {
        Self {
            requests: limit.requests.get(),
            per_seconds: limit.per_seconds.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_within_its_bounds_on_both_sides() {
        for (requests, per_seconds) in [(1, 1), (1_000_000, 86_400), (100, 60)] {
            assert!(RateLimit::new(requests, per_seconds).is_ok());
        }
        for (requests, per_seconds) in [(0, 60), (1_000_001, 60), (100, 0), (100, 86_401)] {
            let refused = RateLimit::new(requests, per_seconds).unwrap_err();
            assert_eq!(refused.kind(), DomainErrorKind::BadRateLimit);
        }
    }

    #[test]
    fn unknown_fields_and_out_of_bounds_values_are_refused_when_read() {
        let read = |yaml: &str| serde_yaml::from_str::<RateLimit>(yaml);
        assert_eq!(
            read("{requests: 3, perSeconds: 60}").unwrap(),
            RateLimit::new(3, 60).unwrap()
        );
        for bad in [
            "{requests: 3, perSeconds: 60, burst: 9}",
            "{requests: 0, perSeconds: 60}",
            "{requests: 3}",
            "{requests: -1, perSeconds: 60}",
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
