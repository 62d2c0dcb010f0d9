//! OpenID Connect discovery for the console's sign-in: where `auth.issuer` wants browsers
//! sent to sign in, and where they trade the code for a token
//! (`<issuer>/.well-known/openid-configuration`, OpenID Connect Discovery 1.0).
//!
//! Discovery runs on the server, not in the browser, so the console page's
//! Content-Security-Policy can name the one extra origin the page may call: the token
//! endpoint's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

const TIMEOUT: Duration = Duration::from_secs(3);
/// A found configuration is kept this long; providers rarely move their endpoints.
const KEEP_FOUND: Duration = Duration::from_secs(3600);
/// A failed discovery is not retried for this long, so a provider that is down does not
/// slow every page load.
const KEEP_FAILED: Duration = Duration::from_secs(30);

/// The parts of a provider's configuration the console uses.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// `scheme://host:port` of the token endpoint, for `connect-src`.
    #[serde(skip)]
    pub token_origin: String,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

pub struct Provider {
    issuer: String,
    client: reqwest::Client,
    cache: Mutex<Option<(Instant, Option<Arc<Endpoints>>)>>,
}

impl Provider {
    pub fn new(issuer: String) -> anyhow::Result<Self> {
        Ok(Self {
            issuer,
            client: reqwest::Client::builder().timeout(TIMEOUT).build()?,
            cache: Mutex::new(None),
        })
    }

    /// The provider's endpoints, discovered once and kept; None while it cannot be reached
    /// or its configuration is unusable (the reason is logged).
    pub async fn endpoints(&self) -> Option<Arc<Endpoints>> {
        let mut cache = self.cache.lock().await;
        if let Some((at, found)) = cache.as_ref() {
            let keep = if found.is_some() {
                KEEP_FOUND
            } else {
                KEEP_FAILED
            };
            if at.elapsed() < keep {
                return found.clone();
            }
        }
        let found = match self.discover().await {
            Ok(e) => Some(Arc::new(e)),
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "OpenID Connect discovery failed: the console offers only a pasted token");
                None
            }
        };
        *cache = Some((Instant::now(), found.clone()));
        found
    }

    async fn discover(&self) -> anyhow::Result<Endpoints> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc: Discovery = self
            .client
            .get(&url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        // Discovery §4.3: the document must name the issuer it was fetched from.
        anyhow::ensure!(
            doc.issuer == self.issuer,
            "the provider calls itself {:?}, not auth.issuer",
            doc.issuer
        );
        if let Some(methods) = &doc.code_challenge_methods_supported {
            anyhow::ensure!(
                methods.iter().any(|m| m == "S256"),
                "the provider does not support PKCE with S256"
            );
        }
        let authorization = web_url(&doc.authorization_endpoint)?;
        let token = web_url(&doc.token_endpoint)?;
        Ok(Endpoints {
            authorization_endpoint: authorization.to_string(),
            token_endpoint: token.to_string(),
            token_origin: token.origin().ascii_serialization(),
        })
    }
}

/// An endpoint a browser may be sent to: https, or http on a loopback host (a provider
/// on the developer's own machine).
fn web_url(text: &str) -> anyhow::Result<Url> {
    let url = Url::parse(text)?;
    let host = url.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        url.scheme() == "https" || (url.scheme() == "http" && loopback),
        "endpoint {text:?} is neither https nor on a loopback address"
    );
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_unless_on_this_machine() {
        assert!(web_url("https://idp.example.com/authorize").is_ok());
        assert!(web_url("http://127.0.0.1:9000/auth").is_ok());
        assert!(web_url("http://localhost:9000/auth").is_ok());
        assert!(web_url("http://idp.example.com/authorize").is_err());
        assert!(web_url("javascript:alert(1)").is_err());
    }
}
