//! JWT bearer tokens: signature, algorithm pinned by the key, time claims, scopes, tenants.

use std::collections::BTreeSet;
use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};

use crate::config::AuthSettings;

/// Shortest HS256 secret accepted: RFC 7518 wants a key as long as the hash.
const MIN_SECRET_BYTES: usize = 32;

/// What a valid token says about its caller.
#[derive(Debug, Clone)]
pub struct Claims {
    pub subject: Option<String>,
    pub scopes: BTreeSet<String>,
    pub tenants: TenantGrant,
}

/// The tenants a token may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantGrant {
    All,
    Only(BTreeSet<String>),
}

impl TenantGrant {
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(tenant),
        }
    }
}

/// Why a token was refused. Never carries the token or any key material.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    /// The `kid` as `shown_kid` shows it: short and escaped, never the raw input.
    #[error("unknown key id \"{0}\"")]
    UnknownKid(String),
    #[error("the token's header names critical extensions keyward does not support")]
    Critical,
    #[error("no key to check this token with")]
    NoKey,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("missing claim {0}")]
    MissingClaim(String),
    #[error("claim {0} has the wrong type")]
    ClaimType(String),
}

impl JwtError {
    pub fn is_unknown_kid(&self) -> bool {
        matches!(self, Self::UnknownKid(_))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error("auth.hs256_secret must be at least {MIN_SECRET_BYTES} bytes")]
    ShortSecret,
    #[error("cannot read the JWKS file {path}: {reason}")]
    JwksFile { path: String, reason: String },
    #[error("the JWKS has no usable signing key (RS256, ES256 or EdDSA)")]
    NoUsableKey,
    #[error("cannot sign the dev token: {0}")]
    Sign(String),
}

/// One usable public key from a JWKS.
struct PublicKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

pub struct JwtVerifier {
    secret: Option<DecodingKey>,
    jwks: RwLock<Vec<PublicKey>>,
    /// Shared settings: `exp` required, `nbf` checked, leeway, iss/aud when configured.
    base: Validation,
    tenant_claim: String,
    /// Dev mode's secret, made at this start: no token signed before it can verify.
    secret_made_at_start: bool,
}

