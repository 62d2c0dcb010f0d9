//! Why a git command, or a trip to the remote, did not do its job.

use std::time::Duration;

/// Why a git command did not do its job. Typed, so a caller keeps it as the `source` of
/// its own error and the log shows the whole chain; git's stderr is kept apart (`stderr`),
/// for the log only.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git is not installed or cannot be run")]
    Missing(#[source] std::io::Error),
    #[error("`git {command}` took longer than {}s and was stopped", .limit.as_secs())]
    Timeout { command: String, limit: Duration },
    /// git's own words stay in the logs: they can name paths, URLs and file content.
    #[error("`git {command}` failed")]
    Failed { command: String, stderr: String },
}

impl GitError {
    /// What git printed, for the log only (never for a client).
    pub fn stderr(&self) -> &str {
        match self {
            Self::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }
}

/// Why a fetch or a push did not do its job. The texts are keyward's, never git's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("the remote has commits keyward does not have")]
    NotFastForward,
    #[error("the remote cannot be reached")]
    Unreachable,
    #[error("the remote refused the push (a protected branch or a hook)")]
    Refused,
    /// A push that failed late or ran out of time: it may still land.
    #[error("the remote did not answer in time")]
    Unknown,
}
