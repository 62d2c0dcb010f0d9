//! What the store last found in each tenant's file: its digest, its problem, whether it is
//! read-only. Kept apart from the reads and writes that record it because the status
//! endpoint and the logs read it on their own.

use time::OffsetDateTime;

use super::Store;
use crate::domain::{FileProblem, TenantId};

/// The health of a tenant's file, as the status endpoint and the logs tell it.
#[derive(Debug, Clone)]
pub struct FileHealth {
    /// SHA-256 of the content last seen (valid or not): unchanged content is not re-parsed.
    pub(super) digest: Option<[u8; 32]>,
    pub problem: Option<FileProblem>,
    /// The file is a symlink (a ConfigMap mount): keyward does not write it.
    pub read_only: bool,
    pub loaded_at: Option<OffsetDateTime>,
    pub checked_at: OffsetDateTime,
}

impl Store {
    /// The health of a tenant's file as last loaded or written; None before the first load.
    pub fn health(&self, tenant: &TenantId) -> Option<FileHealth> {
        self.health.lock().get(tenant).cloned()
    }

    pub(super) fn record_valid(&self, tenant: &TenantId, digest: [u8; 32], read_only: bool) {
        let now = OffsetDateTime::now_utc();
        self.health.lock().insert(
            tenant.clone(),
            FileHealth {
                digest: Some(digest),
                problem: None,
                read_only,
                loaded_at: Some(now),
                checked_at: now,
            },
        );
    }

    pub(super) fn record_invalid(
        &self,
        tenant: &TenantId,
        digest: Option<[u8; 32]>,
        problem: &FileProblem,
    ) {
        let now = OffsetDateTime::now_utc();
        let mut health = self.health.lock();
        let h = health.entry(tenant.clone()).or_insert(FileHealth {
            digest: None,
            problem: None,
            read_only: false,
            loaded_at: None,
            checked_at: now,
        });
        h.digest = digest;
        h.problem = Some(problem.clone());
        h.checked_at = now;
    }
}
