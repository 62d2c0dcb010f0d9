//! What the real-gateway tests share: a recipe from `deploy/gateways/` with its addresses
//! replaced, an upstream that echoes what reached it, the gateway process (stopped by its
//! own PID), and the one scenario every forward-auth recipe must pass.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// The addresses every recipe is written with: keyward, the service behind the gateway, and
/// the port the gateway listens on.
pub const RECIPE_KEYWARD: &str = "127.0.0.1:8080";
pub const RECIPE_UPSTREAM: &str = "127.0.0.1:9000";
pub const RECIPE_LISTEN_PORT: &str = "8000";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The path of a tool the test drives, or None (and a SKIPPED line) when it is not
/// installed; under `CI` a missing tool is a failure, never a silent skip.
pub fn installed(tool: &str, candidates: &[&'static str], install: &str) -> Option<&'static str> {
    let found = candidates
        .iter()
        .copied()
        .find(|p| std::path::Path::new(p).exists());
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "CI must install {tool} (see .ci/run)"
    );
    if found.is_none() {
        eprintln!("SKIPPED: the {tool} test: `{install}` to run it");
    }
    found
}

/// A service behind the gateway: it answers every request with the headers it received,
/// as JSON, and counts the requests that reached it.
pub struct Upstream {
    pub port: u16,
    hits: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(echo_headers(conn));
            }
        });
        Self { port, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn echo_headers(mut conn: tokio::net::TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let headers: BTreeMap<String, String> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    let body = serde_json::to_string(&headers).unwrap();
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(answer.as_bytes()).await;
}

/// A recipe with the addresses it is written with replaced by the test's own.
pub fn with_addresses(recipe: &str, keyward: &str, upstream: u16, listen: u16) -> String {
    let replaced = recipe
        .replace(RECIPE_KEYWARD, keyward)
        .replace(RECIPE_UPSTREAM, &format!("127.0.0.1:{upstream}"));
    // The listen port appears as `:8000`, whether bound to an address or not.
    replaced.replace(&format!(":{RECIPE_LISTEN_PORT}"), &format!(":{listen}"))
}

/// A gateway process, killed by its own PID when the test ends, however it ends.
pub struct Gateway(Child);

impl Gateway {
    pub fn spawn(command: &mut Command) -> Self {
        Self(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("the gateway starts"),
        )
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something answers HTTP on `base` (any status: the gateway is up).
pub async fn wait_until_listening(what: &str, base: &str) {
    let client = reqwest::Client::new();
    let _ = eventually(
        &format!("{what} listens"),
        Duration::from_secs(20),
        || client.get(format!("{base}/healthz")).send(),
        |r| r.is_ok(),
    )
    .await;
}

/// A server on a manual clock, for the recipes' scenario: a rate limit's allowance comes
/// back only when a test moves the clock.
pub async fn spawn_gateway_app() -> TestApp {
    let start = time::macros::datetime!(2030-01-01 00:00 UTC);
    spawn_app_with_clock(keyward::clock::Clock::manual(start), |_| {}).await
}

/// The keys the scenario presents, made on `app` before the gateway starts.
pub struct Keys {
    pub reader: String,
    pub write_only: String,
    pub other_tenant: String,
    /// Holds `orders:read`, limited to one verification a minute.
    pub limited: String,
}

impl Keys {
    pub async fn make(app: &TestApp) -> Self {
        Self {
            reader: app.new_key("acme", "reader", &["orders:read"]).await,
            write_only: app.new_key("acme", "writer-only", &["orders:write"]).await,
            other_tenant: app.new_key("globex", "theirs", &["orders:read"]).await,
            limited: limited_key(app).await,
        }
    }
}

async fn limited_key(app: &TestApp) -> String {
    let body = serde_json::json!({"name": "limited", "permissions": ["orders:read"],
        "rateLimit": {"requests": 1, "perSeconds": 60}});
    let created: serde_json::Value = app.create_key("acme", body).await.json().await.unwrap();
    created["token"].as_str().unwrap().to_owned()
}

/// GET `/orders/42?page=2` through the gateway, as a client that also claims an identity.
async fn call(base: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/orders/42?page=2"))
        .header("X-Keyward-Tenant", "globex")
        .header("X-Keyward-Key", "admin")
        .header("X-Keyward-Permissions", "*");
    if let Some(k) = key {
        req = req.header("X-API-Key", k);
    }
    req.send().await.expect("the gateway answers")
}

/// What every forward-auth recipe must do, in front of `acme`'s `orders:read`: pass a
/// valid key with keyward's identity headers and without the key itself; answer 401 / 403
/// from keyward and 429 with `Retry-After` for a key over its rate limit, and reach
/// nothing; fail closed once keyward is gone. `app` runs on a manual clock. Stops `app`.
pub async fn assert_recipe_guards_the_upstream(
    app: &TestApp,
    keys: &Keys,
    upstream: &Upstream,
    base: &str,
) {
    let ok = call(base, Some(&keys.reader)).await;
    assert_eq!(ok.status(), 200);
    let seen: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(seen["x-keyward-tenant"], "acme", "{seen}");
    assert_eq!(seen["x-keyward-key"], "reader", "{seen}");
    assert_eq!(seen["x-keyward-permissions"], "orders:read", "{seen}");
    assert!(
        seen.get("x-api-key").is_none(),
        "the key went upstream: {seen}"
    );
    let served = upstream.hits();
    assert_eq!(served, 1);

    for key in [None, Some("kw_not-a-real-key"), Some(&*keys.other_tenant)] {
        let refused = call(base, key).await;
        assert_refused(refused, 401, key).await;
    }
    assert_refused(call(base, Some(&keys.write_only)).await, 403, None).await;

    assert_eq!(call(base, Some(&keys.limited)).await.status(), 200);
    let over = call(base, Some(&keys.limited)).await;
    // Run on a manual clock: the allowance never comes back by itself.
    assert_eq!(over.headers().get("retry-after").unwrap(), "60");
    assert_eq!(
        over.headers().get("ratelimit").unwrap(),
        r#""key";r=0;t=60"#
    );
    assert_refused(over, 429, Some(&keys.limited)).await;
    let served = served + 1;

    app.handle.stop(true).await;
    let down = call(base, Some(&keys.reader)).await;
    assert!(down.status().is_server_error(), "{}", down.status());
    assert_eq!(
        upstream.hits(),
        served,
        "a refused request reached the upstream"
    );
}

/// keyward's refusal, passed through to the client, never echoing the key.
async fn assert_refused(res: reqwest::Response, status: u16, key: Option<&str>) {
    assert_eq!(res.status(), status, "{key:?}");
    let content_type = res.headers().get("content-type").cloned();
    let body = res.text().await.unwrap();
    assert_eq!(
        content_type.as_ref().and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "{body}"
    );
    if let Some(key) = key {
        assert!(!body.contains(key), "the answer echoes the key: {body}");
    }
}
