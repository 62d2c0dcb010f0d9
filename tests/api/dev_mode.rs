//! Dev mode and the shell it runs in, through the real binary (README, "Quick start"): the
//! banner says `export KEYWARD_TOKEN=...`, and that shell must still start keyward; a token
//! from an earlier start is refused with a reason and a way out; `auth.dev_token` with a
//! configured secret prints a token that outlives a restart.

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::*;

/// A dev-mode `keyward serve`: its stdout holds the banner (text) and the log (JSON).
struct DevServer {
    child: Child,
    port: u16,
    /// The token the banner printed.
    token: String,
    /// Every line written until it was ready.
    output: Vec<String>,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DevServer {
    /// Starts keyward in `dir` with these `KEYWARD_*` (or other) variables added to this
    /// process's environment, and waits until it is ready.
    fn start(dir: &std::path::Path, vars: &[(&str, &str)]) -> Self {
        let mut child = keyward()
            .current_dir(dir)
            .env("KEYWARD_LISTEN", "127.0.0.1:0")
            .env("KEYWARD_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = read_lines(&mut child);
        let mut server = DevServer {
            child,
            port: 0,
            token: String::new(),
            output: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            server.output.push(line.clone());
            if let Some(token) = line.trim().strip_prefix("export KEYWARD_TOKEN=") {
                server.token = token.to_owned();
            }
            let Ok(record) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            let message = record["message"].as_str().unwrap_or_default();
            if message == "keyward listening" {
                server.port = record["port"].as_u64().unwrap() as u16;
            }
            if message.starts_with("keyward ready") {
                assert!(!server.token.is_empty(), "no banner: {:#?}", server.output);
                return server;
            }
        }
        let status = server.child.try_wait().unwrap();
        panic!("never ready (exit: {status:?}): {:#?}", server.output);
    }

    async fn list(&self, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{}/api/acme/admin/apiKeys",
                self.port
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The JSON log records among the output.
    fn records(&self) -> Vec<Value> {
        self.output
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn read_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    rx
}

fn dir_with_acme() -> tempfile::TempDir {
    tenants_with(&[("acme", "apiKeys: []\n")])
}

#[tokio::test]
async fn the_shell_the_banner_set_up_starts_keyward_again_and_again() {
    // Arrange: the first start prints the token the next shell exports, as README says.
    let dir = dir_with_acme();
    let first = DevServer::start(dir.path(), &[]);
    let exported = first.token.clone();
    drop(first);
    let shell = [
        ("KEYWARD_TOKEN", exported.as_str()),
        ("KEYWARD_BIN", "/usr/local/bin/keyward"),
    ];

    // Act: start twice in that shell.
    let second = DevServer::start(dir.path(), &shell);
    drop(second);
    let third = DevServer::start(dir.path(), &shell);

    // Assert: each start warns once per variable, by name, and never shows its value.
    let warned: Vec<String> = third
        .records()
        .iter()
        .filter(|r| r["level"] == "WARN" && r["message"].as_str().unwrap().contains("ignored"))
        .map(|r| r["variable"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(warned, ["KEYWARD_BIN", "KEYWARD_TOKEN"]);
    assert!(
        third.output.iter().all(|l| !l.contains(&exported)),
        "the exported token is never printed back"
    );
    assert_eq!(third.list(&third.token).await.status(), 200);
}

#[tokio::test]
async fn a_bad_value_of_a_real_setting_still_refuses_to_start_naming_it() {
    let dir = dir_with_acme();

    let out = keyward()
        .current_dir(dir.path())
        .env("KEYWARD_LISTEN", "127.0.0.1:0")
        .env("KEYWARD_TOKEN", "eyJhbGciOiJIUzI1NiJ9.e30.sig")
        .env("KEYWARD_RESCAN_INTERVAL_SECONDS", "soon")
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rescan_interval_seconds"), "{stderr}");
    assert!(!stderr.contains("token"), "{stderr}");
}

#[tokio::test]
async fn an_unknown_key_in_the_configuration_file_still_refuses_to_start() {
    let dir = dir_with_acme();
    std::fs::write(dir.path().join("keyward.yml"), "token: abc\n").unwrap();

    let out = keyward()
        .current_dir(dir.path())
        .args(["serve", "--config", "keyward.yml"])
        .env("KEYWARD_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown field"), "{stderr}");
}

#[tokio::test]
async fn a_token_from_an_earlier_dev_start_is_refused_with_the_reason_and_the_way_out() {
    let dir = dir_with_acme();
    let earlier = DevServer::start(dir.path(), &[]).token.clone();
    let server = DevServer::start(dir.path(), &[]);

    let res = server.list(&earlier).await;

    let body = assert_problem(res, 401, "invalid_token").await;
    let detail = body["detail"].as_str().unwrap();
    for words in [
        "bad signature",
        "earlier start",
        "new secret at each start",
        "token printed at this start",
        "auth.hs256_secret",
        "KEYWARD_AUTH__HS256_SECRET",
        "auth.dev_token",
    ] {
        assert!(detail.contains(words), "{words:?} in {detail}");
    }
    assert!(!detail.contains(&earlier) && !detail.contains(&server.token));
    let banner = server.output.join("\n");
    assert!(
        banner.contains("KEYWARD_AUTH__HS256_SECRET") && banner.contains("auth.dev_token"),
        "the banner says how to keep a token: {banner}"
    );
}

#[tokio::test]
async fn outside_dev_mode_a_bad_signature_is_refused_as_before() {
    let app = spawn_app().await;
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"tenant_id": "acme", "scope": READ, "exp": now() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-that-is-32-bytes-long!!"),
    )
    .unwrap();

    let res = app.list_keys("acme", forged.as_str()).await;

    let body = assert_problem(res, 401, "invalid_token").await;
    assert_eq!(body["detail"], "invalid token: bad signature");
}

#[tokio::test]
async fn with_dev_token_and_a_secret_the_printed_token_outlives_a_restart() {
    let dir = dir_with_acme();
    let stable = [
        ("KEYWARD_AUTH__HS256_SECRET", SECRET),
        ("KEYWARD_AUTH__DEV_TOKEN", "true"),
    ];
    let earlier = DevServer::start(dir.path(), &stable).token.clone();

    let server = DevServer::start(dir.path(), &stable);

    assert_eq!(server.list(&earlier).await.status(), 200);
    let banner = server.output.join("\n");
    assert!(banner.contains("stay valid across restarts"), "{banner}");
}

#[tokio::test]
async fn dev_token_is_loopback_only() {
    let dir = dir_with_acme();

    let out = keyward()
        .current_dir(dir.path())
        .env("KEYWARD_LISTEN", "0.0.0.0:0")
        .env("KEYWARD_AUTH__HS256_SECRET", SECRET)
        .env("KEYWARD_AUTH__DEV_TOKEN", "true")
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(2));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("not a loopback address"), "{all}");
    assert!(!all.contains("export KEYWARD_TOKEN"), "{all}");
}
