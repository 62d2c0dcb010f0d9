//! Building and running the server: `Application::build` binds its own listener (port 0 in
//! tests) and loads every tenant before it serves.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, web};
use anyhow::Context;
use secrecy::SecretString;
use tracing_actix_web::TracingLogger;

use crate::auth::JwtVerifier;
use crate::auth::jwks::JwksSource;
use crate::auth::jwt;
use crate::config::Settings;
use crate::domain::{KeyName, TenantId, TokenPrefix};
use crate::error::ApiError;
use crate::index::{Index, TenantKeys};
use crate::routes::{self, json::BodyLimit};
use crate::store::Store;
use crate::telemetry::RequestSpan;
use crate::{usage, watcher};

/// Everything the handlers share.
pub struct AppState {
    pub settings: Settings,
    pub store: Arc<Store>,
    pub index: Arc<Index>,
    pub jwt: JwtVerifier,
    /// Set when `auth.jwks_url` is configured.
    pub jwks: Option<JwksSource>,
    pub prefix: TokenPrefix,
    pub ready: AtomicBool,
}

impl AppState {
    /// When a key was last verified successfully, from the index.
    pub fn last_used(&self, tenant: &TenantId, name: &KeyName) -> Option<time::OffsetDateTime> {
        self.index.keys(tenant)?.get(name)?.last_used()
    }

    /// A tenant's keys from the index, loading it first if it appeared since the last scan.
    pub async fn tenant_keys(&self, tenant: &TenantId) -> Result<Arc<TenantKeys>, ApiError> {
        if let Some(keys) = self.index.keys(tenant) {
            return Ok(keys);
        }
        let store = self.store.clone();
        let t = tenant.clone();
        web::block(move || store.reload(&t))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)?;
        self.index.keys(tenant).ok_or(ApiError::TenantNotFound)
    }
}

pub struct Application {
    port: u16,
    server: Server,
    /// Printed once at start-up in dev mode: a ready admin JWT.
    dev_token: Option<String>,
    state: web::Data<AppState>,
    watch: watcher::PendingWatch,
}