impl JwtVerifier {
    pub fn from_settings(auth: &AuthSettings) -> Result<Self, JwtSetupError> {
        let secret = match &auth.hs256_secret {
            Some(s) if s.expose_secret().len() < MIN_SECRET_BYTES => {
                return Err(JwtSetupError::ShortSecret);
            }
            Some(s) => Some(DecodingKey::from_secret(s.expose_secret().as_bytes())),
            None => None,
        };
        let mut base = Validation::new(Algorithm::HS256);
        base.set_required_spec_claims(&["exp"]);
        base.validate_exp = true;
        base.validate_nbf = true;
        base.leeway = auth.leeway_seconds;
        match &auth.audience {
            Some(aud) => base.set_audience(&[aud]),
            // Without a configured audience a token's `aud` is not ours to judge.
            None => base.validate_aud = false,
        }
        if let Some(iss) = &auth.issuer {
            base.set_issuer(&[iss]);
            base.required_spec_claims.insert("iss".into());
        }
        if auth.audience.is_some() {
            base.required_spec_claims.insert("aud".into());
        }
        let verifier = Self {
            secret,
            jwks: RwLock::new(Vec::new()),
            base,
            tenant_claim: auth.tenant_claim.clone(),
            secret_made_at_start: false,
        };
        if let Some(path) = &auth.jwks_file {
            let err = |reason: String| JwtSetupError::JwksFile {
                path: path.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let set: JwkSet = serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
            verifier.set_jwks(set)?;
        }
        Ok(verifier)
    }

    /// Marks the HS256 secret as dev mode's own, made at this start: refusals of a bad
    /// signature then say why one is likely (see `explain`).
    pub fn with_secret_made_at_start(mut self) -> Self {
        self.secret_made_at_start = true;
        self
    }

    /// What a refused token's answer says. In dev mode with a secret made at this start, a
    /// signature that does not verify is most likely a token printed by an earlier start,
    /// and the caller is told so and how to avoid it.
    pub fn explain(&self, error: &JwtError) -> String {
        match error {
            JwtError::Signature if self.secret_made_at_start => format!(
                "invalid token: {error}. keyward runs in dev mode, which signs with a new \
                 secret at each start, so this token was probably printed by an earlier start \
                 of keyward. Use the token printed at this start; to keep dev tokens valid \
                 across restarts, set auth.hs256_secret (KEYWARD_AUTH__HS256_SECRET) and \
                 auth.dev_token: true (KEYWARD_AUTH__DEV_TOKEN=true)."
            ),
            _ => format!("invalid token: {error}"),
        }
    }

    /// Replaces the JWKS keys (a JWKS URL refresh); the HS256 secret stays.
    pub fn set_jwks(&self, set: JwkSet) -> Result<(), JwtSetupError> {
        let keys: Vec<PublicKey> = set.keys.iter().filter_map(usable_key).collect();
        if keys.is_empty() && self.secret.is_none() {
            return Err(JwtSetupError::NoUsableKey);
        }
        *self.jwks.write().unwrap_or_else(|e| e.into_inner()) = keys;
        Ok(())
    }

    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        refuse_critical_extensions(token)?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                JwtError::Algorithm("from the header".into())
            }
            _ => JwtError::Malformed,
        })?;
        let claims = if header.alg == Algorithm::HS256 {
            // Only ever the configured secret: a public key is never an HMAC secret.
            let secret = self.secret.as_ref().ok_or(JwtError::NoKey)?;
            self.decode(token, secret, Algorithm::HS256)?
        } else {
            let keys = self.jwks.read().unwrap_or_else(|e| e.into_inner());
            let key = select_key(&keys, header.kid.as_deref(), header.alg)?;
            self.decode(token, &key.key, key.alg)?
        };
        self.claims(claims)
    }

    fn decode(
        &self,
        token: &str,
        key: &DecodingKey,
        alg: Algorithm,
    ) -> Result<Map<String, Value>, JwtError> {
        let mut validation = self.base.clone();
        validation.algorithms = vec![alg];
        jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.into_kind() {
                ErrorKind::InvalidSignature => JwtError::Signature,
                ErrorKind::ExpiredSignature => JwtError::Expired,
                ErrorKind::ImmatureSignature => JwtError::NotYetValid,
                ErrorKind::InvalidIssuer => JwtError::Issuer,
                ErrorKind::InvalidAudience => JwtError::Audience,
                ErrorKind::MissingRequiredClaim(c) => JwtError::MissingClaim(c),
                ErrorKind::InvalidClaimFormat(c) => JwtError::ClaimType(c),
                ErrorKind::InvalidAlgorithm => JwtError::Algorithm(format!("{alg:?} expected")),
                _ => JwtError::Malformed,
            })
    }

    fn claims(&self, map: Map<String, Value>) -> Result<Claims, JwtError> {
        // RFC 7519 makes `iss` one string; a list would let a token name several issuers.
        if self.base.iss.is_some() && !map.get("iss").is_some_and(Value::is_string) {
            return Err(JwtError::ClaimType("iss".into()));
        }
        let mut scopes = BTreeSet::new();
        for name in ["scope", "scp"] {
            match map.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_owned)),
                Some(Value::Array(items)) if name == "scp" => {
                    for item in items {
                        let s = item
                            .as_str()
                            .ok_or_else(|| JwtError::ClaimType(name.into()))?;
                        scopes.insert(s.to_owned());
                    }
                }
                Some(_) => return Err(JwtError::ClaimType(name.into())),
            }
        }
        let tenants = match map.get(&self.tenant_claim) {
            None | Some(Value::Null) => TenantGrant::Only(BTreeSet::new()),
            Some(Value::String(s)) => grant([s.as_str()]),
            Some(Value::Array(items)) => {
                let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                grant(names.ok_or_else(|| JwtError::ClaimType(self.tenant_claim.clone()))?)
            }
            Some(_) => return Err(JwtError::ClaimType(self.tenant_claim.clone())),
        };
        Ok(Claims {
            subject: map.get("sub").and_then(Value::as_str).map(str::to_owned),
            scopes,
            tenants,
        })
    }
}

