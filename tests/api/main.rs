//! Integration tests: the real server on port 0, real files in a temp dir, real JWTs.

mod admin_keys;
mod auth;
mod bad_input;
mod cli;
mod concurrency;
mod console;
mod crash;
mod fuzz_regressions;
mod git;
mod git_truth;
mod git_world;
mod hardening;
mod helpers;
mod jwks_url;
mod jwt;
mod lifecycle;
mod lists;
mod nginx;
mod openapi;
mod ops;
mod props;
mod reload;
mod security_git;
mod store;
mod verify;
mod warm_start;
