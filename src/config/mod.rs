//! Settings: built-in defaults <- YAML file <- `KEYWARD_*` environment variables.
//!
//! The file is strict: a key that names no setting refuses to start. The environment is
//! not the operator's alone, so a `KEYWARD_*` variable that names no setting is left out
//! with a warning (`env`).

mod env;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// Everything `keyward serve` needs, after defaults, file and environment are merged.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub listen: String,
    pub tenants_dir: PathBuf,
    pub token_prefix: String,
    pub read_only: bool,
    pub rescan_interval_seconds: u64,
    pub max_body_bytes: usize,
    /// Creates through the API stop at this many keys in one tenant (ops may add more by
    /// editing the file).
    pub max_keys_per_tenant: usize,
    pub log_format: LogFormat,
    pub cors_allowed_origins: Vec<String>,
    pub state_dir: PathBuf,
    /// When set, `/metrics` needs `Authorization: Bearer <metrics_token>`.
    pub metrics_token: Option<SecretString>,
    /// Headers, then the body, must each arrive within this many seconds (408 otherwise).
    pub request_timeout_seconds: u64,
    /// An answer that the client does not take within this many seconds (it stopped
    /// reading) is dropped with its connection, and the memory it held is freed.
    pub write_timeout_seconds: u64,
    /// Open connections on the listener at most; past it, new ones wait in the kernel's
    /// queue. None: as many as the descriptor limit allows after keeping some for files,
    /// git and the watcher. Each holds at most one answer, so this also bounds memory.
    pub max_connections: Option<usize>,
    pub git: GitSettings,
    pub auth: AuthSettings,
    pub console: ConsoleSettings,
    pub usage: UsageSettings,
    /// `KEYWARD_*` variables that name no setting, left out (names only, never values).
    #[serde(skip)]
    pub ignored_variables: Vec<String>,
}

/// Where `lastUsedAt` is kept, and rate limits shared (README, "lastUsedAt across
/// replicas", "Rate limits").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageSettings {
    /// None: in `state_dir` only, this replica's own uses. Set: every replica pointed at
    /// this Redis shares its uses. A secret: the URL may carry a password.
    pub redis_url: Option<SecretString>,
    /// How many replicas share `redis_url`: while Redis is unreachable, each enforces a
    /// key's limit divided by this, so the cluster as a whole still holds it.
    pub replicas: u32,
}

impl Default for UsageSettings {
    fn default() -> Self {
        Self {
            redis_url: None,
            replicas: 1,
        }
    }
}

/// The browser console at `/` (README, "Console: keys in the browser").
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// The OpenID Connect client (public, authorization code + PKCE) the console signs in
    /// as at `auth.issuer`. None: people sign in by pasting a token.
    pub client_id: Option<String>,
    /// The scopes the console asks the provider for.
    pub scope: String,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            client_id: None,
            scope: "openid tenant.apiKey:read tenant.apiKey:write".into(),
        }
    }
}

/// Git mode (README, "Git mode"): every API write a commit, the clone kept in step with its remote.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitSettings {
    /// true: `tenants_dir` must be inside a git work tree.
    pub enabled: bool,
    /// None: commit only, never fetch or push.
    pub remote: Option<String>,
    pub branch: String,
    pub push: PushMode,
    /// Fetch and replay every this many seconds; 0: only on the webhook and SIGHUP.
    pub pull_interval_seconds: u64,
    /// Enables `POST /hooks/git` (GitHub `X-Hub-Signature-256`, GitLab `X-Gitlab-Token`).
    pub webhook_secret: Option<SecretString>,
    /// The longest a `sync` write waits for the remote, its push and the question of
    /// whether it landed included; past it the answer is 504 `outcome_unknown`.
    pub push_timeout_seconds: u64,
}

/// When an API write is acknowledged in git mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PushMode {
    /// Once the remote has it.
    Sync,
    /// Once committed locally; pushes follow in the background, retried.
    Async,
}