/// RFC 7515 §4.1.11: a token whose header lists `crit` extensions must be refused unless
/// every one is understood; keyward understands none.
fn refuse_critical_extensions(token: &str) -> Result<(), JwtError> {
    use base64::Engine;
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| JwtError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)?;
    if header.contains_key("crit") {
        return Err(JwtError::Critical);
    }
    Ok(())
}

/// A `kid` as logs and responses may show it: at most 32 characters, escaped.
fn shown_kid(kid: &str) -> String {
    const MAX_CHARS: usize = 32;
    let mut shown: String = kid
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_default)
        .collect();
    if kid.chars().count() > MAX_CHARS {
        shown.push_str("...");
    }
    shown
}

fn grant<'a>(names: impl IntoIterator<Item = &'a str>) -> TenantGrant {
    let set: BTreeSet<String> = names.into_iter().map(str::to_owned).collect();
    if set.contains("*") {
        TenantGrant::All
    } else {
        TenantGrant::Only(set)
    }
}

/// The key a token names by `kid`; without a kid, the only key of the token's algorithm.
fn select_key<'a>(
    keys: &'a [PublicKey],
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<&'a PublicKey, JwtError> {
    let key = match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| JwtError::UnknownKid(shown_kid(kid)))?,
        None => {
            let mut matching = keys.iter().filter(|k| k.alg == alg);
            match (matching.next(), matching.next()) {
                (Some(k), None) => k,
                _ => return Err(JwtError::NoKey),
            }
        }
    };
    // The key decides the algorithm; a token claiming another one is refused.
    if key.alg != alg {
        return Err(JwtError::Algorithm(format!("{alg:?}")));
    }
    Ok(key)
}

/// A JWK we can verify signatures with, and its pinned algorithm.
fn usable_key(jwk: &jsonwebtoken::jwk::Jwk) -> Option<PublicKey> {
    let kid = jwk.common.key_id.clone();
    let skip = |why: &str| {
        tracing::warn!(
            kid = kid.as_deref().unwrap_or("-"),
            reason = why,
            "JWKS key skipped"
        );
        None
    };
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return skip("meant for encryption");
    }
    let from_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return skip("unsupported key type"),
    };
    let alg = match jwk.common.key_algorithm {
        None => from_type,
        Some(KeyAlgorithm::RS256) if from_type == Algorithm::RS256 => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) if from_type == Algorithm::ES256 => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) if from_type == Algorithm::EdDSA => Algorithm::EdDSA,
        Some(_) => return skip("unsupported or mismatched alg"),
    };
    match DecodingKey::from_jwk(jwk) {
        Ok(key) => Some(PublicKey { kid, alg, key }),
        Err(_) => skip("invalid key parameters"),
    }
}

/// Dev mode: a random 32-byte secret from the OS, hex encoded.
pub fn generate_dev_secret() -> String {
    use rand::TryRng;
    let mut bytes = [0u8; 32];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the OS random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Dev mode: an admin token for every tenant, read and write.
pub fn mint_dev_token(
    auth: &AuthSettings,
    secret: &str,
    ttl: Duration,
) -> Result<String, JwtSetupError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = Map::new();
    claims.insert("sub".into(), "keyward-dev".into());
    claims.insert(
        "scope".into(),
        "tenant.apiKey:read tenant.apiKey:write".into(),
    );
    claims.insert(auth.tenant_claim.clone(), "*".into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl.as_secs() as i64).into());
    if let Some(iss) = &auth.issuer {
        claims.insert("iss".into(), iss.clone().into());
    }
    if let Some(aud) = &auth.audience {
        claims.insert("aud".into(), aud.clone().into());
    }
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| JwtSetupError::Sign(e.to_string()))
}
