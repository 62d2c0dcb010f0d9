//! The hot path: verify, forward-auth, and the calling key itself.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_verdict_is_json_and_never_cached() {
    // Both headers are written by hand on the hot path, not by the response builder.
    let app = spawn_app().await;
    let token = app.new_key("acme", "svc", &["orders:read"]).await;
    for key in [token.as_str(), "kw_nothing"] {
        let res = app.verify("acme", json!({"key": key})).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn verify_reports_each_outcome() {
    let app = spawn_app().await;
    let token = app.new_key("acme", "svc", &["orders:*"]).await;

    let ok = app
        .verdict_for(
            "acme",
            json!({"key": token, "permissions": ["orders:read"]}),
        )
        .await;
    assert_eq!(
        ok,
        json!({"valid": true, "name": "svc", "permissions": ["orders:*"], "expiresAt": null})
    );

    let denied = app
        .verdict_for(
            "acme",
            json!({"key": token, "permissions": ["billing:read"]}),
        )
        .await;
    assert_eq!(
        denied,
        json!({"valid": false, "code": "insufficient_permissions"})
    );

    let cross = app.verdict("globex", &token).await;
    assert_eq!(
        cross["code"], "not_found",
        "a key of acme is never valid for globex"
    );

    let mut broken = token.clone();
    broken.pop();
    broken.push(if token.ends_with('a') { 'b' } else { 'a' });
    let malformed = app.verdict("acme", &broken).await;
    assert_eq!(malformed["code"], "malformed");

    let unknown = app.verdict("acme", "some-imported-key").await;
    assert_eq!(unknown["code"], "not_found");

    app.update_key("acme", "svc", json!({"enabled": false}))
        .await;
    let disabled = app.verdict("acme", &token).await;
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
    app.eventually_valid("globex", "other", true).await;
    let res = app.verdict("globex", "legacy-secret-123").await;
    assert_eq!(res["code"], "expired");
}

#[tokio::test]
async fn forward_auth_answers_204_401_or_403_with_headers() {
    let app = spawn_app().await;
    let token = app
        .new_key("acme", "gw", &["orders:read", "orders:write"])
        .await;

    let res = app
        .forward_auth("acme", Some(&token), &["orders:read", "orders:write"])
        .await;
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["x-keyward-tenant"], "acme");
    assert_eq!(res.headers()["x-keyward-key"], "gw");
    assert_eq!(
        res.headers()["x-keyward-permissions"],
        "orders:read orders:write"
    );

    // Refusals are problems that say why, with the challenge that fits; asked twice, since
    // they are rendered once and reused.
    for _ in 0..2 {
        let res = app.forward_auth("acme", Some(&token), &["admin"]).await;
        assert_eq!(res.status(), 403);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["detail"], "the key lacks a required permission");

        let res = app.forward_auth("acme", None, &[]).await;
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"ApiKey realm="keyward""#
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["detail"], "invalid API key (malformed)");

        let res = app.forward_auth("globex", Some(&token), &[]).await;
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"ApiKey realm="keyward", error="invalid_key""#
        );
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["detail"], "invalid API key (not_found)");
        assert_eq!(body["status"], 401);
    }
}

#[tokio::test]
async fn a_key_can_read_and_revoke_itself() {
    let app = spawn_app().await;
    let token = app.new_key("acme", "self", &["x"]).await;

    let res = app.current("acme", &token).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["name"], "self");
    assert!(body.get("hash").is_none());

    let res = app.revoke_current("acme", &token).await;
    assert_eq!(res.status(), 204);
    assert!(!app.read_file("acme").contains("name: self"));
    let res = app.current("acme", &token).await;
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

#[tokio::test]
async fn forward_auth_refuses_any_query_parameter_but_permission() {
    let app = spawn_app().await;
    let key = app.new_key("acme", "gw", &["orders:read"]).await;
    let auth = |query: &str| {
        app.client
            .get(app.url(&format!("/auth/acme{query}")))
            .header("X-API-Key", &key)
            .send()
    };

    // The typo that meant "any valid key".
    assert_problem(
        auth("?permissions=orders:write").await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_problem(
        auth("?permission=orders:read&tenant=globex").await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(auth("?permission=orders:read").await.unwrap().status(), 204);
    assert_eq!(auth("").await.unwrap().status(), 204);
}

#[tokio::test]
async fn forward_auth_challenges_a_missing_key_as_it_does_a_bad_one() {
    let app = spawn_app().await;
    let missing = app.client.get(app.url("/auth/acme")).send().await.unwrap();
    let challenge = missing.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(challenge, r#"ApiKey realm="keyward""#);
    assert_problem(missing, 401, "invalid_token").await;
}
