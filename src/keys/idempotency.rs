//! `Idempotency-Key` (IETF draft "The Idempotency-Key HTTP Header Field", with Stripe's
//! semantics): a retry with the same key and body gets the first answer, token included,
//! and never applies twice.
//!
//! A key is scoped to the principal, the tenant, the method and the path; its scope and the
//! body's digest travel with the write. The first answer of a scope is kept here, in memory
//! only (at most `MAX_KEPT` scopes, for `KEPT_FOR`): it may hold a token, which is never
//! logged, written to a file or committed. In git mode the scope is also a commit trailer,
//! so a retry on another replica finds it in the history and is not applied again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How long a first answer is kept.
pub const KEPT_FOR: Duration = Duration::from_secs(24 * 3600);
/// How many scopes are kept at once; past it the oldest go.
const MAX_KEPT: usize = 10_000;
/// How long a write answered `outcome_unknown` is waited for on the remote before a retry
/// is taken as a new request.
const IN_DOUBT_FOR: Duration = Duration::from_secs(600);

/// A request's idempotency key, scoped, and the digest of its body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyTag {
    /// Hex SHA-256 of the principal, tenant, method, path and key.
    pub scope: String,
    /// Hex SHA-256 of the body.
    pub body: String,
}

impl IdempotencyTag {
    pub fn new(
        principal: &str,
        tenant: &str,
        method: &str,
        path: &str,
        key: &str,
        body: &[u8],
    ) -> Self {
        let mut scope = Sha256::new();
        for part in [principal, tenant, method, path, key] {
            scope.update(part.as_bytes());
            scope.update([0]);
        }
        Self {
            scope: hex(&scope.finalize()),
            body: hex(&Sha256::digest(body)),
        }
    }

    /// The commit trailer that carries it.
    pub fn trailer(&self) -> String {
        format!("Idempotency-Key: {} {}", self.scope, self.body)
    }

    /// A commit trailer read back.
    pub fn from_trailer(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("Idempotency-Key: ")?;
        let (scope, body) = rest.trim().split_once(' ')?;
        Some(Self {
            scope: scope.to_owned(),
            body: body.to_owned(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A first answer as it went out.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a request with a key may do.
pub enum Begin {
    /// No answer for this scope: go on (the scope is now running).
    Fresh,
    /// The first answer, to send again.
    Replay(Answer),
    /// The first request of this scope is still running.
    InUse,
    /// The scope was used with another body.
    Reused,
    /// Its first write's outcome is unknown: it may still land.
    InDoubt { doubt: Doubt, answer: Answer },
}

/// A write whose push did not finish in time: its commits, and the remote tip it was
/// built on. The remote moves its branch only from the tip a push expected, so once the
/// branch moved past that tip without one of these commits, they can never land.
#[derive(Debug, Clone)]
pub struct Doubt {
    pub commits: Vec<String>,
    pub base: Option<String>,
    /// When the push was given up on.
    pub since: Instant,
}

enum State {
    Running,
    Done(Answer),
    InDoubt { doubt: Doubt, answer: Answer },
}

struct Record {
    body: String,
    at: Instant,
    state: State,
}

#[derive(Default)]
pub struct Idempotency {
    records: Mutex<HashMap<String, Record>>,
}

impl Idempotency {
    pub fn begin(&self, tag: &IdempotencyTag) -> Begin {
        let mut records = self.records.lock();
        let expired = |r: &Record| match r.state {
            State::InDoubt { .. } => r.at.elapsed() > IN_DOUBT_FOR,
            _ => r.at.elapsed() > KEPT_FOR,
        };
        if records.get(&tag.scope).is_some_and(expired) {
            records.remove(&tag.scope);
        }
        if let Some(r) = records.get(&tag.scope) {
            if r.body != tag.body {
                return Begin::Reused;
            }
            return match &r.state {
                State::Running => Begin::InUse,
                State::Done(a) => Begin::Replay(a.clone()),
                State::InDoubt { doubt, answer } => Begin::InDoubt {
                    doubt: doubt.clone(),
                    answer: answer.clone(),
                },
            };
        }
        if records.len() >= MAX_KEPT {
            records.retain(|_, r| !expired(r));
            if records.len() >= MAX_KEPT
                && let Some(oldest) = records
                    .iter()
                    .filter(|(_, r)| !matches!(r.state, State::Running))
                    .min_by_key(|(_, r)| r.at)
                    .map(|(k, _)| k.clone())
            {
                records.remove(&oldest);
            }
        }
        records.insert(
            tag.scope.clone(),
            Record {
                body: tag.body.clone(),
                at: Instant::now(),
                state: State::Running,
            },
        );
        Begin::Fresh
    }

    /// The first answer of a scope, kept to be sent again.
    pub fn done(&self, tag: &IdempotencyTag, answer: Answer) {
        self.set(tag, State::Done(answer));
    }

    /// The write's outcome is unknown: its would-be answer is held until it is known.
    pub fn in_doubt(&self, tag: &IdempotencyTag, doubt: Doubt, answer: Answer) {
        self.set(tag, State::InDoubt { doubt, answer });
    }

    /// Nothing is kept: the next request of this scope runs as new.
    pub fn forget(&self, tag: &IdempotencyTag) {
        self.records.lock().remove(&tag.scope);
    }

    fn set(&self, tag: &IdempotencyTag, state: State) {
        let mut records = self.records.lock();
        let at = match &state {
            // A doubt is timed from when it was answered.
            State::InDoubt { .. } => Instant::now(),
            _ => records.get(&tag.scope).map_or_else(Instant::now, |r| r.at),
        };
        records.insert(
            tag.scope.clone(),
            Record {
                body: tag.body.clone(),
                at,
                state,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Answer {
        Answer {
            status: 201,
            headers: Vec::new(),
            body: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_scope_runs_once_then_replays_and_refuses_another_body() {
        let store = Idempotency::default();
        let tag = IdempotencyTag::new("alice", "acme", "POST", "/p", "k1", b"{}");
        assert!(matches!(store.begin(&tag), Begin::Fresh));
        assert!(matches!(store.begin(&tag), Begin::InUse));
        store.done(&tag, answer());
        assert!(matches!(store.begin(&tag), Begin::Replay(a) if a.status == 201));
        let other = IdempotencyTag::new("alice", "acme", "POST", "/p", "k1", b"{\"x\":1}");
        assert!(matches!(store.begin(&other), Begin::Reused));
        let bob = IdempotencyTag::new("bob", "acme", "POST", "/p", "k1", b"{}");
        assert!(
            matches!(store.begin(&bob), Begin::Fresh),
            "scoped to the principal"
        );
    }

    #[test]
    fn a_trailer_reads_back_as_the_tag_it_was() {
        let tag = IdempotencyTag::new("alice", "acme", "POST", "/p", "k1", b"{}");
        assert_eq!(IdempotencyTag::from_trailer(&tag.trailer()), Some(tag));
    }
}
