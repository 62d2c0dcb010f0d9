//! Why the keys service refused or failed a request: one enum for every flow, apart from
//! the flows so that each message is found, and written, in one place. Each error names
//! its wire `code()`; the HTTP layer maps codes to statuses in one table and adds nothing
//! to these words.

use std::sync::Arc;

use super::idempotency;
use super::reads::KeyState;
use super::replication::JournalError;
use super::writes::Issued;
use crate::domain::{FieldError, FileProblem};
use crate::git::{GitError, RemoteError};
use crate::store::StoreError;
use crate::store::yaml_edit::EditError;

/// A write answered `outcome_unknown`: where to look for it, and what it would answer.
#[derive(Debug)]
pub struct Unsettled {
    pub doubt: idempotency::Doubt,
    /// A create's or rotation's key and token, as they would be answered.
    pub issued: Option<Issued>,
    /// An update's key, as it would be answered.
    pub key: Option<KeyState>,
}

/// Why the service refused or failed a request. The texts are the `detail` clients read,
/// except for the internal ones (`code() == "internal"`), which only the log sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the request is not valid")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("tenant not found")]
    TenantNotFound,
    #[error("API key not found")]
    KeyNotFound,
    /// No key of the tenant holds a looked-up token (current or in its grace period).
    #[error("no API key of this tenant holds this token")]
    TokenNotHeld,
    #[error("an API key with this name already exists")]
    KeyExists,
    #[error("the tenant already has {0} keys, the most this server allows; delete one first")]
    KeyLimit(usize),
    #[error("the key changed since the ETag given in If-Match")]
    PreconditionFailed,
    #[error("security.yml kept changing on disk during the write; try again")]
    TenantBusy,
    #[error("the tenant's security.yml is invalid; fix the file first: {0}")]
    TenantFileInvalid(FileProblem),
    #[error("keyward cannot edit this security.yml surgically ({0}); edit it by hand")]
    TenantFileUnsupported(EditError),
    #[error("this tenant's keys are read-only here")]
    TenantReadOnly,
    /// Nothing of the write reached the remote, and nothing of it is kept.
    #[error("the git remote did not take the write, and nothing of it was kept: {0}")]
    RemoteUnavailable(RemoteError),
    /// The push did not finish in time and the remote could not say whether it landed.
    #[error("{OUTCOME_UNKNOWN}")]
    OutcomeUnknown(Box<Unsettled>),
    /// A write with this `Idempotency-Key` is already in the history (made by another
    /// replica, which holds its answer).
    #[error("a request with this Idempotency-Key was applied already")]
    AppliedElsewhere,
    #[error("a request with this Idempotency-Key is still running")]
    IdempotencyKeyInUse,
    #[error("this Idempotency-Key was used with another request: send a new key for a new request")]
    IdempotencyKeyReused,
    /// As many requests of one kind (history) as the server takes at once are running.
    #[error("too many requests of this kind are running; retry shortly")]
    Busy,
    #[error("this server is not in git mode")]
    NotGitMode,
    /// The store failed for a reason that is not the request's (i/o, a surgical edit that
    /// would not mean its change).
    #[error("the tenant's files could not be read or written")]
    Store(#[source] StoreError),
    #[error("git mode failed")]
    Git(#[source] GitFailure),
    #[error("a blocking task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// The detail of a write whose outcome is unknown; `ApiError` answers it too, for a retry
/// that finds the outcome still unknown.
pub const OUTCOME_UNKNOWN: &str = "the git remote did not answer in time: the write may or may not have landed; retry with the same Idempotency-Key to learn which";

impl Error {
    /// The stable wire code (`code` and the `type` URN of the problem+json answer).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::Forbidden(_) => "insufficient_scope",
            Self::TenantNotFound => "tenant_not_found",
            Self::KeyNotFound => "key_not_found",
            Self::TokenNotHeld => "not_found",
            Self::KeyExists => "key_exists",
            Self::KeyLimit(_) => "key_limit_reached",
            Self::PreconditionFailed => "precondition_failed",
            Self::TenantBusy => "tenant_busy",
            Self::TenantFileInvalid(_) => "tenant_file_invalid",
            Self::TenantFileUnsupported(_) => "tenant_file_unsupported",
            Self::TenantReadOnly => "tenant_read_only",
            Self::RemoteUnavailable(_) => "remote_unavailable",
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::AppliedElsewhere | Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
            Self::Busy => "too_many_requests",
            Self::NotGitMode => "not_found",
            Self::Store(_) | Self::Git(_) | Self::Task(_) => "internal",
        }
    }

    /// The field errors of a validation failure.
    pub fn field_errors(&self) -> Option<&[FieldError]> {
        match self {
            Self::Validation(errors) if !errors.is_empty() => Some(errors),
            _ => None,
        }
    }
}

/// What the store refused is the request's to fix; anything else is internal.
impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TenantNotFound => Self::TenantNotFound,
            StoreError::Invalid(problem) => Self::TenantFileInvalid(problem),
            StoreError::ReadOnly => Self::TenantReadOnly,
            StoreError::Busy => Self::TenantBusy,
            StoreError::Edit(e) => Self::TenantFileUnsupported(e),
            other => Self::Store(other),
        }
    }
}

/// Git mode's own machinery failed (not the remote's answer): nothing was acknowledged.
/// Cloned to every write of a batch, so the causes are shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GitFailure {
    #[error("the git worker stopped")]
    WorkerStopped,
    #[error("no commit is served yet")]
    NothingServed,
    #[error("no commit to write on")]
    NoBase,
    #[error("the remote branch does not exist")]
    NoRemoteBranch,
    #[error("the history cannot be read")]
    History(#[source] Arc<GitError>),
    #[error("git failed during a write")]
    Write(#[source] Arc<GitError>),
    #[error("the journal cannot be written")]
    Journal(#[source] Arc<JournalError>),
}

impl From<GitFailure> for Error {
    fn from(e: GitFailure) -> Self {
        Self::Git(e)
    }
}
