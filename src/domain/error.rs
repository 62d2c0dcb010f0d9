//! Why a value was refused: a kind that code matches on, and a message safe to show to the
//! caller. Apart from the value types because every one of them refuses with it.
//!
//! serde hands a refusal on as text only (`de::Error::custom`), so a value refused while a
//! file is deserialized would reach the loader without its kind. `DomainError::watch` keeps
//! the kind of the refusal that stopped a deserialization, for the loader to match on.

use std::cell::Cell;

/// What kind of value was refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainErrorKind {
    BadTenantId,
    BadKeyName,
    BadHash,
    BadPermission,
    DuplicatePermission,
    TooManyPermissions,
    BadDescription,
    /// `createdBy`: who created a key.
    BadSubject,
    BadTokenPrefix,
    /// `hint`: a token's public hint.
    BadHint,
    /// A presented key that cannot be one of keyward's tokens.
    MalformedKey,
}

/// Why a value was refused; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    kind: DomainErrorKind,
    message: String,
}

thread_local! {
    /// `Some` while `DomainError::watch` runs on this thread, holding the kind of the last
    /// refusal made since it started.
    static WATCHED: Cell<Option<Option<DomainErrorKind>>> = const { Cell::new(None) };
}

impl DomainError {
    pub(crate) fn new(kind: DomainErrorKind, message: impl Into<String>) -> Self {
        WATCHED.with(|watched| {
            if watched.get().is_some() {
                watched.set(Some(Some(kind)));
            }
        });
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> DomainErrorKind {
        self.kind
    }

    /// Runs `f` (a deserialization) and tells the kind of the last refusal made on this
    /// thread while it ran: serde stops at a refusal, so that is the one its error is about.
    pub fn watch<T>(f: impl FnOnce() -> T) -> (T, Option<DomainErrorKind>) {
        let outer = WATCHED.replace(Some(None));
        let value = f();
        let refused = WATCHED.replace(outer).flatten();
        (value, refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{KeyEntry, KeyName};

    #[test]
    fn a_refusal_inside_a_deserialization_is_known_by_its_kind() {
        let (result, refused) = DomainError::watch(|| {
            serde_yaml::from_str::<KeyEntry>("name: a b\nhash: x\n").map(|_| ())
        });

        assert!(result.is_err());
        assert_eq!(refused, Some(DomainErrorKind::BadKeyName));
    }

    #[test]
    fn only_refusals_made_while_watching_are_told() {
        let _before = KeyName::parse("a b");
        let (_, refused) = DomainError::watch(|| KeyName::parse("ok"));
        assert_eq!(refused, None);
    }
}
