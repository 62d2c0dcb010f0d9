use std::sync::Arc;

use super::KeyEntry;

/// The answer to "is this key valid here, and may it do this?".
#[derive(Debug, Clone)]
pub enum Verdict {
    Valid(Arc<KeyEntry>),
    Invalid(Refusal),
}

/// Why a presented key was refused; `code()` is what the verify API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    NotFound,
    Disabled,
    Expired,
    InsufficientPermissions,
    Malformed,
    /// A valid key over its rate limit.
    RateLimited,
}

impl Refusal {
    /// Every refusal, in declaration order: `ALL[r.index()] == r`.
    pub const ALL: [Refusal; 6] = [
        Self::NotFound,
        Self::Disabled,
        Self::Expired,
        Self::InsufficientPermissions,
        Self::Malformed,
        Self::RateLimited,
    ];

    /// Its position in `ALL`, for tables indexed by refusal on the hot path.
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::InsufficientPermissions => "insufficient_permissions",
            Self::Malformed => "malformed",
            Self::RateLimited => "rate_limited",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_at_its_index_in_all() {
        for (i, r) in Refusal::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
    }
}
