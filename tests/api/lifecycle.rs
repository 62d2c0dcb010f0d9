//! Expiry, rotation with grace, lastUsedAt across restarts, API keys as admin principals.
//! Expiry and grace are measured by the server's clock, which these tests move by hand.

use std::time::Duration;

use keyward::clock::Clock;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::*;

/// An app whose clock stands still until the test advances it.
async fn spawn_app_with_manual_clock() -> TestApp {
    spawn_app_with_clock(Clock::manual(OffsetDateTime::now_utc()), |_| {}).await
}

async fn token_of(res: reqwest::Response) -> String {
    res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_key_stops_working_when_its_expiry_passes() {
    // Arrange
    let app = spawn_app_with_manual_clock().await;
    let res = app
        .create_key(
            "acme",
            json!({"name": "short", "expiresAt": app.in_seconds(2)}),
        )
        .await;
    let token = token_of(res).await;
    assert_eq!(app.verdict("acme", &token).await["valid"], true);
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(app.verdict("acme", &token).await["valid"], true);

    // Act
    app.clock.advance(Duration::from_secs(2));

    // Assert
    assert_eq!(app.verdict("acme", &token).await["code"], "expired");
}

#[tokio::test]
async fn expiry_must_be_in_the_future_on_put_and_null_clears_it() {
    let app = spawn_app_with_manual_clock().await;
    app.create_key(
        "acme",
        json!({"name": "k", "expiresAt": app.in_seconds(600)}),
    )
    .await;

    let res = app
        .update_key(
            "acme",
            "k",
            json!({"enabled": true, "expiresAt": app.in_seconds(-5)}),
        )
        .await;
    assert_problem(res, 422, "validation_failed").await;
    let res = app
        .update_key("acme", "k", json!({"enabled": true, "expiresAt": null}))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["expiresAt"], Value::Null);
}

#[tokio::test]
async fn rotation_without_grace_stops_the_old_token_at_once() {
    let app = spawn_app().await;
    let old = app.new_key("acme", "svc", &["orders:read"]).await;

    let res = app.rotate_key("acme", "svc", None).await;

    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers().get("etag").is_some());
    let body: Value = res.json().await.unwrap();
    let new = body["token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(body["permissions"], json!(["orders:read"]));
    assert_eq!(app.verdict("acme", new).await["valid"], true);
    assert_eq!(app.verdict("acme", &old).await["valid"], false);
    assert!(!app.read_file("acme").contains("previousHashes"));
}

#[tokio::test]
async fn rotation_with_grace_keeps_the_old_token_until_the_grace_ends() {
    // Arrange
    let app = spawn_app_with_manual_clock().await;
    let old = app.new_key("acme", "svc", &[]).await;

    // Act
    let res = app
        .rotate_key("acme", "svc", Some(json!({"gracePeriodSeconds": 2})))
        .await;
    let new = token_of(res).await;

    // Assert
    assert_eq!(app.verdict("acme", &old).await["valid"], true);
    assert_eq!(app.verdict("acme", &new).await["valid"], true);
    assert!(app.read_file("acme").contains("previousHashes:"));
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(app.verdict("acme", &old).await["valid"], true);
    app.clock.advance(Duration::from_secs(2));
    assert_eq!(app.verdict("acme", &old).await["code"], "expired");
    assert_eq!(app.verdict("acme", &new).await["valid"], true);

    // The next write of the entry drops the finished grace period.
    app.rotate_key("acme", "svc", None).await;
    assert!(!app.read_file("acme").contains("previousHashes"));
}

#[tokio::test]
async fn a_grace_period_never_outlives_the_key_and_expiry_is_kept() {
    let app = spawn_app().await;
    let expiry = app.in_seconds(60);
    app.create_key("acme", json!({"name": "svc", "expiresAt": expiry}))
        .await;

    let res = app
        .rotate_key("acme", "svc", Some(json!({"gracePeriodSeconds": 86400})))
        .await;

    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expiresAt"], expiry.as_str());
    let file = keyward::store::SecurityFile::parse(&app.read_file("acme")).unwrap();
    let entry = file.keys.iter().find(|k| k.name.as_str() == "svc").unwrap();
    assert_eq!(entry.previous_hashes.len(), 1);
    assert_eq!(Some(entry.previous_hashes[0].expires_at), entry.expires_at);
}

