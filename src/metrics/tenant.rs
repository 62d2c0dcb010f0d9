//! Each tenant's file health as gauges, for alerts that must hold while the condition
//! lasts (a counter of reload errors stops rising once the broken file is left alone):
//! whether its file on disk is invalid, and whether it is served from its last-good copy.
//!
//! Both follow the reload outcomes; a removed tenant's series are dropped, so a tenant that
//! is gone does not stay on a dashboard as broken or healthy.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::domain::TenantId;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TenantLabels {
    pub(super) tenant: String,
}

impl TenantLabels {
    pub(super) fn of(tenant: &TenantId) -> Self {
        Self {
            tenant: tenant.to_string(),
        }
    }
}

pub(super) struct TenantFiles {
    invalid: Family<TenantLabels, Gauge>,
    last_good: Family<TenantLabels, Gauge>,
}

impl TenantFiles {
    /// Registers both families in `registry`.
    pub(super) fn register(registry: &mut Registry) -> Self {
        let files = Self {
            invalid: Family::default(),
            last_good: Family::default(),
        };
        registry.register(
            "keyward_tenant_file_invalid",
            "1 while the tenant's file is invalid, whatever the tenant is served meanwhile",
            files.invalid.clone(),
        );
        registry.register(
            "keyward_tenant_serving_last_good",
            "1 while the tenant is served from the last-good copy kept in state_dir",
            files.last_good.clone(),
        );
        files
    }

    /// Follows one reload outcome (`loaded`, `unchanged`, `invalid` or `removed`).
    pub(super) fn reloaded(&self, tenant: &TenantId, outcome: &str) {
        let labels = TenantLabels::of(tenant);
        match outcome {
            "invalid" => {
                self.invalid.get_or_create(&labels).set(1);
            }
            // What is served is the file itself now.
            "loaded" => {
                self.invalid.get_or_create(&labels).set(0);
                self.last_good.get_or_create(&labels).set(0);
            }
            "removed" => {
                self.invalid.remove(&labels);
                self.last_good.remove(&labels);
            }
            // `unchanged` is the content loaded last, valid or not: the state stays. The
            // series are made (at 0) if this is the first word of the tenant.
            _ => {
                let _ = self.invalid.get_or_create(&labels);
                let _ = self.last_good.get_or_create(&labels);
            }
        }
    }

    /// Whether the tenant, its file invalid, is served from its last-good copy.
    pub(super) fn serving_last_good(&self, tenant: &TenantId, last_good: bool) {
        self.last_good
            .get_or_create(&TenantLabels::of(tenant))
            .set(i64::from(last_good));
    }
}
