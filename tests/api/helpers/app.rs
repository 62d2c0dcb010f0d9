//! `spawn_app()`: a real keyward on a random port over its own temp tenants directory, and
//! one method per endpoint so test bodies say what they do, not how a request is built.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use keyward::clock::Clock;
use keyward::config::Settings;
use keyward::startup::Application;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tempfile::TempDir;
use time::format_description::well_known::Rfc3339;

use super::{READ, SECRET, eventually, token, writer};

/// Logs only when TEST_LOG is set, so failures are readable.
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        keyward::telemetry::init(keyward::config::LogFormat::Text, std::io::stdout);
    }
});

pub const ACME_FILE: &str = "\
# acme's keys; ops edit this file in git.
apiKeys:
  # deploys
  - name: ci-deploy   # keep me
    hash: sha256:1111111111111111111111111111111111111111111111111111111111111111
    permissions: [orders:read, orders:write]

  # reporting job
  - name: reporting
    hash: 2222222222222222222222222222222222222222222222222222222222222222
    enabled: false
# other tools' settings
users:
  - alice   # admin
";

pub struct TestApp {
    pub address: String,
    pub handle: actix_web::dev::ServerHandle,
    pub stopped: tokio::task::JoinHandle<std::io::Result<()>>,
    pub dir: TempDir,
    pub client: reqwest::Client,
    /// The server's clock: the system clock unless the test brought its own.
    pub clock: Clock,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Tenants: `acme` (ACME_FILE) and `globex` (a directory without security.yml).
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_clock(Clock::system(), configure).await
}

/// As `spawn_app_with`, with every expiry and grace period measured by `clock`: a test
/// moves time with `clock.advance` instead of sleeping.
pub async fn spawn_app_with_clock(clock: Clock, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let tenants = dir.path().join("tenants");
    std::fs::create_dir_all(tenants.join("acme")).unwrap();
    std::fs::create_dir_all(tenants.join("globex")).unwrap();
    std::fs::write(tenants.join("acme/security.yml"), ACME_FILE).unwrap();
    start(dir, clock, configure).await
}

/// Starts a server over an existing temp dir (whose `tenants/` the caller prepared).
pub async fn spawn_app_on(dir: TempDir, configure: impl FnOnce(&mut Settings)) -> TestApp {
    start(dir, Clock::system(), configure).await
}

async fn start(dir: TempDir, clock: Clock, configure: impl FnOnce(&mut Settings)) -> TestApp {
    LazyLock::force(&TRACING);
    let mut settings = settings_for(dir.path());
    configure(&mut settings);
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("the app builds");
    let (address, handle, stopped) = serve(app).await;
    TestApp {
        handle,
        stopped,
        address,
        dir,
        client: reqwest::Client::new(),
        clock,
    }
}

/// Runs a built application until `/readyz` says every tenant is loaded; returns its
/// address, its handle and its run task.
pub async fn serve(
    app: Application,
) -> (
    String,
    actix_web::dev::ServerHandle,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let stopped = tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let ready = format!("{address}/readyz");
    let _ready = eventually(
        &format!("{address} ready"),
        Duration::from_secs(30),
        || client.get(&ready).send(),
        |res| res.as_ref().is_ok_and(|r| r.status() == 200),
    )
    .await;
    (address, handle, stopped)
}

pub fn settings_for(dir: &Path) -> Settings {
    let mut s = Settings {
        listen: "127.0.0.1:0".into(),
        tenants_dir: dir.join("tenants"),
        state_dir: dir.join("state"),
        rescan_interval_seconds: 3600,
        ..Default::default()
    };
    s.auth.hs256_secret = Some(SECRET.to_owned().into());
    s
}

/// How a request to the admin API or `current` proves who calls.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// A JWT allowed to write the request's tenant (what most tests use).
    Writer,
    /// A JWT allowed to read the request's tenant.
    Reader,
    /// `Authorization: Bearer` with this token; a `&str` or `&String` converts to it.
    Bearer(&'a str),
    /// `X-API-Key` with this key.
    ApiKey(&'a str),
    /// No credential at all.
    Anonymous,
}

pub use Credential::{Anonymous, ApiKey, Bearer, Reader, Writer};

impl<'a> From<&'a str> for Credential<'a> {
    fn from(token: &'a str) -> Self {
        Bearer(token)
    }
}

impl<'a> From<&'a String> for Credential<'a> {
    fn from(token: &'a String) -> Self {
        Bearer(token)
    }
}

impl TestApp {
    /// Stops the server gracefully and waits until it has finished (final flushes included);
    /// gives back its directory for a restart.
    pub async fn stop(self) -> TempDir {
        self.handle.stop(true).await;
        self.stopped.await.unwrap().unwrap();
        self.dir
    }