#[tokio::test]
async fn bad_rotation_requests_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let res = app
        .rotate_key(
            "acme",
            "ci-deploy",
            Some(json!({"gracePeriodSeconds": 2592001})),
        )
        .await;
    assert_problem(res, 422, "validation_failed").await;
    let res = app
        .rotate_key("acme", "ci-deploy", Some(json!({"grace": 1})))
        .await;
    assert_problem(res, 400, "invalid_request").await;
    let res = app.rotate_key("acme", "nope", None).await;
    assert_problem(res, 404, "key_not_found").await;
    let res = app
        .rotate_key_as("acme", "ci-deploy", None, Writer, Some("\"stale\""))
        .await;
    assert_problem(res, 412, "precondition_failed").await;
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

async fn get_used(app: &TestApp) -> Value {
    app.get_key("acme", "used").await.json().await.unwrap()
}

// On the system clock on purpose: what is checked is the flush to disk and the restart.
#[tokio::test]
async fn last_used_at_is_recorded_and_survives_a_restart() {
    let app = spawn_app().await;
    let key = app.new_key("acme", "used", &[]).await;
    assert_eq!(get_used(&app).await["lastUsedAt"], Value::Null);

    assert_eq!(app.verdict("acme", &key).await["valid"], true);
    let used = get_used(&app).await["lastUsedAt"].clone();
    assert!(used.is_string(), "{used}");

    let dir = app.stop().await;
    assert!(dir.path().join("state/last_used.json").exists());
    let app = spawn_app_on(dir, |_| {}).await;

    assert_eq!(get_used(&app).await["lastUsedAt"], used);
}

#[tokio::test]
async fn a_state_dir_inside_the_tenants_tree_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tenants")).unwrap();
    let mut s = settings_for(dir.path());
    s.state_dir = dir.path().join("tenants/.state");
    let err = keyward::startup::Application::build(s)
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("state_dir"), "{err:#}");
}

/// A key allowed to manage acme's keys, holding `orders:read` besides.
async fn admin_key(app: &TestApp, admin_perm: &str) -> String {
    app.new_key("acme", "automation", &[admin_perm, "orders:read"])
        .await
}

#[tokio::test]
async fn an_api_key_with_write_rights_manages_its_tenant_within_its_own_permissions() {
    let app = spawn_app().await;
    let key = admin_key(&app, WRITE).await;

    let res = app
        .create_key_as(
            "acme",
            json!({"name": "child", "permissions": ["orders:read"]}),
            ApiKey(&key),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.json::<Value>().await.unwrap()["createdBy"],
        "apikey:automation"
    );

    let list = app.list_keys("acme", ApiKey(&key)).await;
    assert_eq!(list.status(), 200);
}

#[tokio::test]
async fn an_api_key_can_never_grant_or_take_over_more_than_it_holds() {
    let app = spawn_app().await;
    let key = admin_key(&app, WRITE).await;
    let who = ApiKey(&key);
    let before = app.read_file("acme");

    let attempts = [
        app.create_key_as(
            "acme",
            json!({"name": "evil", "permissions": ["orders:write"]}),
            who,
        )
        .await,
        app.create_key_as("acme", json!({"name": "evil", "permissions": ["*"]}), who)
            .await,
        app.update_key_as(
            "acme",
            "automation",
            json!({"enabled": true, "permissions": ["tenant.apiKey:write", "orders:*"]}),
            who,
            None,
        )
        .await,
        // ci-deploy holds orders:write, which the caller lacks.
        app.update_key_as("acme", "ci-deploy", json!({"enabled": true}), who, None)
            .await,
        app.rotate_key_as("acme", "ci-deploy", None, who, None)
            .await,
        app.delete_key_as("acme", "ci-deploy", who, None).await,
    ];
    for res in attempts {
        assert_eq!(res.status(), 403, "{}", res.url());
    }
    assert_eq!(app.read_file("acme"), before);
}

