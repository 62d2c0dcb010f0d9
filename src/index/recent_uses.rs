//! The uses a shared `lastUsedAt` store has not been told about yet: which keys moved their
//! last use to a new second, noted by the verification that moved it.
//!
//! Only a use that advances a key's second is noted (at most one per key per second), so
//! the hot path pays a branch on every verification and a short, uncontended lock once per
//! key per second. Keys without uses cost nothing: nothing ever scans the index to find
//! what changed. Each worker thread writes its own stripe, so workers never wait on one
//! another; the syncer takes everything every cycle.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::domain::{KeyEntry, TenantId};

/// More stripes than workers on most machines; threads share one only beyond that.
const STRIPES: usize = 16;

/// One key's last use moving to a new second.
#[derive(Debug, Clone)]
pub struct KeyUse {
    pub tenant: TenantId,
    pub key: Arc<KeyEntry>,
    /// Unix seconds.
    pub at: i64,
}

/// The uses noted since the last `take`.
#[derive(Debug, Default)]
pub struct RecentUses {
    stripes: [Stripe; STRIPES],
}

/// One thread's list, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(Mutex<Vec<KeyUse>>);

impl RecentUses {
    pub(super) fn note(&self, tenant: &TenantId, key: &Arc<KeyEntry>, at: i64) {
        self.stripes[my_stripe()].0.lock().push(KeyUse {
            tenant: tenant.clone(),
            key: key.clone(),
            at,
        });
    }

    /// Everything noted since the last call, leaving the stripes empty.
    pub fn take(&self) -> Vec<KeyUse> {
        let mut all = Vec::new();
        for stripe in &self.stripes {
            all.append(&mut stripe.0.lock());
        }
        all
    }
}

/// This thread's stripe, drawn once per thread in turn so that workers spread out.
fn my_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|i| *i)
}

/// Where a tenant's keys note their uses: set when the keys are published to an index
/// that shares its uses.
#[derive(Debug)]
pub(super) struct UseSink {
    pub(super) tenant: TenantId,
    pub(super) uses: Arc<RecentUses>,
}
