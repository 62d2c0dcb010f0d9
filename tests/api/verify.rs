//! The hot path: verify, forward-auth, and the calling key itself.

use serde_json::{Value, json};

use crate::helpers::*;

async fn verify(app: &TestApp, tenant: &str, body: Value) -> Value {
    let res = app
        .client
        .post(app.url(&format!("/api/{tenant}/apiKeys/verify")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

#[tokio::test]
async fn verify_reports_each_outcome() {
    let app = spawn_app().await;
    let token = app.new_key("acme", "svc", &["orders:*"]).await;

    let ok = verify(
        &app,
        "acme",
        json!({"key": token, "permissions": ["orders:read"]}),
    )
    .await;
    assert_eq!(
        ok,
        json!({"valid": true, "name": "svc", "permissions": ["orders:*"], "expiresAt": null})
    );

    let denied = verify(
        &app,
        "acme",
        json!({"key": token, "permissions": ["billing:read"]}),
    )
    .await;
    assert_eq!(
        denied,
        json!({"valid": false, "code": "insufficient_permissions"})
    );

    let cross = verify(&app, "globex", json!({"key": token})).await;
    assert_eq!(
        cross["code"], "not_found",
        "a key of acme is never valid for globex"
    );

    let mut broken = token.clone();
    broken.pop();
    broken.push(if token.ends_with('a') { 'b' } else { 'a' });
    let malformed = verify(&app, "acme", json!({"key": broken})).await;
    assert_eq!(malformed["code"], "malformed");

    let unknown = verify(&app, "acme", json!({"key": "some-imported-key"})).await;
    assert_eq!(unknown["code"], "not_found");

    app.client
        .put(app.keys_url("acme") + "/svc")
        .bearer_auth(writer("acme"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    let disabled = verify(&app, "acme", json!({"key": token})).await;
    assert_eq!(
        disabled["code"], "disabled",
        "read-your-writes: the index is updated"
    );
}

#[tokio::test]
async fn hand_written_bare_hex_hashes_of_any_string_verify() {
    let app = spawn_app().await;
    let digest = keyward::domain::KeyHash::of(b"legacy-secret-123").to_string();
    let bare = digest.trim_start_matches("sha256:");
    std::fs::write(
        app.file("globex"),
        format!("apiKeys:\n  - name: legacy\n    hash: {bare}\n    expiresAt: 2001-01-01T00:00:00Z\n  - name: old\n    hash: {}\n", keyward::domain::KeyHash::of(b"other")),
    )
    .unwrap();
    // The watcher picks the hand edit up.
    let mut res = json!(null);
    for _ in 0..100 {
        res = verify(&app, "globex", json!({"key": "other"})).await;
        if res["valid"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(res["valid"], true, "{res}");
    let res = verify(&app, "globex", json!({"key": "legacy-secret-123"})).await;
    assert_eq!(res["code"], "expired");
}

#[tokio::test]
async fn forward_auth_answers_204_401_or_403_with_headers() {
    let app = spawn_app().await;
    let token = app
        .new_key("acme", "gw", &["orders:read", "orders:write"])
        .await;

    let res = app
        .client
        .get(app.url("/auth/acme?permission=orders:read&permission=orders:write"))
        .header("X-API-Key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["x-keyward-tenant"], "acme");
    assert_eq!(res.headers()["x-keyward-key"], "gw");
    assert_eq!(
        res.headers()["x-keyward-permissions"],
        "orders:read orders:write"
    );

    let res = app
        .client
        .get(app.url("/auth/acme?permission=admin"))
        .header("X-API-Key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let res = app.client.get(app.url("/auth/acme")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(app.url("/auth/globex"))
        .header("X-API-Key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn a_key_can_read_and_revoke_itself() {
    let app = spawn_app().await;
    let token = app.new_key("acme", "self", &["x"]).await;
    let url = app.url("/api/acme/apiKeys/current");

    let res = app
        .client
        .get(&url)
        .header("X-API-Key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "self");
    assert!(body.get("hash").is_none());

    let res = app
        .client
        .delete(&url)
        .header("X-API-Key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(!app.read_file("acme").contains("name: self"));
    let res = app
        .client
        .get(&url)
        .header("X-API-Key", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn health_and_readiness_answer_without_credentials() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
}