#[tokio::test]
async fn api_key_principals_are_held_to_scope_and_tenant() {
    let app = spawn_app().await;
    let reader = admin_key(&app, READ).await;
    let plain = app.new_key("acme", "plain", &["orders:read"]).await;

    let res = app.list_keys("acme", ApiKey(&reader)).await;
    assert_eq!(res.status(), 200);
    let res = app
        .create_key_as("acme", json!({"name": "x"}), ApiKey(&reader))
        .await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = app.list_keys("acme", ApiKey(&plain)).await;
    assert_problem(res, 403, "insufficient_scope").await;
    // Another tenant: the key is simply not valid there.
    let res = app.list_keys("globex", ApiKey(&reader)).await;
    assert_problem(res, 401, "invalid_token").await;
    let res = app.list_keys("acme", ApiKey("kw_forged")).await;
    assert_problem(res, 401, "invalid_token").await;
}

#[tokio::test]
async fn rotate_takes_no_body_or_its_object_never_null_and_whole_numbers_written_as_floats() {
    let app = spawn_app().await;
    app.new_key("acme", "svc", &[]).await;

    // The body is optional, and when sent it is the documented object: `null` is a 400
    // that rotates nothing.
    let before = app.read_file("acme");
    let res = app.rotate_key("acme", "svc", Some(Value::Null)).await;
    assert_problem(res, 400, "invalid_request").await;
    assert_eq!(app.read_file("acme"), before);
    let res = app.rotate_key("acme", "svc", None).await;
    assert_eq!(res.status(), 200);
    // JSON Schema counts 30.0 as an integer; so does keyward.
    let res = app
        .rotate_key("acme", "svc", Some(json!({"gracePeriodSeconds": 30.0})))
        .await;
    assert_eq!(res.status(), 200);
    assert!(app.read_file("acme").contains("previousHashes:"));

    let before = app.read_file("acme");
    let res = app
        .rotate_key("acme", "svc", Some(json!({"gracePeriodSeconds": 2.5})))
        .await;
    let body = assert_problem(res, 400, "invalid_request").await;
    assert_eq!(body["errors"][0]["field"], "gracePeriodSeconds");
    assert_eq!(app.read_file("acme"), before);
}

fn in_days(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    t.replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// An admin API key for acme that expires in `days`.
async fn expiring_admin_key(app: &TestApp, days: i64) -> String {
    let res = app
        .create_key(
            "acme",
            json!({
                "name": "temp-admin",
                "permissions": [WRITE, "orders:read"],
                "expiresAt": in_days(days),
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn an_expiring_api_key_can_neither_extend_itself_nor_create_longer_lived_keys() {
    let app = spawn_app().await;
    let key = expiring_admin_key(&app, 7).await;
    let own = app.keys_url("acme") + "/temp-admin";
    let before = app.read_file("acme");

    let attempts = [
        app.client
            .put(&own)
            .json(&json!({"enabled": true, "expiresAt": null})),
        app.client
            .put(&own)
            .json(&json!({"enabled": true, "expiresAt": in_days(30)})),
        app.client
            .post(app.keys_url("acme"))
            .json(&json!({"name": "forever", "permissions": ["orders:read"]})),
        app.client.post(app.keys_url("acme")).json(
            &json!({"name": "longer", "permissions": ["orders:read"], "expiresAt": in_days(30)}),
        ),
        // A new token for a key that never expires is a lifetime the caller does not have.
        app.client.post(app.keys_url("acme") + "/reporting/rotate"),
    ];
    for req in attempts {
        let res = req.header("X-API-Key", &key).send().await.unwrap();
        assert_problem(res, 403, "insufficient_scope").await;
    }
    assert_eq!(app.read_file("acme"), before, "nothing was written");

    let shorter = app
        .client
        .post(app.keys_url("acme"))
        .header("X-API-Key", &key)
        .json(&json!({"name": "short", "permissions": ["orders:read"], "expiresAt": in_days(3)}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        shorter.status(),
        201,
        "a shorter life is the caller's to give"
    );
}
