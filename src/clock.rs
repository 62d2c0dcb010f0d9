//! What time it is, asked in one place so tests can move time instead of sleeping.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

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
            None => system_now(),
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

/// The system's time. Every verification asks for it: the calendar date of the second is
/// worked out once per second and thread, and only the fraction of it set each time.
fn system_now() -> OffsetDateTime {
    thread_local! {
        static SECOND: Cell<(u64, OffsetDateTime)> =
            const { Cell::new((0, OffsetDateTime::UNIX_EPOCH)) };
    }
    let Ok(since_epoch) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else {
        return OffsetDateTime::now_utc();
    };
    let (seconds, nanos) = (since_epoch.as_secs(), since_epoch.subsec_nanos());
    SECOND.with(|second| {
        let (cached, at) = second.get();
        let start = if cached == seconds {
            at
        } else {
            let at = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(seconds);
            second.set((seconds, at));
            at
        };
        start.replace_nanosecond(nanos).unwrap_or(start)
    })
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("Clock::system"),
            Some(_) => write!(f, "Clock::manual({})", self.now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_the_time_to_the_nanosecond_across_seconds() {
        for _ in 0..3 {
            let before = OffsetDateTime::now_utc();
            let now = Clock::system().now();
            let after = OffsetDateTime::now_utc();
            assert!(before <= now && now <= after, "{before} {now} {after}");
            std::thread::sleep(Duration::from_millis(600));
        }
    }
}
