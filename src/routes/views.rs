//! What responses show of a key: never its hash, and a token only once, on purpose.

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::KeyEntry;
use crate::keys::{Holding, Issued, KeyState};
use crate::store::render;

/// A key as the admin API shows it. It has no field that could hold a hash or token.
///
/// Every field is always sent (an absent optional one as `null`), so every field is
/// `required` in the document and clients need not guess between missing and `null`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub name: String,
    /// The current token's public hint, `<prefix>_...<last 4 characters>` (those are
    /// checksum characters, not secret ones), to tell keys apart; `null` for keys written
    /// without one (by hand, or before hints existed).
    #[schema(required = true, example = "kw_...0eOu")]
    pub hint: Option<String>,
    pub enabled: bool,
    pub permissions: Vec<String>,
    #[schema(required = true)]
    pub description: Option<String>,
    #[schema(required = true, format = DateTime)]
    pub created_at: Option<String>,
    /// The `sub` of whoever created it, or `apikey:<name>` for a key.
    #[schema(required = true)]
    pub created_by: Option<String>,
    /// When the key's token was last rotated (RFC 3339); `null` if it never was.
    #[schema(required = true, format = DateTime)]
    pub rotated_at: Option<String>,
    /// After it the key is invalid (RFC 3339).
    #[schema(required = true, format = DateTime)]
    pub expires_at: Option<String>,
    /// The last successful verification, to the second (kept across restarts).
    #[schema(required = true, format = DateTime)]
    pub last_used_at: Option<String>,
    /// Earlier tokens of this key that rotations left working for a grace period, soonest
    /// end first; `[]` when none is. `DELETE .../graceTokens` ends them all.
    pub grace_tokens: Vec<GraceTokenView>,
}

/// A token a rotation replaced, still working until `expiresAt`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraceTokenView {
    /// When it stops working (RFC 3339).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

impl GraceTokenView {
    pub fn new(expires_at: OffsetDateTime) -> Self {
        Self {
            expires_at: render::timestamp(expires_at),
        }
    }
}

impl ApiKeyView {
    /// The key as it is at `now` (which grace periods are still running).
    pub fn new(e: &KeyEntry, last_used: Option<OffsetDateTime>, now: OffsetDateTime) -> Self {
        let mut grace: Vec<OffsetDateTime> = e
            .previous_hashes
            .iter()
            .map(|p| p.expires_at)
            .filter(|end| *end > now)
            .collect();
        grace.sort();
        Self {
            name: e.name.to_string(),
            hint: e.hint.as_ref().map(|h| h.as_str().to_owned()),
            enabled: e.enabled,
            permissions: e.permissions.iter().map(|p| p.to_string()).collect(),
            description: e.description.as_ref().map(|d| d.as_str().to_owned()),
            created_at: e.created_at.map(render::timestamp),
            created_by: e.created_by.as_ref().map(|s| s.as_str().to_owned()),
            rotated_at: e.rotated_at.map(render::timestamp),
            expires_at: e.expires_at.map(render::timestamp),
            last_used_at: last_used.map(render::timestamp),
            grace_tokens: grace.into_iter().map(GraceTokenView::new).collect(),
        }
    }

    pub fn of(k: &KeyState, now: OffsetDateTime) -> Self {
        Self::new(&k.entry, k.last_used, now)
    }
}

/// The create response: the key, plus its token this one time.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyWithToken {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// The plaintext token: shown once, never stored, never returned again.
    pub token: String,
}

impl ApiKeyWithToken {
    pub fn new(issued: &Issued, now: OffsetDateTime) -> Self {
        Self {
            key: ApiKeyView::of(&issued.key, now),
            token: issued.token.expose().to_owned(),
        }
    }
}

/// The rotate response: the key and its new token, and the grace tokens this rotation
/// ended (all of them with a grace of 0; the oldest when the key already had the most a
/// key may keep).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyWithToken,
    pub ended_grace_tokens: Vec<GraceTokenView>,
}

impl RotatedApiKey {
    pub fn new(issued: &Issued, now: OffsetDateTime) -> Self {
        Self {
            key: ApiKeyWithToken::new(issued, now),
            ended_grace_tokens: issued
                .ended_grace
                .iter()
                .map(|end| GraceTokenView::new(*end))
                .collect(),
        }
    }
}

/// A retried create or rotation that another replica applied first (git mode): the key as
/// it is now. Its token was shown only in that replica's answer, so `token` is `null` and
/// `code` says why.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApiKeyIssuedElsewhere {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// Always `null`: keyward keeps no token, and this replica never had it.
    #[schema(schema_with = null_schema)]
    pub token: (),
    pub code: IssuedElsewhere,
}

/// Why an answer to a write carries no token.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IssuedElsewhere {
    /// Another replica applied this write and showed its token.
    TokenIssuedElsewhere,
}

impl ApiKeyIssuedElsewhere {
    pub fn of(k: &KeyState, now: OffsetDateTime) -> Self {
        Self {
            key: ApiKeyView::of(k, now),
            token: (),
            code: IssuedElsewhere::TokenIssuedElsewhere,
        }
    }
}

/// `null`, as a schema: the one value a field may hold.
fn null_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Null)
        .build()
}

/// What a create answers: the key with its new token, or, for a retry another replica
/// applied first, the key without it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CreatedApiKey {
    Issued(ApiKeyWithToken),
    IssuedElsewhere(ApiKeyIssuedElsewhere),
}

/// What a rotation answers: the key with its new token and the grace tokens it ended, or,
/// for a retry another replica applied first, the key without them.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum RotationAnswer {
    Rotated(RotatedApiKey),
    IssuedElsewhere(ApiKeyIssuedElsewhere),
}

/// Which of a key's tokens a looked-up token is.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenIs {
    /// The key's current token.
    Current,
    /// A token a rotation replaced, still in its grace period.
    Grace,
}

impl From<Holding> for TokenIs {
    fn from(h: Holding) -> Self {
        match h {
            Holding::Current => Self::Current,
            Holding::Grace => Self::Grace,
        }
    }
}

/// The lookup answer: the key that holds a token, and which of its tokens it is. Never the
/// token or its hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyLookup {
    pub key: ApiKeyView,
    pub token_is: TokenIs,
}

impl ApiKeyLookup {
    pub fn new(key: &KeyState, holding: Holding, now: OffsetDateTime) -> Self {
        Self {
            key: ApiKeyView::of(key, now),
            token_is: holding.into(),
        }
    }
}
