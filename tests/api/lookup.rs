//! `POST /api/{tenantId}/admin/apiKeys/lookup`: which key of the tenant holds a token, as
//! its current token or as a grace token. Not a use of the key; never echoes the token.
//! Time is the server's clock, which these tests move by hand.

use std::time::Duration;

use keyward::clock::Clock;
use reqwest::Response;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::*;

async fn spawn_app_with_manual_clock() -> TestApp {
    spawn_app_with_clock(Clock::manual(OffsetDateTime::now_utc()), |_| {}).await
}

/// The lookup of `body` in `tenant` with this bearer token.
async fn lookup_as(app: &TestApp, tenant: &str, body: Value, bearer: &str) -> Response {
    app.client
        .post(format!("{}/lookup", app.keys_url(tenant)))
        .bearer_auth(bearer)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The lookup of `token` in `tenant` as the tenant's reader.
async fn lookup(app: &TestApp, tenant: &str, token: &str) -> Response {
    lookup_as(
        app,
        tenant,
        json!({"token": token}),
        &token_for_reader(tenant),
    )
    .await
}

fn token_for_reader(tenant: &str) -> String {
    crate::helpers::token(tenant, READ)
}

/// The answer of a lookup that found a key.
async fn found(app: &TestApp, tenant: &str, token: &str) -> Value {
    let res = lookup(app, tenant, token).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let text = res.text().await.unwrap();
    assert!(!text.contains(token) && !text.contains("sha256"), "{text}");
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_current_token_finds_its_key_and_the_lookup_is_not_a_use() {
    // Arrange
    let app = spawn_app_with_manual_clock().await;
    let token = app.new_key("acme", "svc", &["orders:read"]).await;
    assert_eq!(app.verdict("acme", &token).await["valid"], true);
    let used: Value = app.get_key("acme", "svc").await.json().await.unwrap();
    let last_used = used["lastUsedAt"].clone();
    assert!(last_used.is_string());
    let verify_counts = |text: String| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("keyward_verify"))
            .map(str::to_owned)
            .collect()
    };
    let counted = verify_counts(app.metrics().await);
    app.clock.advance(Duration::from_secs(30));

    // Act
    let body = found(&app, "acme", &token).await;

    // Assert
    assert_eq!(body["tokenIs"], "current");
    assert_eq!(body["key"]["name"], "svc");
    assert_eq!(body["key"]["enabled"], true);
    assert_eq!(body["key"]["permissions"], json!(["orders:read"]));
    assert_eq!(body["key"]["lastUsedAt"], last_used, "not a use");
    let view: Value = app.get_key("acme", "svc").await.json().await.unwrap();
    assert_eq!(view["lastUsedAt"], last_used, "not a use");
    assert_eq!(
        verify_counts(app.metrics().await),
        counted,
        "not a verification"
    );
}

#[tokio::test]
async fn a_grace_token_finds_its_key_until_its_grace_ends() {
    // Arrange
    let app = spawn_app_with_manual_clock().await;
    let old = app.new_key("acme", "svc", &[]).await;
    let res = app
        .rotate_key("acme", "svc", Some(json!({"gracePeriodSeconds": 60})))
        .await;
    assert_eq!(res.status(), 200);
    let new: Value = res.json().await.unwrap();

    // Act + Assert
    let body = found(&app, "acme", &old).await;
    assert_eq!(body["tokenIs"], "grace");
    assert_eq!(body["key"]["name"], "svc");
    let body = found(&app, "acme", new["token"].as_str().unwrap()).await;
    assert_eq!(body["tokenIs"], "current");

    app.clock.advance(Duration::from_secs(60));
    assert_problem(lookup(&app, "acme", &old).await, 404, "not_found").await;
}

