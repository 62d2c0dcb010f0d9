//! The browser console (README, "Console: keys in the browser"): a page at `/` and its assets, embedded in the binary.
//!
//! The page runs only the scripts served here (`script-src 'self'`, no inline script) and
//! calls only this server and, during sign-in, the OpenID provider's token endpoint. The
//! assets' URLs carry a digest of their bytes, so browsers may keep them for good; the page
//! itself and the sign-in settings are revalidated on every load. No response here carries
//! a token: the console keeps its token in the tab's memory and `sessionStorage`.

use std::sync::{Arc, LazyLock};

use actix_web::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use actix_web::{HttpResponse, web};
use serde_json::json;
use utoipa::OpenApi;

use super::Endpoint;
use super::embedded::{self, Asset, NO_CACHE, hardened};
use crate::auth::oidc::{Endpoints, Provider};
use crate::config::Settings;
use crate::error::{ApiError, ProblemDetails};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(Endpoint::new("/").get(page).finish())
        .service(Endpoint::new("/console/config.json").get(config).finish())
        .service(
            Endpoint::new("/console/{version}/{file}")
                .get(asset)
                .finish(),
        );
}

#[derive(OpenApi)]
#[openapi(paths(page, config, asset))]
pub struct Api;

/// What the console needs to know about this server.
pub struct Console {
    dev_mode: bool,
    tenant_claim: String,
    sign_in: Option<SignIn>,
}

struct SignIn {
    client_id: String,
    scope: String,
    provider: Provider,
}

impl Console {
    pub fn new(settings: &Settings, dev_mode: bool) -> anyhow::Result<Self> {
        let sign_in = match (&settings.console.client_id, &settings.auth.issuer) {
            (None, _) => None,
            (Some(client_id), Some(issuer)) => Some(SignIn {
                client_id: client_id.clone(),
                scope: settings.console.scope.clone(),
                provider: Provider::new(issuer.clone())?,
            }),
            (Some(_), None) => anyhow::bail!(
                "console.client_id is set but auth.issuer is not: the console signs in at \
                 the issuer's OpenID provider"
            ),
        };
        Ok(Self {
            dev_mode,
            tenant_claim: settings.auth.tenant_claim.clone(),
            sign_in,
        })
    }

    async fn endpoints(&self) -> Option<Arc<Endpoints>> {
        match &self.sign_in {
            Some(s) => s.provider.endpoints().await,
            None => None,
        }
    }
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!("../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("dom.js", JS),
    asset!("api.js", JS),
    asset!("session.js", JS),
    asset!("keys.js", JS),
    asset!("list.js", JS),
    asset!("keypage.js", JS),
    asset!("keyform.js", JS),
    asset!("keyinfo.js", JS),
    asset!("ratelimit.js", JS),
    asset!("actions.js", JS),
    asset!("tokendialog.js", JS),
    asset!("lookup.js", JS),
    asset!("tenants.js", JS),
    asset!("router.js", JS),
    asset!("history.js", JS),
    asset!("icon.svg", "image/svg+xml"),
];

const PAGE: &str = include_str!("../../console/index.html");

/// This build's files' URL segment.
static VERSION: LazyLock<String> = LazyLock::new(|| embedded::version(ASSETS));

static HTML: LazyLock<String> = LazyLock::new(|| PAGE.replace("{{version}}", &VERSION));

/// The page's policy: its own scripts and styles only, and calls to this server and (for
/// sign-in) the provider's token endpoint.
fn policy(token_origin: Option<&str>) -> String {
    let connect = match token_origin {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".into(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {connect}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// The console: sign in, then manage a tenant's keys.
#[utoipa::path(
    get,
    path = "/",
    tag = "console",
    responses((status = 200, description = "The console's HTML page", content_type = "text/html"))
)]
pub(crate) async fn page(console: web::Data<Console>) -> HttpResponse {
    let endpoints = console.endpoints().await;
    hardened(NO_CACHE)
        .insert_header((CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((
            CONTENT_SECURITY_POLICY,
            policy(endpoints.as_deref().map(|e| e.token_origin.as_str())),
        ))
        .body(HTML.as_str())
}

/// How the console signs people in: `signIn` (an OpenID provider's endpoints and the
/// console's client) when `console.client_id` is set and the provider answers; `devMode`
/// when the server printed its own admin token.
#[utoipa::path(
    get,
    path = "/console/config.json",
    tag = "console",
    responses((status = 200, description = "The console's sign-in settings", content_type = "application/json"))
)]
pub(crate) async fn config(console: web::Data<Console>) -> HttpResponse {
    let sign_in = match (&console.sign_in, console.endpoints().await) {
        (Some(s), Some(e)) => json!({
            "clientId": s.client_id,
            "scope": s.scope,
            "authorizationEndpoint": e.authorization_endpoint,
            "tokenEndpoint": e.token_endpoint,
        }),
        _ => serde_json::Value::Null,
    };
    hardened(NO_CACHE).json(json!({
        "devMode": console.dev_mode,
        "tenantClaim": console.tenant_claim,
        "signIn": sign_in,
    }))
}

/// One of the console's scripts, styles or images; its URL changes when its bytes do.
#[utoipa::path(
    get,
    path = "/console/{version}/{file}",
    tag = "console",
    params(
        ("version" = String, Path, description = "The assets' digest, as the page names it"),
        ("file" = String, Path, description = "File name"),
    ),
    responses(
        (status = 200, description = "The file"),
        (status = 404, description = "No such file in this build", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn asset(path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (version, file) = path.into_inner();
    embedded::serve(ASSETS, &VERSION, &version, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_every_asset_it_loads_by_this_builds_version() {
        for src in HTML.split("/console/").skip(1) {
            let (version, rest) = src.split_once('/').expect("a versioned asset URL");
            let file = rest.split('"').next().unwrap_or_default();
            assert_eq!(version, *VERSION);
            assert!(
                ASSETS.iter().any(|a| a.name == file),
                "{file} is not embedded"
            );
        }
    }
}
