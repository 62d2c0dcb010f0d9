//! What responses show of a key: never its hash, and a token only once, on purpose.

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::KeyEntry;
use crate::index::IndexedKey;
use crate::keys::{Issued, KeyState};
use crate::store::render;

/// A key as the admin API shows it. It has no field that could hold a hash or token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub name: String,
    pub enabled: bool,
    pub permissions: Vec<String>,
    pub description: Option<String>,
    pub created_at: Option<String>,
    pub created_by: Option<String>,
    pub expires_at: Option<String>,
    /// The last successful verification, to the second (kept across restarts).
    pub last_used_at: Option<String>,
}

impl ApiKeyView {
    pub fn new(e: &KeyEntry, last_used: Option<OffsetDateTime>) -> Self {
        Self {
            name: e.name.to_string(),
            enabled: e.enabled,
            permissions: e.permissions.iter().map(|p| p.to_string()).collect(),
            description: e.description.as_ref().map(|d| d.as_str().to_owned()),
            created_at: e.created_at.map(render::timestamp),
            created_by: e.created_by.as_ref().map(|s| s.as_str().to_owned()),
            expires_at: e.expires_at.map(render::timestamp),
            last_used_at: last_used.map(render::timestamp),
        }
    }
}

impl From<&IndexedKey> for ApiKeyView {
    fn from(k: &IndexedKey) -> Self {
        Self::new(&k.entry, k.last_used())
    }
}

impl From<&KeyState> for ApiKeyView {
    fn from(k: &KeyState) -> Self {
        Self::new(&k.entry, k.last_used)
    }
}

/// The create and rotate responses: the key, plus its token this one time.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyWithToken {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The plaintext token: shown once, never stored, never returned again.
    pub token: String,
}

impl From<&Issued> for ApiKeyWithToken {
    fn from(issued: &Issued) -> Self {
        Self {
            key: ApiKeyView::from(&issued.key),
            token: issued.token.expose().to_owned(),
        }
    }
}
