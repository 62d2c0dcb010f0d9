//! What the admin API accepts: request bodies, path and query parameters, each turned into
//! the keys service's command (`CreateKey`, `KeyChanges`, `Rotation`, `KeyFilter`) or
//! refused with every problem named by its field. Apart from the handlers, which only
//! route, and from `views`, which hold what responses show.

use actix_web::HttpRequest;
use actix_web::http::header::IF_MATCH;
use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use utoipa::openapi::{KnownFormat, SchemaFormat};

use crate::domain::{
    Description, DomainError, FieldError, FieldErrors, KeyName, Permission, Permissions,
    PresentedKey, RateLimit, TokenPrefix,
};
use crate::error::ApiError;
use crate::keys::{
    CreateKey, IfMatch, KeyChanges, KeyFilter, KeyOrder, ListPosition, Patch, Rotation, Search,
    SortField, Target,
};

/// The path of a single key.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// Tenant id
    #[serde(rename = "tenantId")]
    #[param(rename = "tenantId")]
    #[allow(dead_code)]
    tenant_id: String,
    /// Key name
    #[serde(rename = "keyName")]
    #[param(rename = "keyName")]
    pub(super) key_name: String,
}

/// `If-Match` on a change: the ETag of the entry the caller last saw.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatchHeader {
    /// ETag of the entry you last saw
    #[param(rename = "If-Match", value_type = String, required = false)]
    if_match: Option<String>,
}

impl KeyPath {
    /// The key a change is about; a name that could never exist is simply not found.
    pub(super) fn target(&self, req: &HttpRequest) -> Result<Target, ApiError> {
        Ok(Target {
            name: KeyName::parse(&self.key_name).map_err(|_| ApiError::KeyNotFound)?,
            if_match: req
                .headers()
                .get(IF_MATCH)
                .map(|v| IfMatch::parse(v.as_bytes())),
        })
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateApiKey {
    #[schema(value_type = KeyNameText)]
    pub(super) name: String,
    /// Default true.
    enabled: Option<bool>,
    #[schema(value_type = Option<std::collections::BTreeSet<PermissionText>>, max_items = 100)]
    permissions: Option<Vec<String>>,
    #[schema(value_type = Option<DescriptionText>)]
    description: Option<String>,
    /// RFC 3339, in the future.
    #[schema(format = DateTime, example = "2099-01-01T00:00:00Z")]
    expires_at: Option<String>,
    /// Absent or `null`: not limited.
    rate_limit: Option<RateLimitBody>,
}

/// At most `requests` verifications every `perSeconds` seconds, all at once if they come
/// at once; verification answers `rate_limited` beyond.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitBody {
    #[schema(minimum = 1, maximum = 1_000_000, example = 100)]
    #[serde(deserialize_with = "whole_number")]
    requests: u64,
    #[schema(minimum = 1, maximum = 86_400, example = 60)]
    #[serde(deserialize_with = "whole_number")]
    per_seconds: u64,
}

impl RateLimitBody {
    /// A number too large for the type is simply out of bounds, with the same message.
    fn parse(&self) -> Result<RateLimit, DomainError> {
        let narrow = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        RateLimit::new(narrow(self.requests), narrow(self.per_seconds))
    }
}

impl TryFrom<CreateApiKey> for CreateKey {
    type Error = ApiError;

    fn try_from(body: CreateApiKey) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let name = errors.check("name", KeyName::parse(&body.name));
        let permissions = permissions(body.permissions.unwrap_or_default(), &mut errors);
        let description = body
            .description
            .map(|d| errors.check("description", Description::parse(&d)));
        let expires_at = body
            .expires_at
            .map(|t| errors.check("expiresAt", timestamp(&t)));
        let rate_limit = body
            .rate_limit
            .map(|l| errors.check("rateLimit", l.parse()));
        errors
            .finish(|| {
                Some(CreateKey {
                    name: name?,
                    enabled: body.enabled.unwrap_or(true),
                    permissions: permissions?,
                    description: description.map_or(Some(None), |d| d.map(Some))?,
                    expires_at: expires_at.map_or(Some(None), |t| t.map(Some))?,
                    rate_limit: rate_limit.map_or(Some(None), |l| l.map(Some))?,
                })
            })
            .map_err(ApiError::Validation)
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateApiKey {
    enabled: bool,
    /// Absent: unchanged.
    #[schema(value_type = Option<std::collections::BTreeSet<PermissionText>>, max_items = 100)]
    permissions: Option<Vec<String>>,
    /// Absent: unchanged; `null`: cleared.
    #[serde(default)]
    #[schema(value_type = Option<DescriptionText>)]
    description: Patch<String>,
    /// RFC 3339, in the future. Absent: unchanged; `null`: cleared.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, example = "2099-01-01T00:00:00Z")]
    expires_at: Patch<String>,
    /// Absent: unchanged; `null`: removed (the key is no longer limited).
    #[serde(default)]
    #[schema(value_type = Option<RateLimitBody>)]
    rate_limit: Patch<RateLimitBody>,
}

impl TryFrom<UpdateApiKey> for KeyChanges {
    type Error = ApiError;