impl Application {
    pub fn build(mut settings: Settings) -> anyhow::Result<Self> {
        let addr = settings.listen_addr()?;
        let dev_token = dev_mode(&mut settings, addr.ip().is_loopback())?;
        let jwt = JwtVerifier::from_settings(&settings.auth).context("cannot load JWT keys")?;
        let jwks = match &settings.auth.jwks_url {
            Some(url) => {
                let source = JwksSource::new(url.clone())?;
                let set = source
                    .fetch_blocking()
                    .with_context(|| format!("cannot fetch the JWKS from {url}"))?;
                jwt.set_jwks(set)
                    .context("the JWKS at auth.jwks_url is not usable")?;
                Some(source)
            }
            None => None,
        };
        let prefix = TokenPrefix::parse(&settings.token_prefix)?;
        let meta = std::fs::metadata(&settings.tenants_dir).with_context(|| {
            format!(
                "cannot read the tenants directory {}",
                settings.tenants_dir.display()
            )
        })?;
        anyhow::ensure!(
            meta.is_dir(),
            "tenants_dir {} is not a directory",
            settings.tenants_dir.display()
        );

        let index = Arc::new(Index::new());
        let store = Arc::new(Store::new(
            settings.tenants_dir.clone(),
            settings.read_only,
            index.clone(),
        ));
        // Watch first: a change made while the tenants load is then never missed.
        let watch = watcher::watch(&store).context("cannot watch the tenants directory")?;
        watcher::load_all(&store).context("initial load of the tenants directory failed")?;
        check_state_dir(&settings)?;
        usage::restore(&index, &settings.state_dir);

        let listener =
            TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(AppState {
            settings,
            store,
            index,
            jwt,
            jwks,
            prefix,
            ready: AtomicBool::new(true),
        });
        let server = run(listener, state.clone())?;
        Ok(Self {
            port,
            server,
            dev_token,
            state,
            watch,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server gracefully (in-flight requests finish), like SIGTERM does.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn dev_token(&self) -> Option<&str> {
        self.dev_token.as_deref()
    }

    /// Serves until SIGTERM/SIGINT; meanwhile watches the tenants directory.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let rescan = Duration::from_secs(self.state.settings.rescan_interval_seconds.max(1));
        let watch = self.watch.run(self.state.store.clone(), rescan);
        let flusher = tokio::spawn(flush_usage_periodically(self.state.clone()));
        let res = self.server.await;
        drop(watch);
        flusher.abort();
        self.state.ready.store(false, Ordering::Release);
        // In-flight requests are done: record their last uses before exiting.
        let state = self.state.clone();
        let flushed =
            tokio::task::spawn_blocking(move || flush_usage(&state, &mut String::new())).await;
        if let Err(e) = flushed {
            tracing::error!(error = %e, "final lastUsedAt flush failed");
        }
        res
    }
}

async fn flush_usage_periodically(state: web::Data<AppState>) {
    let mut last = String::new();
    let mut tick = tokio::time::interval(usage::FLUSH_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = state.clone();
        match tokio::task::spawn_blocking(move || {
            flush_usage(&s, &mut last);
            last
        })
        .await
        {
            Ok(written) => last = written,
            Err(_) => return,
        }
    }
}

fn flush_usage(state: &AppState, last: &mut String) {
    match usage::flush(&state.index, &state.settings.state_dir, last) {
        Ok(written) => *last = written,
        Err(e) => tracing::error!(error = %e, "cannot write lastUsedAt to the state directory"),
    }
}

/// The state directory must not be inside the tenants tree, or ops' git would see it.
fn check_state_dir(settings: &Settings) -> anyhow::Result<()> {
    let tenants = std::fs::canonicalize(&settings.tenants_dir)?;
    let state = absolute(&settings.state_dir)?;
    anyhow::ensure!(
        !state.starts_with(&tenants),
        "state_dir {} is inside tenants_dir {}: keep keyward's state out of the tenants tree",
        settings.state_dir.display(),
        settings.tenants_dir.display()
    );
    Ok(())
}

fn absolute(p: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    match std::fs::canonicalize(p) {
        Ok(c) => Ok(c),
        Err(_) => std::path::absolute(p),
    }
}

/// With no key material on a loopback address, make a secret and a ready admin token.
/// With none on any other address, refuse to start.
fn dev_mode(settings: &mut Settings, loopback: bool) -> anyhow::Result<Option<String>> {
    if settings.auth.has_key_material() {
        return Ok(None);
    }
    anyhow::ensure!(
        loopback,
        "no JWT key material configured (auth.hs256_secret, auth.jwks_file or auth.jwks_url) \
         and `listen` ({}) is not a loopback address: refusing to start an admin API nobody \
         can authenticate to, or anyone could in dev mode",
        settings.listen
    );
    let secret = jwt::generate_dev_secret();
    let token = jwt::mint_dev_token(&settings.auth, &secret, Duration::from_secs(12 * 3600))?;
    settings.auth.hs256_secret = Some(SecretString::from(secret));
    Ok(Some(token))
}

fn run(listener: TcpListener, state: web::Data<AppState>) -> std::io::Result<Server> {
    let server = actix_web::HttpServer::new(move || create_app(state.clone()))
        .listen(listener)?
        .shutdown_timeout(30)
        .run();
    Ok(server)
}

/// Browser dashboards on the configured origins may call the API; nothing else may.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::IF_MATCH,
            actix_web::http::header::HeaderName::from_static("x-api-key"),
        ])
        .expose_headers([
            actix_web::http::header::ETAG,
            actix_web::http::header::LOCATION,
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// The one place the `App` is put together, for the server and the tests alike.
pub fn create_app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = BodyLimit(state.settings.max_body_bytes);
    crate::metrics::handle();
    let cors = cors(&state.settings.cors_allowed_origins);
    App::new()
        .wrap(actix_web::middleware::from_fn(
            crate::metrics::record_request,
        ))
        .wrap(cors)
        .wrap(TracingLogger::<RequestSpan>::new())
        .app_data(state)
        .app_data(limit)
        // The router tries resources in order: the hot path goes first.
        .configure(routes::verify::configure)
        .configure(routes::ops::configure)
        .configure(routes::admin_keys::configure)
        .default_service(web::to(routes::not_found))
}
