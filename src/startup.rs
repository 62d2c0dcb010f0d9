//! Wiring: `Application::build` makes every part, binds its own listener (port 0 in tests)
//! and starts serving; `run_until_stopped` loads every tenant, then reports ready. Nothing
//! else in the crate imports this module.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{App, web};
use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use tracing_actix_web::TracingLogger;

use crate::auth::jwks::JwksSource;
use crate::auth::{Authenticator, JwtVerifier, jwt};
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::TokenPrefix;
use crate::index::Index;
use crate::keys::{self, Verifier};
use crate::last_good::LastGood;
use crate::metrics::Metrics;
use crate::rate_limit::{Ledger, RateLimits};
use crate::routes::console::Console;
use crate::routes::git::WebhookSecret;
use crate::routes::json::BodyLimits;
use crate::routes::ops::{MetricsAccess, Readiness};
use crate::routes::{self, admin_keys, console, docs, git, ops, self_service, status, verify};
use crate::store::Store;
use crate::usage::{RedisLink, UsageStore};
use crate::{server, telemetry, usage, watcher};

/// What the handlers get, each part registered on its own so a handler names only what it
/// uses.
#[derive(Clone)]
pub struct AppData {
    pub service: web::Data<keys::Service>,
    pub verifier: web::Data<Verifier>,
    pub auth: web::Data<Authenticator>,
    pub metrics: web::Data<Metrics>,
    pub readiness: web::Data<Readiness>,
    pub body_limits: BodyLimits,
    pub metrics_access: web::Data<MetricsAccess>,
    pub webhook_secret: web::Data<WebhookSecret>,
    pub console: web::Data<Console>,
    pub usage: web::Data<UsageStore>,
    pub cors_allowed_origins: Vec<String>,
}

pub struct Application {
    port: u16,
    server: Server,
    /// Printed once at start-up in dev mode: a ready admin JWT.
    dev_token: Option<DevToken>,
    data: AppData,
    index: Arc<Index>,
    watch: watcher::PendingWatch,
    rescan_every: Duration,
    state_dir: PathBuf,
    /// Shares `lastUsedAt` through Redis (`usage.redis_url`); started once tenants load.
    usage_syncer: Option<usage::Syncer>,
}

