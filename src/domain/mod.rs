//! Validated values: once one exists it is valid, so handlers never re-check.

mod entry;
mod error;
mod field_error;
mod key_hash;
mod key_name;
mod permission;
mod security_file;
mod tenant_id;
mod token;
mod verdict;

pub use entry::{Description, KeyEntry, PreviousHash, Subject};
pub use error::{DomainError, DomainErrorKind};
pub use field_error::{FieldError, FieldErrors};
pub use key_hash::KeyHash;
pub use key_name::KeyName;
pub use permission::{Permission, Permissions};
pub use security_file::{FileProblem, SecurityFile};
pub use tenant_id::TenantId;
pub use token::{PresentedKey, Token, TokenHint, TokenPrefix};
pub use verdict::{Refusal, Verdict};

/// Orders the versions of one tenant's keys: the store takes one under the tenant's lock
/// for each version it loads or writes, and the index never goes back to an older one.
pub type Generation = u64;
