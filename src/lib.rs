//! keyward: a file-backed, per-tenant API key server.
//!
//! Two flows, top to bottom: an admin write goes `routes` -> `auth` -> `keys` (the service)
//! -> `store` -> `index`; a file change goes `watcher` -> `keys` -> `store` -> `index`.
//! Verification reads the `index` and nothing else. `startup` wires the parts together.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod git;
pub mod index;
pub mod keys;
pub mod last_good;
pub mod lint;
pub mod metrics;
pub mod rate_limit;
pub mod routes;
pub mod server;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod usage;
pub mod watcher;
