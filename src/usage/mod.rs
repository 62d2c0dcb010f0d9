//! `lastUsedAt`: when each key last verified.
//!
//! Always kept by this replica (`local`: in the index, flushed to `state_dir`). With
//! `usage.redis_url` set, also shared through one Redis by every replica of a cluster
//! (`syncer` runs the loop, `shared` is the layout in Redis, `link` the connection), so
//! that each shows the latest use any of them saw. Without it, no Redis code runs.

mod link;
mod local;
mod shared;
mod syncer;

use std::sync::Arc;

use time::OffsetDateTime;

pub use link::{BadRedisUrl, Health, LinkState, RedisLink, check_url};
pub use local::{FLUSH_EVERY, flush, flush_logged, flush_periodically, restore};
pub use syncer::{SyncTask, Syncer};

/// The setting that turns sharing on.
pub const REDIS_URL_SETTING: &str = "usage.redis_url";

/// Where `lastUsedAt` comes from on this replica.
#[derive(Clone)]
pub enum UsageStore {
    /// This replica's own uses only.
    Local,
    /// Shared through Redis (this replica's own uses while Redis is unreachable).
    Redis(Arc<RedisLink>),
}

/// What the status answer says about the store.
#[derive(Debug, Clone, Copy)]
pub struct UsageReport {
    pub shared: bool,
    /// Shared only: whether Redis answered the last exchange, and since when that holds.
    pub connected: Option<bool>,
    pub since: Option<OffsetDateTime>,
}

impl UsageStore {
    pub fn report(&self) -> UsageReport {
        match self {
            Self::Local => UsageReport {
                shared: false,
                connected: None,
                since: None,
            },
            Self::Redis(link) => {
                let health = link.health();
                UsageReport {
                    shared: true,
                    connected: Some(health.state == LinkState::Up),
                    since: Some(health.since),
                }
            }
        }
    }
}