impl Application {
    /// Builds the server on the system clock.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// Builds the server; `clock` is what every expiry and grace period is measured by.
    pub async fn build_with_clock(mut settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        let addr = settings.listen_addr()?;
        let dev_token = dev_mode(&mut settings, addr.ip().is_loopback())?;
        let console = Console::new(&settings, dev_token.is_some())?;
        let mut jwt = JwtVerifier::from_settings(&settings.auth).context("cannot load JWT keys")?;
        if dev_token.as_ref().is_some_and(|t| !t.stable) {
            jwt = jwt.with_secret_made_at_start();
        }
        let jwks = match &settings.auth.jwks_url {
            Some(url) => {
                let source = JwksSource::new(url.clone())?;
                let set = source
                    .fetch()
                    .await
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
        check_state_dir(&settings)?;

        let store = Arc::new(Store::new(settings.tenants_dir.clone(), settings.read_only));
        store
            .list_tenants()
            .context("cannot list the tenants directory")?;
        let index = Arc::new(Index::new());
        let metrics = Arc::new(Metrics::new(index.clone()));
        let (usage_store, usage_syncer) = usage_store(&settings, &index, &metrics)?;
        let limits = rate_limits(&usage_store, &clock, &metrics);
        let mut service = keys::Service::new(
            store,
            index.clone(),
            LastGood::new(settings.state_dir.clone()),
            metrics.clone(),
            clock.clone(),
            prefix.clone(),
            settings.max_keys_per_tenant,
            limits.clone(),
        );
        if settings.git.enabled {
            service =
                service.with_git(&settings.tenants_dir, &settings.state_dir, &settings.git)?;
        }
        let service = Arc::new(service);
        let verifier = Verifier::new(index.clone(), prefix, clock, metrics.clone())
            .with_ledger(limits.ledger().cloned());
        let auth = Authenticator::new(jwt, jwks, verifier.clone(), service.clone());
        // Watch first: a change made while the tenants load is then never missed.
        let watch =
            watcher::watch(&settings.tenants_dir).context("cannot watch the tenants directory")?;

        let listener =
            TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        let port = listener.local_addr()?.port();
        let data = AppData {
            service: web::Data::from(service),
            verifier: web::Data::new(verifier),
            auth: web::Data::new(auth),
            metrics: web::Data::from(metrics),
            readiness: web::Data::new(Readiness::default()),
            body_limits: BodyLimits {
                max_bytes: settings.max_body_bytes,
                timeout: settings.request_timeout(),
            },
            metrics_access: web::Data::new(MetricsAccess(settings.metrics_token.clone())),
            webhook_secret: web::Data::new(WebhookSecret(settings.git.webhook_secret.clone())),
            console: web::Data::new(console),
            usage: web::Data::new(usage_store),
            cors_allowed_origins: settings.cors_allowed_origins.clone(),
        };
        if settings.metrics_token.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "/metrics names every tenant and is open to anyone who reaches {addr}: set metrics_token");
        }
        let limits = server::Limits {
            request_timeout: settings.request_timeout(),
            write_timeout: settings.write_timeout(),
            max_connections: connection_cap(settings.max_connections, raise_nofile_limit()),
        };
        let app_data = data.clone();
        let server = server::serve(listener, limits, move || create_app(app_data.clone()))?;
        Ok(Self {
            port,
            server,
            dev_token,
            data,
            index,
            watch,
            rescan_every: Duration::from_secs(settings.rescan_interval_seconds.max(1)),
            state_dir: settings.state_dir,
            usage_syncer,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server gracefully (in-flight requests finish), like SIGTERM does.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn dev_token(&self) -> Option<&str> {
        self.dev_token.as_ref().map(|t| t.token.as_str())
    }

    /// Dev mode: whether the printed token stays valid across restarts (it is signed with
    /// the configured `auth.hs256_secret`, not a secret made at this start).
    pub fn dev_token_is_stable(&self) -> bool {
        self.dev_token.as_ref().is_some_and(|t| t.stable)
    }

    /// Loads every tenant while already answering `/healthz` (and `/readyz` with 503), then
    /// watches the tenants directory and reports ready; serves until SIGTERM/SIGINT.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let service = self.data.service.clone().into_inner();
        let readiness = self.data.readiness.clone();
        let (index, state_dir) = (self.index.clone(), self.state_dir.clone());
        let (watch, rescan_every) = (self.watch, self.rescan_every);
        let usage_syncer = self.usage_syncer;
        let starting = tokio::spawn(async move {
            let loader = service.clone();
            let loaded = tokio::task::spawn_blocking(move || loader.load_all()).await;
            if let Err(e) = loaded.map_err(anyhow::Error::from).and_then(|r| Ok(r?)) {
                tracing::error!(error = %e, "initial load of the tenants directory failed");
                handle.stop(false).await;
                return None;
            }
            usage::restore(&index, &state_dir);
            // git mode serves commits, which its worker follows: the work tree is not watched.
            let watching = service
                .git()
                .is_none()
                .then(|| watch.run(service, rescan_every));
            let flusher = usage::flush_periodically(index, state_dir);
            let sharing = usage_syncer.map(usage::Syncer::spawn);
            readiness.set(true);
            tracing::info!("keyward ready: every tenant is loaded");
            Some((watching, flusher, sharing))
        });
        let res = self.server.await;
        self.data.readiness.set(false);
        if let Ok(Some((watching, flusher, sharing))) = starting.await {
            drop(watching);
            flusher.abort();
            if let Some(sharing) = sharing {
                sharing.finish().await;
            }
        }
        // In-flight requests are done: record their last uses, and finish writing the
        // snapshots the start-up deferred, before exiting.
        let (index, dir) = (self.index, self.state_dir);
        let service = self.data.service.clone().into_inner();
        let flushed = tokio::task::spawn_blocking(move || {
            usage::flush_logged(&index, &dir, String::new());
            service.finish_background();
            if let Some(git) = service.git() {
                git.stop();
            }
        })
        .await;
        if let Err(e) = flushed {
            tracing::error!(error = %e, "final lastUsedAt flush failed");
        }
        res
    }
}

/// Where `lastUsedAt` is kept: this replica only, or shared through Redis by a syncer
/// that notes uses from the start (so it is made before any tenant loads).
fn usage_store(
    settings: &Settings,
    index: &Arc<Index>,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<(UsageStore, Option<usage::Syncer>)> {
    let Some(url) = &settings.usage.redis_url else {
        return Ok((UsageStore::Local, None));
    };
    let link = RedisLink::open(url, usage::REDIS_URL_SETTING)?;
    let syncer = usage::Syncer::new(link.clone(), index.clone(), metrics.clone());
    let replicas = settings.usage.replicas;
    Ok((UsageStore::Redis { link, replicas }, Some(syncer)))
}

/// Rate limits: in memory, or held across the replicas sharing the usage store's Redis.
fn rate_limits(usage: &UsageStore, clock: &Clock, metrics: &Arc<Metrics>) -> RateLimits {
    match usage {
        UsageStore::Local => RateLimits::in_memory(clock.clone()),
        UsageStore::Redis { link, replicas } => {
            let counter = crate::usage::RedisCounter::new(link.clone(), metrics.clone());
            let ledger = Ledger::new(counter, *replicas);
            RateLimits::shared(clock.clone(), ledger)
        }
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

/// Descriptors kept for everything but connections: tenant files and their temp files,
/// the watcher, git's pipes, the state directory, logs.
const RESERVED_DESCRIPTORS: u64 = 256;

/// The default cap on connections, when the descriptor limit allows it: with every
/// connection holding one answer at most, it also bounds the memory clients can pin.
const DEFAULT_MAX_CONNECTIONS: u64 = 1024;

/// Raises the soft limit on open descriptors to the hard one (the soft default, 1024, is
/// far below what a server needs); returns the limit now in force.
fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The connection cap: the configured one, or as many as leave `RESERVED_DESCRIPTORS` free
/// (up to `DEFAULT_MAX_CONNECTIONS`).
fn connection_cap(configured: Option<usize>, nofile: u64) -> usize {
    let room = nofile.saturating_sub(RESERVED_DESCRIPTORS).max(16);
    match configured {
        Some(cap) => {
            if cap as u64 > room {
                tracing::warn!(
                    max_connections = cap,
                    open_file_limit = nofile,
                    "max_connections leaves too few descriptors for files, git and the \
                     watcher under the open-file limit: writes and reloads may fail under load"
                );
            }
            cap
        }
        None => room.min(DEFAULT_MAX_CONNECTIONS) as usize,
    }
}

/// The admin token dev mode prints, and whether it outlives this start.
struct DevToken {
    token: String,
    /// Signed with the configured `auth.hs256_secret`: valid across restarts.
    stable: bool,
}

/// With no key material on a loopback address, make a secret and a ready admin token; with
/// `auth.dev_token`, sign that token with the configured secret instead. With none on any
/// other address, refuse to start.
fn dev_mode(settings: &mut Settings, loopback: bool) -> anyhow::Result<Option<DevToken>> {
    let auth = &settings.auth;
    if auth.has_key_material() && !auth.dev_token {
        return Ok(None);
    }
    anyhow::ensure!(
        loopback,
        "no JWT key material configured (auth.hs256_secret, auth.jwks_file or auth.jwks_url), \
         or auth.dev_token set, and `listen` ({}) is not a loopback address: refusing to start \
         an admin API nobody can authenticate to, or anyone could in dev mode",
        settings.listen
    );
    let ttl = Duration::from_secs(12 * 3600);
    if let Some(secret) = &auth.hs256_secret {
        let token = jwt::mint_dev_token(auth, secret.expose_secret(), ttl)?;
        return Ok(Some(DevToken {
            token,
            stable: true,
        }));
    }
    anyhow::ensure!(
        !auth.has_key_material(),
        "auth.dev_token signs with auth.hs256_secret, which is not set"
    );
    let secret = jwt::generate_dev_secret();
    let token = jwt::mint_dev_token(auth, &secret, ttl)?;
    settings.auth.hs256_secret = Some(SecretString::from(secret));
    Ok(Some(DevToken {
        token,
        stable: false,
    }))
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
            actix_web::http::header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            actix_web::http::header::ETAG,
            actix_web::http::header::LOCATION,
            actix_web::http::header::LINK,
            actix_web::http::header::HeaderName::from_static("idempotent-replayed"),
            actix_web::http::header::HeaderName::from_static(routes::requests::TOTAL_COUNT),
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// The one place the `App` is put together, for the server and the tests alike.
///
/// Three layers, tried in order (the router tries resources in registration order):
/// - the verify routes, with no middleware at all: a gateway's check logs nothing and is
///   counted by `keyward_verify_total` only, since per-request metrics, CORS and a span
///   each cost the hot path measurable throughput (BENCHMARKS.md);
/// - the probes and `/metrics`, with request metrics and CORS;
/// - everything else, also inside a request span with a request id.
pub fn create_app(
    data: AppData,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(data.service)
        .app_data(data.verifier)
        .app_data(data.auth)
        .app_data(data.metrics)
        .app_data(data.readiness)
        .app_data(data.body_limits)
        .app_data(data.metrics_access)
        .app_data(data.webhook_secret)
        .app_data(data.console)
        .app_data(data.usage)
        .configure(verify::configure_hot)
        .configure(routes::ext_authz::configure_hot)
        .service(
            web::scope("")
                .wrap(actix_web::middleware::from_fn(routes::record_metrics))
                .wrap(cors(&data.cors_allowed_origins))
                .configure(ops::configure_hot)
                .service(
                    web::scope("")
                        .wrap(TracingLogger::<telemetry::RequestSpan>::new())
                        .configure(admin_keys::configure)
                        .configure(status::configure)
                        .configure(routes::tenants::configure)
                        .configure(self_service::configure)
                        .configure(docs::configure)
                        .configure(git::configure)
                        .configure(console::configure)
                        .default_service(web::to(routes::not_found)),
                ),
        )
}
