//! Why the keys service refused or failed a request: one enum for every flow, apart from
//! the flows so that each message is found, and written, in one place.

use super::idempotency;
use super::reads::KeyState;
use super::writes::Issued;
use crate::domain::FieldError;
use crate::store::StoreError;

/// A write answered `outcome_unknown`: where to look for it, and what it would answer.
#[derive(Debug)]
pub struct Unsettled {
    pub doubt: idempotency::Doubt,
    /// A create's or rotation's key and token, as they would be answered.
    pub issued: Option<Issued>,
    /// An update's key, as it would be answered.
    pub key: Option<KeyState>,
}

/// Why the service refused or failed a request.
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
    #[error("an API key with this name already exists")]
    KeyExists,
    #[error("the tenant already has {0} keys, the most this server allows")]
    KeyLimit(usize),
    #[error("the key changed since the ETag given in If-Match")]
    PreconditionFailed,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Nothing of the write reached the remote, and nothing of it is kept.
    #[error("the git remote did not take the write, and nothing of it was kept: {0}")]
    RemoteUnavailable(crate::git::RemoteError),
    /// The push did not finish in time and the remote could not say whether it landed.
    #[error("the git remote did not answer in time: the write may or may not have landed")]
    OutcomeUnknown(Box<Unsettled>),
    /// A write with this `Idempotency-Key` is already in the history (made by another
    /// replica, which holds its answer).
    #[error("a request with this Idempotency-Key was applied already")]
    AppliedElsewhere,
    #[error("this Idempotency-Key was used with another request body")]
    IdempotencyKeyReused,
    /// As many history requests as the server takes at once are running.
    #[error("too many history requests at once")]
    Busy,
    #[error("git failed: {0}")]
    Git(String),
    #[error("this server is not in git mode")]
    NotGitMode,
    #[error("a blocking task failed")]
    Task(#[source] tokio::task::JoinError),
}