#[tokio::test]
async fn disabled_and_expired_keys_are_found_and_say_so() {
    // Arrange
    let app = spawn_app_with_manual_clock().await;
    let disabled = app.new_key("acme", "off", &[]).await;
    let res = app
        .update_key("acme", "off", json!({"enabled": false}))
        .await;
    assert_eq!(res.status(), 200);
    let res = app
        .create_key(
            "acme",
            json!({"name": "old", "expiresAt": app.in_seconds(60)}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let expiring: Value = res.json().await.unwrap();
    app.clock.advance(Duration::from_secs(120));

    // Act
    let off = found(&app, "acme", &disabled).await;
    let old = found(&app, "acme", expiring["token"].as_str().unwrap()).await;

    // Assert
    assert_eq!(
        (off["key"]["name"].clone(), off["key"]["enabled"].clone()),
        (json!("off"), json!(false))
    );
    assert_eq!(off["tokenIs"], "current");
    assert_eq!(old["key"]["name"], "old");
    assert_eq!(old["key"]["expiresAt"], expiring["expiresAt"]);
    assert_eq!(old["tokenIs"], "current");
}

#[tokio::test]
async fn a_well_formed_token_no_key_holds_is_not_found() {
    // Arrange: a real token whose key is gone.
    let app = spawn_app().await;
    let token = app.new_key("acme", "gone", &[]).await;
    assert_eq!(app.delete_key("acme", "gone").await.status(), 204);

    // Act
    let res = lookup(&app, "acme", &token).await;

    // Assert
    let body = assert_problem(res, 404, "not_found").await;
    assert!(!body.to_string().contains(&token));
}

#[tokio::test]
async fn a_key_of_another_tenant_is_not_found_through_this_one() {
    // Arrange
    let app = spawn_app().await;
    let theirs = app.new_key("globex", "svc", &[]).await;

    // Act
    let res = lookup(&app, "acme", &theirs).await;

    // Assert
    assert_problem(res, 404, "not_found").await;
    assert_eq!(found(&app, "globex", &theirs).await["key"]["name"], "svc");
}

#[tokio::test]
async fn what_is_not_a_token_of_this_server_is_a_400_on_token_that_never_echoes_it() {
    // Arrange
    let app = spawn_app().await;
    let real = app.new_key("acme", "svc", &[]).await;
    let last = real.chars().last().unwrap();
    let bad_checksum = format!(
        "{}{}",
        &real[..real.len() - 1],
        if last == 'a' { 'b' } else { 'a' }
    );
    let other_prefix = format!("zz{}", &real[2..]);
    let long = format!("kw_{}", "A".repeat(2000));

    for garbage in [
        "garbage-secret-value",
        "kw_secret",
        bad_checksum.as_str(),
        &real[..real.len() - 1],
        other_prefix.as_str(),
        long.as_str(),
        "",
    ] {
        // Act
        let res = lookup(&app, "acme", garbage).await;

        // Assert
        let body = assert_problem(res, 400, "invalid_request").await;
        assert_eq!(body["errors"][0]["field"], "token", "{body}");
        if !garbage.is_empty() {
            assert!(!body.to_string().contains(garbage), "{body}");
        }
    }
    for body in [
        json!({}),
        json!({"token": 5}),
        json!({"token": real, "x": 1}),
    ] {
        let res = lookup_as(&app, "acme", body, &token_for_reader("acme")).await;
        assert_eq!(res.status(), 400);
        assert!(!res.text().await.unwrap().contains(&real));
    }
}

#[tokio::test]
async fn the_lookup_needs_read_access_to_the_tenant() {
    // Arrange
    let app = spawn_app().await;
    let token = app.new_key("acme", "svc", &[]).await;
    let body = json!({"token": token});

    // Act + Assert
    let res = app
        .client
        .post(format!("{}/lookup", app.keys_url("acme")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "invalid_token").await;
    let res = lookup_as(
        &app,
        "acme",
        body.clone(),
        &crate::helpers::token("acme", "other"),
    )
    .await;
    assert_problem(res, 403, "insufficient_scope").await;
    let res = lookup_as(&app, "acme", body.clone(), &token_for_reader("globex")).await;
    assert_problem(res, 403, "tenant_forbidden").await;
    let res = lookup_as(&app, "acme", body, &writer("acme")).await;
    assert_eq!(res.status(), 200, "write implies read");
}

#[tokio::test]
async fn a_key_named_lookup_is_still_read_updated_and_deleted_at_its_own_path() {
    // Arrange
    let app = spawn_app().await;
    app.new_key("acme", "lookup", &[]).await;

    // Act + Assert
    let res = app.get_key("acme", "lookup").await;
    assert_eq!(res.status(), 200);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["name"], "lookup");
    let res = app
        .update_key("acme", "lookup", json!({"enabled": false}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.delete_key("acme", "lookup").await.status(), 204);
}
