//! Validated values: once one exists it is valid, so handlers never re-check.

mod entry;
mod key_hash;
mod key_name;
mod permission;
mod tenant_id;
mod token;

pub use entry::{Description, KeyEntry, PreviousHash, Subject};
pub use key_hash::KeyHash;
pub use key_name::KeyName;
pub use permission::{Permission, Permissions};
pub use tenant_id::TenantId;
pub use token::{PresentedKey, Token, TokenPrefix};

/// Why a value was refused; the message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DomainError(pub String);

impl DomainError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
