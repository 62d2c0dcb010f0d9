//! What time it is, asked in one place so tests can move time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// The system clock, or (in tests) a clock that only moves when told to.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The real time.
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock standing at `start` until `advance` moves it (to the second).
    pub fn manual(start: OffsetDateTime) -> Self {
        Self(Some(Arc::new(AtomicI64::new(start.unix_timestamp()))))
    }

    pub fn now(&self) -> OffsetDateTime {
        match &self.0 {
            None => OffsetDateTime::now_utc(),
            Some(t) => OffsetDateTime::from_unix_timestamp(t.load(Ordering::Relaxed))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }

    /// Now, to the second: what keyward writes into files (`createdAt`, grace ends).
    pub fn now_seconds(&self) -> OffsetDateTime {
        let now = self.now();
        now.replace_nanosecond(0).unwrap_or(now)
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.0 {
            t.fetch_add(by.as_secs() as i64, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("Clock::system"),
            Some(_) => write!(f, "Clock::manual({})", self.now()),
        }
    }
}