impl Default for GitSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            remote: Some("origin".into()),
            branch: "main".into(),
            push: PushMode::Sync,
            pull_interval_seconds: 10,
            webhook_secret: None,
            push_timeout_seconds: 30,
        }
    }
}

/// How callers of the admin API prove who they are.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The claim that lists the tenants a token may act on.
    pub tenant_claim: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub leeway_seconds: u64,
    pub hs256_secret: Option<SecretString>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    /// Dev mode with `hs256_secret` (loopback only): print an admin token signed with it at
    /// each start, so that it and those printed before stay valid across restarts. Off by
    /// default: a loopback server behind a local gateway must not print admin tokens.
    pub dev_token: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            tenants_dir: "tenants".into(),
            token_prefix: "kw".into(),
            read_only: false,
            rescan_interval_seconds: 60,
            max_body_bytes: 65536,
            max_keys_per_tenant: 10_000,
            log_format: LogFormat::Text,
            cors_allowed_origins: Vec::new(),
            state_dir: "state".into(),
            metrics_token: None,
            request_timeout_seconds: 10,
            write_timeout_seconds: 10,
            max_connections: None,
            git: GitSettings::default(),
            auth: AuthSettings::default(),
            console: ConsoleSettings::default(),
            usage: UsageSettings::default(),
            ignored_variables: Vec::new(),
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            tenant_claim: "tenant_id".into(),
            issuer: None,
            audience: None,
            leeway_seconds: 30,
            hs256_secret: None,
            jwks_file: None,
            jwks_url: None,
            dev_token: false,
        }
    }
}

impl AuthSettings {
    /// True when no way to check a JWT is configured (dev mode on loopback).
    pub fn has_key_material(&self) -> bool {
        self.hs256_secret.is_some() || self.jwks_file.is_some() || self.jwks_url.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration")]
    Source(#[from] config::ConfigError),
    #[error("invalid `listen` address {0:?}: expected host:port, e.g. 127.0.0.1:8080")]
    Listen(String),
    #[error("invalid `token_prefix` {0:?}: 1 to 16 characters of [A-Za-z0-9]")]
    TokenPrefix(String),
    #[error("`max_body_bytes` must be at least 1024")]
    MaxBody,
    #[error("`request_timeout_seconds` must be between 1 and 300")]
    RequestTimeout,
    #[error("`write_timeout_seconds` must be between 1 and 300")]
    WriteTimeout,
    #[error("`max_connections` must be at least 1")]
    MaxConnections,
    #[error("`metrics_token` must be at least 16 characters")]
    MetricsToken,
    #[error(
        "`git.webhook_secret` must be at least 16 bytes: anyone who guesses it can make \
         keyward pull (and an empty one lets an empty X-Gitlab-Token in)"
    )]
    WebhookSecret,
    #[error("the environment variable {0} is not valid Unicode")]
    NotUnicode(String),
    #[error(
        "invalid entry {0:?} in `cors_allowed_origins`: expected an origin like https://dash.example.com"
    )]
    CorsOrigin(String),
    #[error(transparent)]
    RedisUrl(#[from] crate::usage::BadRedisUrl),
    #[error("`usage.replicas` must be at least 1")]
    Replicas,
}

