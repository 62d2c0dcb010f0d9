//! The rate-limit ledger's counts in Redis (`rate_limit::Ledger`), through the connection
//! `lastUsedAt` shares: one `INCRBY` and `EXPIRE` in a `MULTI` per lease.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::RedisLink;
use crate::metrics::Metrics;
use crate::rate_limit::WindowCounter;

/// An exchange slower than this is a Redis that is down: verification has fallen back to
/// the local limit long before.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(1);

/// The ledger's counts, kept in the Redis behind `link`.
pub struct RedisCounter {
    link: Arc<RedisLink>,
    metrics: Arc<Metrics>,
}

impl RedisCounter {
    pub fn new(link: Arc<RedisLink>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self { link, metrics })
    }
}

impl WindowCounter for RedisCounter {
    fn add(&self, entry: String, n: u32, ttl_seconds: u64) -> BoxFuture<'static, Option<u64>> {
        let link = self.link.clone();
        Box::pin(async move {
            let mut conn = link.connection();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .incr(&entry, n)
                .expire(&entry, ttl_seconds as i64)
                .ignore();
            let exchange = pipe.query_async::<(u64,)>(&mut conn);
            let answer = match tokio::time::timeout(RESERVE_TIMEOUT, exchange).await {
                Ok(answer) => answer,
                Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
            };
            match answer {
                Ok((total,)) => {
                    link.succeeded();
                    Some(total)
                }
                Err(e) => {
                    link.failed(&e);
                    None
                }
            }
        })
    }

    fn is_down(&self) -> bool {
        self.link.is_down()
    }

    fn admitted_alone(&self) {
        self.metrics.rate_limit_admitted_alone();
    }
}
