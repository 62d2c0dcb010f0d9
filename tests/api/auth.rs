//! Who may call the admin API, checked in an order that keeps tenants from being probed.

use serde_json::json;

use crate::helpers::*;

fn www_authenticate(res: &reqwest::Response) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn no_credential_is_401_with_a_bare_bearer_challenge() {
    let app = spawn_app().await;
    let res = app.list_keys("acme", Anonymous).await;
    assert_eq!(www_authenticate(&res), r#"Bearer realm="keyward""#);
    assert_problem(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn bad_tokens_are_401_invalid_token() {
    let app = spawn_app().await;
    let other_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": now() + 60, "scope": READ, "tenant_id": "acme"}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-another!"),
    )
    .unwrap();
    let cases = [
        ("garbage", "not.a.jwt".to_owned()),
        (
            "expired",
            jwt(json!({"exp": now() - 3600, "scope": READ, "tenant_id": "acme"})),
        ),
        ("no exp", jwt(json!({"scope": READ, "tenant_id": "acme"}))),
        (
            "not yet valid",
            jwt(
                json!({"exp": now() + 7200, "nbf": now() + 3600, "scope": READ, "tenant_id": "acme"}),
            ),
        ),
        ("wrong key", other_key),
        (
            "alg none",
            format!(
                "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.",
                b64(&json!({"exp": now() + 60, "scope": READ, "tenant_id": "acme"}).to_string())
            ),
        ),
    ];
    for (why, token) in cases {
        let res = app.list_keys("acme", &token).await;
        assert_eq!(
            www_authenticate(&res),
            r#"Bearer realm="keyward", error="invalid_token""#,
            "{why}"
        );
        assert_problem(res, 401, "invalid_token").await;
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

#[tokio::test]
async fn a_token_for_another_tenant_is_403_whether_or_not_the_tenant_exists() {
    let app = spawn_app().await;
    let for_globex = token("globex", READ);
    let res = app.list_keys("acme", &for_globex).await;
    assert_problem(res, 403, "tenant_forbidden").await;
    // A tenant that does not exist answers the same: no probing.
    let res = app.list_keys("does-not-exist", &for_globex).await;
    assert_problem(res, 403, "tenant_forbidden").await;
}

#[tokio::test]
async fn an_allowed_but_missing_tenant_is_404() {
    let app = spawn_app().await;
    let all = jwt(json!({"exp": now() + 60, "scope": READ, "tenant_id": "*"}));
    let res = app.list_keys("does-not-exist", &all).await;
    assert_problem(res, 404, "tenant_not_found").await;
    assert!(!app.tenants().join("does-not-exist").exists());
}

#[tokio::test]
async fn a_missing_scope_is_403_insufficient_scope_naming_the_scope() {
    let app = spawn_app().await;
    let res = app
        .create_key_as("acme", json!({"name": "x"}), Reader)
        .await;
    assert_eq!(
        www_authenticate(&res),
        r#"Bearer realm="keyward", error="insufficient_scope", scope="tenant.apiKey:write""#
    );
    assert_problem(res, 403, "insufficient_scope").await;

    let nothing = token("acme", "openid profile");
    let res = app.list_keys("acme", &nothing).await;
    assert_problem(res, 403, "insufficient_scope").await;
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn write_implies_read_and_scp_and_tenant_arrays_work() {
    let app = spawn_app().await;
    let res = app.list_keys("acme", Writer).await;
    assert_eq!(res.status(), 200);
    let scp = jwt(json!({"exp": now() + 60, "scp": [READ], "tenant_id": ["globex", "acme"]}));
    let res = app.list_keys("acme", &scp).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let app = spawn_app_with(|s| {
        s.auth.issuer = Some("https://idp.example".into());
        s.auth.audience = Some("keyward".into());
    })
    .await;
    let base = json!({"exp": now() + 60, "scope": READ, "tenant_id": "acme"});
    let with = |extra: serde_json::Value| {
        let mut c = base.clone();
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        jwt(c)
    };
    let good = with(json!({"iss": "https://idp.example", "aud": "keyward"}));
    assert_eq!(app.list_keys("acme", &good).await.status(), 200);
    for bad in [
        with(json!({"iss": "https://evil.example", "aud": "keyward"})),
        with(json!({"iss": "https://idp.example", "aud": "other"})),
        with(json!({"aud": "keyward"})),
    ] {
        let res = app.list_keys("acme", &bad).await;
        assert_problem(res, 401, "invalid_token").await;
    }
}

/// `canWrite` in `who`'s status of acme.
async fn can_write<'a>(app: &TestApp, who: impl Into<Credential<'a>>) -> serde_json::Value {
    let res = app.status_as("acme", who).await;
    assert_eq!(res.status(), 200);
    res.json::<serde_json::Value>().await.unwrap()["canWrite"].clone()
}

#[tokio::test]
async fn the_status_tells_each_principal_whether_it_may_write() {
    let app = spawn_app().await;
    let read_key = app.new_key("acme", "auditor", &[READ]).await;
    let write_key = app.new_key("acme", "deployer", &[WRITE]).await;

    assert_eq!(can_write(&app, Reader).await, false, "a read-only JWT");
    assert_eq!(can_write(&app, Writer).await, true, "a writer's JWT");
    assert_eq!(
        can_write(&app, ApiKey(&read_key)).await,
        false,
        "a reading key"
    );
    assert_eq!(
        can_write(&app, ApiKey(&write_key)).await,
        true,
        "a writing key"
    );
    // What the console once assumed "may write": a JWT with no scope claim at all.
    let unscoped = jwt(json!({"sub": "a", "exp": now() + 600, "tenant_id": "acme"}));
    let res = app.status_as("acme", &unscoped).await;
    assert_problem(res, 403, "insufficient_scope").await;
    let document: serde_json::Value =
        serde_json::from_str(&app.text("/openapi.json").await).unwrap();
    let field = &document["components"]["schemas"]["TenantStatusView"]["properties"]["canWrite"];
    assert_eq!(field["type"], "boolean", "documented: {field}");
}

#[tokio::test]
async fn a_writer_is_told_it_may_not_write_where_every_write_is_refused() {
    let read_only = spawn_app_with(|s| s.read_only = true).await;
    assert_eq!(
        can_write(&read_only, Writer).await,
        false,
        "a read-only server"
    );
    let res = read_only.create_key("acme", json!({"name": "x"})).await;
    assert_problem(res, 409, "tenant_read_only").await;

    let app = spawn_app().await;
    std::fs::write(app.file("acme"), "apiKeys: [\n").unwrap();
    eventually(
        "acme's file is seen invalid",
        std::time::Duration::from_secs(10),
        || can_write(&app, Writer),
        |v| *v == false,
    )
    .await;
    let res = app.create_key("acme", json!({"name": "x"})).await;
    assert_problem(res, 409, "tenant_file_invalid").await;
}
