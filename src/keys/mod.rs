//! The keys application service: the one place the admin write flow and the reload flow
//! run. It takes validated commands, runs the blocking store work off the async workers,
//! and publishes what the store returns to the index. Verification reads the index
//! directly (`Verifier`): no I/O, no lock.
//!
//! `service.rs` declares `Service`; each flow has its own file (`reads.rs`, `writes.rs`,
//! `reload.rs`), and `error.rs` holds the one vocabulary of what can go wrong.

mod command;
mod error;
mod etag;
pub mod idempotency;
pub mod intent;
mod listing;
mod publish;
mod reads;
mod reload;
pub mod replication;
mod service;
mod verifier;
mod writes;

/// Which of a key's tokens a looked-up token is.
pub use crate::index::Holding;
pub use command::{Actor, CreateKey, IfMatch, KeyChanges, KeyLimits, Patch, Rotation, Target};
pub use error::{Error, GitFailure, OUTCOME_UNKNOWN, Unsettled};
pub use etag::etag;
pub use intent::Verb;
pub use listing::{KeyFilter, KeyOrder, ListPosition, Search, SortField};
pub use reads::{KeyState, KeysFrom, Page, TenantStatus};
pub use replication::{GitStatus, History, HistoryCursor, HistoryEntry, Replicator, Report};
pub use service::Service;
pub use verifier::Verifier;
pub use writes::Issued;