    pub fn tenants(&self) -> PathBuf {
        self.dir.path().join("tenants")
    }

    pub fn file(&self, tenant: &str) -> PathBuf {
        self.tenants().join(tenant).join("security.yml")
    }

    pub fn read_file(&self, tenant: &str) -> String {
        std::fs::read_to_string(self.file(tenant)).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn keys_url(&self, tenant: &str) -> String {
        self.url(&format!("/api/{tenant}/admin/apiKeys"))
    }

    pub fn key_url(&self, tenant: &str, name: &str) -> String {
        format!("{}/{name}", self.keys_url(tenant))
    }

    /// An RFC 3339 timestamp `seconds` from now by the server's clock.
    pub fn in_seconds(&self, seconds: i64) -> String {
        (self.clock.now() + time::Duration::seconds(seconds))
            .format(&Rfc3339)
            .unwrap()
    }

    /// A request to `url` on behalf of `who` for `tenant`, with an `If-Match` if given.
    fn request(
        &self,
        method: Method,
        url: String,
        tenant: &str,
        who: Credential<'_>,
        if_match: Option<&str>,
    ) -> RequestBuilder {
        let mut req = self.client.request(method, url);
        req = match who {
            Writer => req.bearer_auth(writer(tenant)),
            Reader => req.bearer_auth(token(tenant, READ)),
            Bearer(t) => req.bearer_auth(t),
            ApiKey(k) => req.header("X-API-Key", k),
            Anonymous => req,
        };
        if let Some(etag) = if_match {
            req = req.header("If-Match", etag);
        }
        req
    }

    /// POST /api/{tenant}/admin/apiKeys as the tenant's writer.
    pub async fn create_key(&self, tenant: &str, body: Value) -> Response {
        self.create_key_as(tenant, body, Writer).await
    }

    pub async fn create_key_as<'a>(
        &self,
        tenant: &str,
        body: Value,
        who: impl Into<Credential<'a>>,
    ) -> Response {
        self.request(
            Method::POST,
            self.keys_url(tenant),
            tenant,
            who.into(),
            None,
        )
        .json(&body)
        .send()
        .await
        .unwrap()
    }

    /// Creates a key and returns its one-time token.
    pub async fn new_key(&self, tenant: &str, name: &str, permissions: &[&str]) -> String {
        let res = self
            .create_key(tenant, json!({"name": name, "permissions": permissions}))
            .await;
        assert_eq!(res.status(), 201, "creating {name}");
        let body: Value = res.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// GET /api/{tenant}/admin/apiKeys/{name} as the tenant's reader.
    pub async fn get_key(&self, tenant: &str, name: &str) -> Response {
        self.request(
            Method::GET,
            self.key_url(tenant, name),
            tenant,
            Reader,
            None,
        )
        .send()
        .await
        .unwrap()
    }

    /// GET /api/{tenant}/admin/apiKeys.
    pub async fn list_keys<'a>(&self, tenant: &str, who: impl Into<Credential<'a>>) -> Response {
        self.request(Method::GET, self.keys_url(tenant), tenant, who.into(), None)
            .send()
            .await
            .unwrap()
    }

