//! `lastUsedAt` across replicas: two real keyward processes with the same keys, pointed at
//! one real `redis-server` by `usage.redis_url`. A key used through one replica shows its
//! last use on the other; a Redis that goes away stops nothing but the sharing, and the
//! uses made meanwhile reach the other replica once it is back.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::*;

/// Imported keys (no `kw_` prefix): hashed and looked up like any token.
const SHARED: &str = "replica-test-key-used-before-the-outage";
const DURING: &str = "replica-test-key-used-during-the-outage";

/// Generous: the delay is about a second; these tests check values, not time taken.
const DEADLINE: Duration = Duration::from_secs(20);

fn acme_file() -> String {
    let entry = |name: &str, token: &str| {
        let hash: String = Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("  - name: {name}\n    hash: sha256:{hash}\n")
    };
    format!(
        "apiKeys:\n{}{}",
        entry("shared", SHARED),
        entry("during", DURING)
    )
}

/// A replica in a directory of its own, holding the same keys as every other.
fn replica(redis_url: &str) -> (tempfile::TempDir, Server) {
    let dir = tenants_with(&[("acme", &acme_file())]);
    let server = serve_process_with(
        dir.path(),
        &[("KEYWARD_USAGE__REDIS_URL", redis_url.to_owned())],
    );
    (dir, server)
}

async fn get_json(server: &Server, path: &str) -> Value {
    let res = reqwest::Client::new()
        .get(server.url(path))
        .bearer_auth(token("acme", READ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

async fn last_used(server: &Server, key: &str) -> Value {
    get_json(server, &format!("/api/acme/admin/apiKeys/{key}")).await["lastUsedAt"].clone()
}

async fn usage_status(server: &Server) -> Value {
    get_json(server, "/api/acme/admin/status").await["usage"].clone()
}

async fn eventually_connected(server: &Server, connected: bool) -> Value {
    eventually(
        &format!("usage.connected = {connected}"),
        DEADLINE,
        || usage_status(server),
        |u| u["connected"] == connected,
    )
    .await
}

#[tokio::test]
async fn a_key_used_only_through_one_replica_shows_its_last_use_on_the_other() {
    if !redis_available() {
        return;
    }
    let redis = RedisServer::start();
    let (_a_dir, a) = replica(&redis.url());
    let (_b_dir, b) = replica(&redis.url());
    assert_eq!(last_used(&b, "shared").await, Value::Null);

    assert!(a.valid("acme", SHARED).await);
    let used = last_used(&a, "shared").await;
    assert!(used.is_string(), "{used}");

    let on_b = eventually(
        "B shows the use made through A",
        DEADLINE,
        || last_used(&b, "shared"),
        |v| *v == used,
    )
    .await;
    assert_eq!(on_b, used);
    assert_eq!(
        last_used(&b, "during").await,
        Value::Null,
        "unused stays null"
    );
    let status = eventually_connected(&b, true).await;
    assert_eq!(status["store"], "redis");
    assert!(status["since"].is_string(), "{status}");
}

#[tokio::test]
async fn with_redis_down_verification_goes_on_and_a_use_made_meanwhile_reaches_the_other_replica_once_it_is_back()
 {
    if !redis_available() {
        return;
    }
    let mut redis = RedisServer::start();
    let (_a_dir, mut a) = replica(&redis.url());
    let (_b_dir, mut b) = replica(&redis.url());
    eventually_connected(&a, true).await;
    eventually_connected(&b, true).await;

    redis.kill();
    let down = eventually_connected(&b, false).await;
    assert_eq!(down["store"], "redis");
    assert!(down["since"].is_string(), "{down}");
    // Verification goes on, on both, and A keeps its own last use meanwhile.
    assert!(a.valid("acme", DURING).await);
    assert!(b.valid("acme", SHARED).await);
    let used = last_used(&a, "during").await;
    assert!(used.is_string(), "{used}");
    let text = b.metrics().await;
    assert_eq!(sample(&text, "keyward_usage_store_up"), Some(0.0), "{text}");
    let failures = eventually(
        "A counts its failed push",
        DEADLINE,
        || a.metrics(),
        |t| sample(t, "keyward_usage_push_failures_total").is_some_and(|n| n >= 1.0),
    )
    .await;
    assert_eq!(sample(&failures, "keyward_usage_store_up"), Some(0.0));
    eventually_connected(&a, false).await;
    b.wait_for("cannot reach Redis");

    redis.restart();
    let on_b = eventually(
        "B shows the use A made while Redis was down",
        DEADLINE,
        || last_used(&b, "during"),
        |v| *v == used,
    )
    .await;
    assert_eq!(on_b, used);
    eventually_connected(&b, true).await;
    assert_eq!(
        sample(&b.metrics().await, "keyward_usage_store_up"),
        Some(1.0)
    );
    b.wait_for("Redis is reachable again");
    a.wait_for("Redis is reachable again");
    // The outage lasted many cycles: one line said it began, one that it ended.
    for server in [&a, &b] {
        let lines = |needle: &str| server.log.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(lines("cannot reach Redis"), 1, "{:#?}", server.log);
        assert_eq!(lines("Redis is reachable again"), 1, "{:#?}", server.log);
    }
}

#[tokio::test]
async fn a_replica_whose_redis_is_down_at_start_starts_says_so_and_never_logs_the_password() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (_dir, mut server) = replica(&format!(
        "redis://:never-log-this-password@127.0.0.1:{unused}"
    ));

    assert!(server.valid("acme", SHARED).await);
    assert!(
        last_used(&server, "shared").await.is_string(),
        "local fallback"
    );
    let status = eventually_connected(&server, false).await;
    assert_eq!(status["store"], "redis");
    let line = server.wait_for("cannot reach Redis");
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(
        sample(&server.metrics().await, "keyward_usage_store_up"),
        Some(0.0)
    );
    assert!(
        !server
            .log
            .iter()
            .any(|l| l.contains("never-log-this-password")),
        "{:#?}",
        server.log
    );
}

#[test]
fn a_malformed_redis_url_refuses_to_start_naming_the_setting_and_not_the_url() {
    let dir = tenants_with(&[("acme", &acme_file())]);
    for bad in ["cache.internal:6379", "http://:hunter2-secret@cache:6379"] {
        let out = keyward()
            .current_dir(dir.path())
            .env("KEYWARD_USAGE__REDIS_URL", bad)
            .env("KEYWARD_LISTEN", "127.0.0.1:0")
            .env("KEYWARD_AUTH__HS256_SECRET", SECRET)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("usage.redis_url"), "{stderr}");
        assert!(!stderr.contains("hunter2-secret"), "{stderr}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    }
}

#[tokio::test]
async fn without_a_redis_url_last_used_at_is_local_and_no_store_metric_appears() {
    let app = spawn_app().await;

    let status: Value = app.status("acme").await.json().await.unwrap();
    assert_eq!(status["usage"], serde_json::json!({"store": "local"}));
    assert!(!app.metrics().await.contains("keyward_usage_"));
}
