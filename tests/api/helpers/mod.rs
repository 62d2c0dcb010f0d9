//! What every integration test shares: `use crate::helpers::*;` brings all of it.
//!
//! Three harnesses, one per file, because each stands a keyward up differently: `app` runs
//! it in this process on a random port (most tests), `process` runs the built binary as a
//! real process (signals, logs, crashes), `git` drives real git, `redis` runs a real Redis
//! for replicas that share `lastUsedAt`. Here: the test JWTs every harness signs with, and
//! the poll that waits for what happens in the background.

mod app;
mod git;
mod process;
mod redis;

pub use app::*;
pub use git::*;
pub use process::*;
pub use redis::*;

use std::future::Future;
use std::time::{Duration, Instant};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub const SECRET: &str = "test-secret-that-is-at-least-32-bytes-long!";
pub const READ: &str = "tenant.apiKey:read";
pub const WRITE: &str = "tenant.apiKey:write";

/// Asks `probe` again and again until `done` accepts its answer, which it returns; panics
/// with the last answer after `within`. For what happens in the background (file events,
/// start-up): the deadline is generous because latency is not what these tests measure.
pub async fn eventually<T: std::fmt::Debug, F: Future<Output = T>>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        let answer = probe().await;
        if done(&answer) {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "never {what} within {within:?}; last: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// An HS256 JWT signed with the test secret.
pub fn jwt(claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A valid admin token for `tenant` with the given space-delimited scopes.
pub fn token(tenant: &str, scope: &str) -> String {
    jwt(
        json!({"sub": "alice@example.com", "exp": now() + 600, "scope": scope, "tenant_id": tenant}),
    )
}

pub fn writer(tenant: &str) -> String {
    token(tenant, WRITE)
}