    fn try_from(body: UpdateApiKey) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::default();
        let permissions = body.permissions.map(|p| permissions(p, &mut errors));
        let description = errors.check(
            "description",
            body.description.try_map(|d| Description::parse(&d)),
        );
        let expires_at = errors.check("expiresAt", body.expires_at.try_map(|t| timestamp(&t)));
        let rate_limit = errors.check("rateLimit", body.rate_limit.try_map(|l| l.parse()));
        errors
            .finish(|| {
                Some(KeyChanges {
                    enabled: body.enabled,
                    permissions: permissions.map_or(Some(None), |p| p.map(Some))?,
                    description: description?,
                    expires_at: expires_at?,
                    rate_limit: rate_limit?,
                })
            })
            .map_err(ApiError::Validation)
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RotateApiKey {
    /// How long the old token keeps working; see `grace_period_schema`.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(schema_with = grace_period_schema)]
    grace_period_seconds: u64,
}

impl TryFrom<Option<RotateApiKey>> for Rotation {
    type Error = ApiError;

    fn try_from(body: Option<RotateApiKey>) -> Result<Self, ApiError> {
        let seconds = body.map_or(0, |b| b.grace_period_seconds);
        let grace = std::time::Duration::from_secs(seconds);
        if grace > Rotation::MAX_GRACE {
            return Err(ApiError::Validation(vec![FieldError::new(
                "gracePeriodSeconds",
                format!("must be between 0 and {}", Rotation::MAX_GRACE.as_secs()),
            )]));
        }
        Ok(Rotation { grace })
    }
}

/// `gracePeriodSeconds` as documented: its bounds are `Rotation`'s own.
fn grace_period_schema() -> utoipa::openapi::Object {
    let max = Rotation::MAX_GRACE.as_secs();
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Integer)
        .format(Some(int_format(KnownFormat::Int64)))
        .description(Some(format!(
            "0 to {max}: how long the old token keeps working. Default 0."
        )))
        .minimum(Some(0))
        .maximum(Some(max))
        .build()
}

/// `limit` as documented: its bounds are `KeyFilter`'s own.
fn page_limit_schema() -> utoipa::openapi::Object {
    let max = KeyFilter::MAX_LIMIT as u64;
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Integer)
        .format(Some(int_format(KnownFormat::Int32)))
        .description(Some(format!(
            "1 to {max} keys per page; absent: every key."
        )))
        .minimum(Some(1))
        .maximum(Some(max))
        .build()
}

fn int_format(format: KnownFormat) -> SchemaFormat {
    SchemaFormat::KnownFormat(format)
}

/// A key name in a request: `KeyName`'s rule, which refuses `.` and `..`.
pub struct KeyNameText;

impl utoipa::PartialSchema for KeyNameText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(KeyName::PATTERN))
            .into()
    }
}

impl utoipa::ToSchema for KeyNameText {}

/// A permission in a request body: 1 to 256 printable ASCII characters, no whitespace.
pub struct PermissionText;

impl utoipa::PartialSchema for PermissionText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(r"^[!-~]{1,256}$"))
            .into()
    }
}

impl utoipa::ToSchema for PermissionText {}

/// A description: at most 1024 characters, no control characters but tab and newline.
pub struct DescriptionText;

impl utoipa::PartialSchema for DescriptionText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .max_length(Some(Description::MAX_CHARS))
            .pattern(Some(
                r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F\u202A-\u202E\u2066-\u2069\uFEFF\uFFFE\uFFFF]*$",
            ))
            .into()
    }
}

impl utoipa::ToSchema for DescriptionText {}

/// A non-negative whole number, also when written `30.0` (JSON Schema counts that as an
/// integer too).
fn whole_number<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(n) = n.as_u64() {
        return Ok(n);
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(f as u64),
        _ => Err(serde::de::Error::custom(format!(
            "expected a whole number, not {n}"
        ))),
    }
}

/// Each permission checked, then the list as a whole.
fn permissions(raw: Vec<String>, errors: &mut FieldErrors) -> Option<Permissions> {
    let list: Vec<Option<Permission>> = raw
        .iter()
        .enumerate()
        .map(|(i, p)| errors.check(format!("permissions[{i}]"), Permission::parse(p)))
        .collect();
    let list: Vec<Permission> = list.into_iter().collect::<Option<_>>()?;
    errors.check("permissions", Permissions::new(list))
}

fn timestamp(raw: &str) -> Result<OffsetDateTime, &'static str> {
    OffsetDateTime::parse(raw, &Rfc3339)
        .map(|t| t.to_offset(time::UtcOffset::UTC))
        .map_err(|_| "must be an RFC 3339 date-time, e.g. 2027-01-01T00:00:00Z")
}

/// The header of a list's answer that says how many keys its filters let through, on all its
/// pages together.
pub const TOTAL_COUNT: &str = "x-total-count";