    /// The names `list_keys` answers to the tenant's reader, in its order.
    pub async fn list_names(&self, tenant: &str) -> Vec<String> {
        let res = self.list_keys(tenant, Reader).await;
        assert_eq!(res.status(), 200);
        let body: Vec<Value> = res.json().await.unwrap();
        body.iter()
            .map(|k| k["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// PUT /api/{tenant}/admin/apiKeys/{name} as the tenant's writer, unconditionally.
    pub async fn update_key(&self, tenant: &str, name: &str, body: Value) -> Response {
        self.update_key_as(tenant, name, body, Writer, None).await
    }

    pub async fn update_key_as<'a>(
        &self,
        tenant: &str,
        name: &str,
        body: Value,
        who: impl Into<Credential<'a>>,
        if_match: Option<&str>,
    ) -> Response {
        let url = self.key_url(tenant, name);
        self.request(Method::PUT, url, tenant, who.into(), if_match)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// DELETE /api/{tenant}/admin/apiKeys/{name} as the tenant's writer, unconditionally.
    pub async fn delete_key(&self, tenant: &str, name: &str) -> Response {
        self.delete_key_as(tenant, name, Writer, None).await
    }

    pub async fn delete_key_as<'a>(
        &self,
        tenant: &str,
        name: &str,
        who: impl Into<Credential<'a>>,
        if_match: Option<&str>,
    ) -> Response {
        let url = self.key_url(tenant, name);
        self.request(Method::DELETE, url, tenant, who.into(), if_match)
            .send()
            .await
            .unwrap()
    }

    /// POST /api/{tenant}/admin/apiKeys/{name}/rotate as the tenant's writer,
    /// unconditionally; `None` sends no body (`Some(Value::Null)` sends `null`).
    pub async fn rotate_key(&self, tenant: &str, name: &str, body: Option<Value>) -> Response {
        self.rotate_key_as(tenant, name, body, Writer, None).await
    }

    pub async fn rotate_key_as<'a>(
        &self,
        tenant: &str,
        name: &str,
        body: Option<Value>,
        who: impl Into<Credential<'a>>,
        if_match: Option<&str>,
    ) -> Response {
        let url = format!("{}/rotate", self.key_url(tenant, name));
        let mut req = self.request(Method::POST, url, tenant, who.into(), if_match);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// The body of an unauthenticated GET of `path` (a page, a document).
    pub async fn text(&self, path: &str) -> String {
        let res = self.client.get(self.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.text().await.unwrap()
    }

    /// `/metrics` as a scraper reads it (Prometheus text format).
    pub async fn metrics(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert!(
            res.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        res.text().await.unwrap()
    }

    /// `GET /api/{tenant}/admin/history[?keyName=]` as a reader (git mode).
    pub async fn history(&self, tenant: &str, key: Option<&str>) -> Response {
        let mut url = self.url(&format!("/api/{tenant}/admin/history"));
        if let Some(k) = key {
            url.push_str(&format!("?keyName={k}"));
        }
        self.request(Method::GET, url, tenant, Reader, None)
            .send()
            .await
            .unwrap()
    }

    /// GET /api/{tenant}/admin/status as the tenant's reader.
    pub async fn status(&self, tenant: &str) -> Response {
        self.status_as(tenant, Reader).await
    }

    /// GET /api/{tenant}/admin/status on behalf of `who`.
    pub async fn status_as<'a>(&self, tenant: &str, who: impl Into<Credential<'a>>) -> Response {
        let url = self.url(&format!("/api/{tenant}/admin/status"));
        self.request(Method::GET, url, tenant, who.into(), None)
            .send()
            .await
            .unwrap()
    }

    /// POST /api/{tenant}/apiKeys/verify with `body` (`{"key": ..., "permissions": [...]}`).
    pub async fn verify(&self, tenant: &str, body: Value) -> Response {
        self.client
            .post(self.url(&format!("/api/{tenant}/apiKeys/verify")))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The verdict on `body`, which always comes with a 200.
    pub async fn verdict_for(&self, tenant: &str, body: Value) -> Value {
        let res = self.verify(tenant, body).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// The verdict on `key`, with no permission required.
    pub async fn verdict(&self, tenant: &str, key: &str) -> Value {
        self.verdict_for(tenant, json!({"key": key})).await
    }

    /// Waits until `key` is (or is not) valid for `tenant`: for changes the watcher applies.
    pub async fn eventually_valid(&self, tenant: &str, key: &str, valid: bool) -> Value {
        eventually(
            &format!("{tenant}/{key} valid={valid}"),
            Duration::from_secs(5),
            || self.verdict(tenant, key),
            |verdict| verdict["valid"] == valid,
        )
        .await
    }

    /// GET /auth/{tenant}?permission=... (forward-auth), with `X-API-Key` if given.
    pub async fn forward_auth(
        &self,
        tenant: &str,
        key: Option<&str>,
        permissions: &[&str],
    ) -> Response {
        let query: Vec<String> = permissions
            .iter()
            .map(|p| format!("permission={p}"))
            .collect();
        let mut url = self.url(&format!("/auth/{tenant}"));
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let who = key.map_or(Anonymous, ApiKey);
        self.request(Method::GET, url, tenant, who, None)
            .send()
            .await
            .unwrap()
    }

    /// GET /api/{tenant}/apiKeys/current: the calling key itself.
    pub async fn current(&self, tenant: &str, key: &str) -> Response {
        let url = self.url(&format!("/api/{tenant}/apiKeys/current"));
        self.request(Method::GET, url, tenant, ApiKey(key), None)
            .send()
            .await
            .unwrap()
    }

    /// DELETE /api/{tenant}/apiKeys/current: the calling key revokes itself.
    pub async fn revoke_current(&self, tenant: &str, key: &str) -> Response {
        let url = self.url(&format!("/api/{tenant}/apiKeys/current"));
        self.request(Method::DELETE, url, tenant, ApiKey(key), None)
            .send()
            .await
            .unwrap()
    }
}

/// Asserts an RFC 9457 problem with the given status and stable code; returns the body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    assert_eq!(res.status(), status, "status for {code}");
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["detail"].is_string() && body["type"].is_string());
    body
}
