//! Which tenants there are: the directories of the tenants directory, and the symlink
//! boundaries that decide whether a linked directory is a tenant at all. Apart from reading
//! and writing because every path the store touches is first judged here.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::Store;
use crate::domain::TenantId;

/// The tenants found in the tenants directory.
#[derive(Debug, Default)]
pub struct TenantListing {
    pub tenants: Vec<TenantId>,
    /// Directories whose names are not tenant ids.
    pub invalid_names: Vec<String>,
    /// Symlinked directories that lead outside the tenants directory or to another
    /// tenant's directory: never tenants.
    pub refused_links: Vec<TenantId>,
}

/// What a tenant's directory is.
pub(super) enum TenantDir {
    Missing,
    Plain,
    /// A symlink within a hidden directory of the tenants directory: served, read-only.
    Linked,
    /// A symlink across a boundary: not a tenant.
    Refused,
}

/// Is `real` (canonical) inside a hidden directory (`..data`) of `base` (canonical)?
fn inside_hidden_dir(base: &Path, real: &Path) -> bool {
    let Ok(rest) = real.strip_prefix(base) else {
        return false;
    };
    let mut parts = rest.components();
    let first = parts.next();
    let hidden = matches!(first, Some(std::path::Component::Normal(n)) if n.to_string_lossy().starts_with('.'));
    hidden && parts.next().is_some()
}

impl Store {
    pub fn tenant_dir(&self, tenant: &TenantId) -> PathBuf {
        self.dir.join(tenant.as_str())
    }

    pub fn tenant_exists(&self, tenant: &TenantId) -> bool {
        matches!(self.resolve(tenant), TenantDir::Plain | TenantDir::Linked)
    }

    /// What a tenant's directory is, its boundaries checked (README, "The file: security.yml").
    pub(super) fn resolve(&self, tenant: &TenantId) -> TenantDir {
        let Ok(meta) = fs::symlink_metadata(self.tenant_dir(tenant)) else {
            return TenantDir::Missing;
        };
        if meta.is_dir() {
            return TenantDir::Plain;
        }
        if !meta.file_type().is_symlink() {
            return TenantDir::Missing;
        }
        let known = self.links.lock().get(tenant).copied();
        // A link that appeared since the last listing is judged with all the others.
        let served = known.or_else(|| {
            let _ = self.list_tenants();
            self.links.lock().get(tenant).copied()
        });
        match served {
            Some(true) => TenantDir::Linked,
            Some(false) => TenantDir::Refused,
            None => TenantDir::Missing,
        }
    }

    /// Every tenant directory under the tenants directory. Hidden entries (the kubelet's
    /// `..data`, `..2026_x`) are skipped without a word; names that are not tenant ids and
    /// symlinks that cross a boundary are returned apart so the caller can warn once.
    ///
    /// A symlinked directory is a tenant only when its real path is inside a hidden
    /// directory of the tenants directory (the layout of a projected volume, `acme ->
    /// ..data/acme`) and no other tenant resolves to it: one tenant never aliases another,
    /// and nothing outside the tenants directory is ever read or written.
    pub fn list_tenants(&self) -> io::Result<TenantListing> {
        let base = fs::canonicalize(&self.dir)?;
        let mut listing = TenantListing::default();
        let mut linked: HashMap<PathBuf, Vec<TenantId>> = HashMap::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let kind = entry.file_type()?;
            let real = if kind.is_symlink() {
                match fs::canonicalize(entry.path()) {
                    Ok(real) if real.is_dir() => Some(real),
                    _ => continue,
                }
            } else if kind.is_dir() {
                None
            } else {
                continue;
            };
            let Ok(tenant) = TenantId::parse(&name) else {
                listing.invalid_names.push(name);
                continue;
            };
            match real {
                None => listing.tenants.push(tenant),
                Some(real) if inside_hidden_dir(&base, &real) => {
                    linked.entry(real).or_default().push(tenant);
                }
                Some(_) => listing.refused_links.push(tenant),
            }
        }
        for (_, tenants) in linked {
            if let [one] = tenants.as_slice() {
                listing.tenants.push(one.clone());
            } else {
                listing.refused_links.extend(tenants);
            }
        }
        let mut links = self.links.lock();
        links.clear();
        for t in &listing.tenants {
            if fs::symlink_metadata(self.tenant_dir(t)).is_ok_and(|m| m.file_type().is_symlink()) {
                links.insert(t.clone(), true);
            }
        }
        for t in &listing.refused_links {
            links.insert(t.clone(), false);
        }
        listing.tenants.sort();
        listing.refused_links.sort();
        Ok(listing)
    }
}
