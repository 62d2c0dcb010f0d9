//! `lastUsedAt`: when each key last verified.
//!
//! Always kept by this replica (`local`: in the index, flushed to `state_dir`). With
//! `usage.redis_url` set, also shared through one Redis by every replica of a cluster
//! (`syncer` runs the loop, `shared` is the layout in Redis, `link` the connection), so
//! that each shows the latest use any of them saw. Without it, no Redis code runs.

mod link;
mod local;
mod rate_counter;
mod shared;
mod syncer;

use std::sync::Arc;

use time::OffsetDateTime;

pub use link::{BadRedisUrl, Health, LinkState, RedisLink, check_url};
pub use local::{FLUSH_EVERY, flush, flush_logged, flush_periodically, restore};
pub use rate_counter::RedisCounter;
pub use syncer::{SyncTask, Syncer};

/// The setting that turns sharing on.
pub const REDIS_URL_SETTING: &str = "usage.redis_url";

/// Where `lastUsedAt` comes from on this replica.
#[derive(Clone)]
pub enum UsageStore {
    /// This replica's own uses only.
    Local,
    /// Shared through Redis (this replica's own uses while Redis is unreachable), as are
    /// rate limits, by `replicas` replicas.
    Redis { link: Arc<RedisLink>, replicas: u32 },
}

/// What the status answer says about the store.
#[derive(Debug, Clone, Copy)]
pub struct UsageReport {
    pub shared: bool,
    /// Shared only: whether Redis answered the last exchange, and since when that holds.
    pub connected: Option<bool>,
    pub since: Option<OffsetDateTime>,
    /// Shared only: how many replicas share it (each enforces a key's limit divided by
    /// this while Redis is unreachable).
    pub replicas: Option<u32>,
    pub rate_limits: RateLimitMode,
}

/// How this replica enforces rate limits now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitMode {
    /// No Redis: each replica enforces every key's whole limit.
    Local,
    /// Held across the replicas through Redis.
    Shared,
    /// Redis is unreachable: this replica enforces each limit divided by the replicas.
    PerReplica,
}

impl UsageStore {
    pub fn report(&self) -> UsageReport {
        match self {
            Self::Local => UsageReport {
                shared: false,
                connected: None,
                since: None,
                replicas: None,
                rate_limits: RateLimitMode::Local,
            },
            Self::Redis { link, replicas } => {
                let health = link.health();
                UsageReport {
                    shared: true,
                    connected: Some(health.state == LinkState::Up),
                    since: Some(health.since),
                    replicas: Some(*replicas),
                    rate_limits: if link.is_down() {
                        RateLimitMode::PerReplica
                    } else {
                        RateLimitMode::Shared
                    },
                }
            }
        }
    }
}
