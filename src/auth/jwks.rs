//! A JWKS URL: fetched at start, cached, refetched when a token names an unknown `kid` (at
//! most once per 30 s), so an identity provider's key rotation needs no restart.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use parking_lot::Mutex;

use super::JwtVerifier;

/// The least time between two refetches triggered by unknown key ids.
pub const REFETCH_EVERY: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(5);

pub struct JwksSource {
    url: String,
    client: reqwest::Client,
    last_refetch: Mutex<Option<Instant>>,
}

impl JwksSource {
    pub fn new(url: String) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        Ok(Self {
            url,
            client,
            last_refetch: Mutex::new(None),
        })
    }

    /// The first fetch, at start-up.
    pub async fn fetch(&self) -> anyhow::Result<JwkSet> {
        fetch(&self.client, &self.url).await
    }

    /// Refetches the key set into `verifier` unless one was fetched less than 30 s ago.
    /// True when new keys were installed.
    pub async fn refetch(&self, verifier: &JwtVerifier) -> bool {
        {
            let mut last = self.last_refetch.lock();
            if last.is_some_and(|t| t.elapsed() < REFETCH_EVERY) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match fetch(&self.client, &self.url).await {
            Ok(set) => match verifier.set_jwks(set) {
                Ok(()) => {
                    tracing::info!("JWKS refetched for an unknown key id");
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "refetched JWKS has no usable key; keeping the old one");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot refetch the JWKS");
                false
            }
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<JwkSet> {
    let res = client.get(url).send().await?.error_for_status()?;
    Ok(res.json().await?)
}
