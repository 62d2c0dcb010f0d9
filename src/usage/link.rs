//! One connection to a Redis that replicas share, and whether it works now.
//!
//! Whatever keeps cluster-wide state in Redis borrows a connection from here and reports
//! how each exchange went; the link turns those reports into one WARN line when Redis is
//! lost and one INFO line when it is back (never one per attempt), and remembers since
//! when, for the status answer. Reconnecting is the redis crate's `ConnectionManager`'s
//! job; the URL (and its password) is never logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

/// A connection attempt longer than this is a Redis that is not there.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Generous: a push of many uses is one pipeline, answered at once.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect attempts per command: the callers retry every cycle themselves, so an attempt
/// that fails is reported at once instead of after a long backoff.
const RETRIES: usize = 1;

/// The URL in a setting is not one the redis crate accepts. Names the setting, never the
/// URL (which may hold a password).
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a Redis URL: expected redis://[user:password@]host[:port][/db], \
     rediss://… (TLS) or unix:///path/to/redis.sock"
)]
pub struct BadRedisUrl(pub &'static str);

/// Checks that `url` is a Redis URL, without connecting.
pub fn check_url(url: &SecretString, setting: &'static str) -> Result<(), BadRedisUrl> {
    redis::Client::open(url.expose_secret())
        .map(drop)
        .map_err(|_| BadRedisUrl(setting))
}

/// Where the link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// No exchange has finished yet.
    Starting,
    Up,
    Down,
}

/// The link's state, and since when it holds.
#[derive(Debug, Clone, Copy)]
pub struct Health {
    pub state: LinkState,
    pub since: OffsetDateTime,
}

/// A shared, self-reconnecting connection to one Redis, and its health.
pub struct RedisLink {
    client: redis::Client,
    /// Replaced when an error leaves the manager unable to recover by itself.
    manager: ArcSwap<ConnectionManager>,
    /// The setting the URL came from, for the log.
    setting: &'static str,
    health: Mutex<Health>,
    /// `health` is `Down`, read without its lock: every verification of a limited key asks.
    down: AtomicBool,
}

impl RedisLink {
    /// A link to the Redis at `url` (from `setting`). Connects lazily: a Redis that is down
    /// now is a link that reports down, not an error. Needs a Tokio runtime.
    pub fn open(url: &SecretString, setting: &'static str) -> Result<Arc<Self>, BadRedisUrl> {
        let client = redis::Client::open(url.expose_secret()).map_err(|_| BadRedisUrl(setting))?;
        let manager = lazy_manager(&client).map_err(|_| BadRedisUrl(setting))?;
        Ok(Arc::new(Self {
            client,
            manager: ArcSwap::from_pointee(manager),
            setting,
            health: Mutex::new(Health {
                state: LinkState::Starting,
                since: OffsetDateTime::now_utc(),
            }),
            down: AtomicBool::new(false),
        }))
    }

    /// A handle on the shared connection (cheap: clones share it).
    pub fn connection(&self) -> ConnectionManager {
        ConnectionManager::clone(&self.manager.load())
    }

    pub fn health(&self) -> Health {
        *self.health.lock()
    }

    /// Whether the last exchange with Redis failed (not before the first one ends).
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// An exchange with Redis succeeded.
    pub fn succeeded(&self) {
        let Some(was) = self.move_to(LinkState::Up) else {
            return;
        };
        match was {
            LinkState::Starting => {
                tracing::info!(setting = self.setting, "connected to Redis")
            }
            _ => tracing::info!(
                setting = self.setting,
                "Redis is reachable again: rate limits are shared by every replica again"
            ),
        }
    }

    /// An exchange with Redis failed with `error`.
    pub fn failed(&self, error: &redis::RedisError) {
        // The manager reconnects by itself after an I/O error only; after any other (a
        // refused password, a server still loading), a fresh one starts over.
        if !error.is_io_error()
            && let Ok(fresh) = lazy_manager(&self.client)
        {
            self.manager.store(Arc::new(fresh));
        }
        if self.move_to(LinkState::Down).is_some() {
            tracing::warn!(
                setting = self.setting,
                error = %error,
                "cannot reach Redis: retrying until it is back; meanwhile each replica \
                 enforces a key's rate limit divided by usage.replicas"
            );
        }
    }

    /// Moves to `state`; the state it left, when that was another.
    fn move_to(&self, state: LinkState) -> Option<LinkState> {
        let mut health = self.health.lock();
        let was = health.state;
        if was == state {
            return None;
        }
        *health = Health {
            state,
            since: OffsetDateTime::now_utc(),
        };
        self.down.store(state == LinkState::Down, Ordering::Relaxed);
        Some(was)
    }
}

fn lazy_manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RETRIES)
        .set_max_delay(CONNECT_TIMEOUT);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_are_accepted_and_anything_else_is_refused_without_echoing_it() {
        for good in [
            "redis://127.0.0.1:6379",
            "redis://:s3cret@cache.internal:6380/2",
            "rediss://user:s3cret@cache.example.com",
            "unix:///run/redis/redis.sock",
        ] {
            assert!(check_url(&good.into(), "usage.redis_url").is_ok(), "{good}");
        }
        for bad in [
            "",
            "localhost:6379",
            "http://s3cret@cache:6379",
            "redis//cache",
        ] {
            let e = check_url(&bad.into(), "usage.redis_url").unwrap_err();
            let message = e.to_string();
            assert!(message.contains("usage.redis_url"), "{message}");
            assert!(bad.is_empty() || !message.contains(bad), "{message}");
        }
    }
}