/// A list's query: `sort` orders, `limit` + `cursor` page, the rest filter.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQuery {
    /// Keys per page; see `page_limit_schema`.
    #[param(schema_with = page_limit_schema)]
    limit: Option<u32>,
    /// Where the page starts: from the `Link: <...>; rel="next"` of the page before, made for
    /// that query's `sort`. Opaque.
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9_-]+$")]
    cursor: Option<String>,
    /// Only keys whose name, description or one of whose permissions contains this, ignoring
    /// case; see `search_schema`.
    #[param(schema_with = search_schema)]
    q: Option<String>,
    enabled: Option<bool>,
    /// true: only expired keys; false: only unexpired ones.
    expired: Option<bool>,
    /// The order; see `sort_schema`.
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
}

impl ListQuery {
    /// Every parameter checked, each problem named by its field.
    pub(super) fn parse(query: &str) -> Result<KeyFilter, ApiError> {
        let mut filter = KeyFilter::default();
        let mut errors = FieldErrors::default();
        let mut cursor = None;
        let boolean = |v: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("must be true or false"),
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "limit" => {
                    filter.limit = errors.check(
                        "limit",
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|n| (1..=KeyFilter::MAX_LIMIT).contains(n))
                            .ok_or_else(|| {
                                format!("must be a whole number from 1 to {}", KeyFilter::MAX_LIMIT)
                            }),
                    );
                }
                "cursor" => cursor = Some(value.into_owned()),
                "q" => filter.search = errors.check("q", Search::parse(&value)),
                "enabled" => filter.enabled = errors.check("enabled", boolean(&value)),
                "expired" => filter.expired = errors.check("expired", boolean(&value)),
                "sort" => {
                    filter.order = errors
                        .check("sort", KeyOrder::parse(&value))
                        .unwrap_or_default();
                }
                other => errors.push(other.to_owned(), "unknown query parameter"),
            }
        }
        // Read once the order is known, wherever `sort` stands in the query.
        if let Some(cursor) = cursor {
            filter.after = errors.check("cursor", decode_cursor(&cursor, filter.order));
        }
        errors
            .finish(|| Some(filter))
            .map_err(|errors| ApiError::InvalidRequest {
                detail: "the query is not valid".into(),
                errors,
            })
    }
}

/// `q` as documented: its bound is `Search`'s own.
fn search_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .description(Some(
            "Only keys whose name, description or one of whose permissions contains this, \
             ignoring case (Unicode lowercasing).",
        ))
        .max_length(Some(Search::MAX_CHARS))
        .build()
}

/// `sort` as documented: the fields `KeyOrder` accepts, each also descending.
fn sort_schema() -> utoipa::openapi::Object {
    let values: Vec<String> = SortField::names()
        .flat_map(|f| [f.to_owned(), format!("-{f}")])
        .collect();
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(values))
        .default(Some(serde_json::Value::from("name")))
        .description(Some(
            "The order: a field, with a leading `-` for descending. Keys without the field \
             (never used, no expiry, no createdAt) come last either way; ties go by name.",
        ))
        .build()
}

/// A cursor is where the page before ended, in the order it was made for: that order, the
/// last key's value of its field and its name. Clients take it from the `Link` header and
/// need not read it.
pub(super) fn encode_cursor(order: KeyOrder, at: &ListPosition) -> String {
    use base64::Engine;
    let value = at.value.map(|v| v.to_string()).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{order}\n{value}\n{}", at.name))
}

/// A cursor this server made for this `order`; anything else (another order's, or one not
/// made here) is refused rather than guessed at.
fn decode_cursor(cursor: &str, order: KeyOrder) -> Result<ListPosition, String> {
    use base64::Engine;
    const NOT_OURS: &str = "not a cursor this server gave";
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(NOT_OURS)?;
    let mut parts = text.split('\n');
    let (Some(made_for), Some(value), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(NOT_OURS.into());
    };
    if made_for != order.to_string() {
        return Err(format!(
            "made for another sort than {order}: start again without a cursor"
        ));
    }
    let value = match value {
        "" => None,
        _ if order.field == SortField::Name => return Err(NOT_OURS.into()),
        v => Some(v.parse::<i128>().map_err(|_| NOT_OURS)?),
    };
    let name = KeyName::parse(name).map_err(|_| NOT_OURS)?;
    Ok(ListPosition { value, name })
}

/// The body of a lookup: the token whose key is wanted. It is in the body, never the URL,
/// so no access log or proxy ever records it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupApiKey {
    /// A token this server issued: its prefix, `_`, and 49 letters or digits, the last six
    /// a checksum of the rest.
    #[schema(pattern = r"^[A-Za-z0-9]{1,16}_[A-Za-z0-9]{49}$")]
    token: String,
}

impl LookupApiKey {
    /// The token as a presented key, when it can be one this server issued: the refusal
    /// names the field and never quotes the token.
    pub(super) fn presented(&self, prefix: &TokenPrefix) -> Result<PresentedKey, ApiError> {
        PresentedKey::parse_issued(&self.token, prefix).map_err(|e| ApiError::InvalidRequest {
            detail: "the request is not valid".into(),
            errors: vec![FieldError::new("token", e.to_string())],
        })
    }
}