impl Settings {
    /// Reads `path` (when it exists, or always when `required`), then `KEYWARD_*` overrides.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let file = config::File::from(path)
            .format(config::FileFormat::Yaml)
            .required(required);
        let (variables, ignored) = env::setting_variables(std::env::vars_os())?;
        let environment = config::Environment::with_prefix(env::PREFIX)
            .prefix_separator("_")
            .separator(env::SEPARATOR)
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("cors_allowed_origins")
            .source(Some(variables));
        let mut settings: Settings = config::Config::builder()
            .add_source(file)
            .add_source(environment)
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        settings.ignored_variables = ignored;
        Ok(settings)
    }

    /// One warning per ignored `KEYWARD_*` variable; called once logging is set up (the
    /// settings say how to log, so they are read before it).
    pub fn warn_ignored_variables(&self) {
        for name in &self.ignored_variables {
            tracing::warn!(
                variable = %name,
                "environment variable ignored: it names no keyward setting"
            );
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.listen_addr()?;
        let p = &self.token_prefix;
        if p.is_empty() || p.len() > 16 || !p.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigError::TokenPrefix(p.clone()));
        }
        if self.max_body_bytes < 1024 {
            return Err(ConfigError::MaxBody);
        }
        if !(1..=300).contains(&self.request_timeout_seconds) {
            return Err(ConfigError::RequestTimeout);
        }
        if !(1..=300).contains(&self.write_timeout_seconds) {
            return Err(ConfigError::WriteTimeout);
        }
        if self.max_connections == Some(0) {
            return Err(ConfigError::MaxConnections);
        }
        if too_short(self.metrics_token.as_ref()) {
            return Err(ConfigError::MetricsToken);
        }
        if too_short(self.git.webhook_secret.as_ref()) {
            return Err(ConfigError::WebhookSecret);
        }
        for origin in &self.cors_allowed_origins {
            if !is_origin(origin) {
                return Err(ConfigError::CorsOrigin(origin.clone()));
            }
        }
        if let Some(url) = &self.usage.redis_url {
            crate::usage::check_url(url, crate::usage::REDIS_URL_SETTING)?;
        }
        if self.usage.replicas == 0 {
            return Err(ConfigError::Replicas);
        }
        Ok(())
    }

    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_timeout_seconds)
    }

    pub fn write_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.write_timeout_seconds)
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|_| ConfigError::Listen(self.listen.clone()))
    }
}

/// A shared secret shorter than 16 bytes can be guessed (and an empty one matches an empty
/// header).
fn too_short(secret: Option<&SecretString>) -> bool {
    secret.is_some_and(|s| secrecy::ExposeSecret::expose_secret(s).len() < 16)
}

/// `scheme://host[:port]` and nothing more, as browsers send it in `Origin`.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn the_file_is_read_and_keyward_env_vars_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.yml");
        std::fs::write(
            &path,
            "listen: 127.0.0.1:9999\ntoken_prefix: acme\nauth:\n  leeway_seconds: 5\n",
        )
        .unwrap();
        // SAFETY: no other test reads or writes these variables.
        unsafe {
            std::env::set_var("KEYWARD_READ_ONLY", "true");
            std::env::set_var(
                "KEYWARD_AUTH__HS256_SECRET",
                "from-the-environment-0123456789abcdef",
            );
        }
        let s = Settings::load(&path, true).unwrap();
        unsafe {
            std::env::remove_var("KEYWARD_READ_ONLY");
            std::env::remove_var("KEYWARD_AUTH__HS256_SECRET");
        }
        assert_eq!(s.listen, "127.0.0.1:9999");
        assert_eq!(s.token_prefix, "acme");
        assert_eq!(s.auth.leeway_seconds, 5);
        assert!(s.read_only);
        assert_eq!(
            s.auth.hs256_secret.unwrap().expose_secret(),
            "from-the-environment-0123456789abcdef"
        );
        assert_eq!(s.rescan_interval_seconds, 60, "defaults fill the rest");
    }

    #[test]
    fn bad_files_and_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.yml");
        assert!(
            Settings::load(&path, true).is_err(),
            "a named file must exist"
        );
        assert!(
            Settings::load(&path, false).is_ok(),
            "the default file may be absent"
        );
        for bad in [
            "listen: nowhere\n",
            "token_prefix: a_b\n",
            "unknown_field: 1\n",
            "cors_allowed_origins: [dash.example]\n",
            "cors_allowed_origins: ['https://a.example/path']\n",
            "listen: [\n",
            "git: {webhook_secret: ''}\n",
            "git: {webhook_secret: fifteen-bytes!!}\n",
            "max_connections: 0\n",
            "write_timeout_seconds: 0\n",
            "usage: {redis_url: 'localhost:6379'}\n",
            "usage: {redis_url: 'http://cache:6379'}\n",
            "usage: {replicas: 0}\n",
            "usage: {replicas: -1}\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(Settings::load(&path, true).is_err(), "{bad}");
        }
    }
}
