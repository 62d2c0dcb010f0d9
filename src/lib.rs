//! keyward: a file-backed, per-tenant API key server.

pub mod auth;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod usage;
pub mod watcher;
