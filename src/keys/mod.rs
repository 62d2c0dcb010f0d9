//! The keys application service: the one place the admin write flow and the reload flow
//! run. It takes validated commands, runs the blocking store work off the async workers,
//! and publishes what the store returns to the index. Verification reads the index
//! directly (`Verifier`): no I/O, no lock.

mod command;
mod etag;
mod publish;
mod replicate;
mod service;
mod verifier;

pub use command::{
    Actor, CreateKey, IfMatch, KeyChanges, KeyFilter, KeyLimits, Patch, Rotation, Target,
};
pub use etag::etag;
pub use replicate::{Dropped, GitStatus, History, HistoryEntry, Replicator, Verb};
pub use service::{Issued, KeyState, KeysFrom, Page, Service, TenantStatus};
pub use verifier::Verifier;

use crate::domain::FieldError;
use crate::store::StoreError;

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
    #[error("the git remote did not take the write: {0}")]
    RemoteUnavailable(String),
    #[error("git failed: {0}")]
    Git(String),
    #[error("this server is not in git mode")]
    NotGitMode,
    #[error("a blocking task failed")]
    Task(#[source] tokio::task::JoinError),
}
