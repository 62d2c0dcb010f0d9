//! Tokens a rotation left in their grace period: they verify until the grace ends and can
//! revoke themselves, nothing more; the key shows them, its owner can end them, a rotation
//! without grace ends them, and a key keeps at most five.
//! Grace is measured by the server's clock, which these tests move by hand.

use std::time::Duration;

use keyward::clock::Clock;
use reqwest::Response;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::git_world::World;
use crate::helpers::*;

/// An app whose clock stands still until the test advances it.
async fn spawn_app_with_manual_clock() -> TestApp {
    spawn_app_with_clock(Clock::manual(OffsetDateTime::now_utc()), |_| {}).await
}

/// Rotates `name` as the tenant's writer with this grace; returns the answer's body.
async fn rotate(app: &TestApp, name: &str, grace_seconds: u64) -> Value {
    let res = app
        .rotate_key(
            "acme",
            name,
            Some(json!({"gracePeriodSeconds": grace_seconds})),
        )
        .await;
    assert_eq!(res.status(), 200, "rotating {name}");
    res.json().await.unwrap()
}

fn token(body: &Value) -> String {
    body["token"].as_str().unwrap().to_owned()
}

/// `DELETE .../apiKeys/{name}/graceTokens` with this bearer token and `If-Match`.
async fn end_grace(app: &TestApp, name: &str, bearer: &str, if_match: Option<&str>) -> Response {
    let url = format!("{}/graceTokens", app.key_url("acme", name));
    let mut req = app.client.delete(url).bearer_auth(bearer);
    if let Some(etag) = if_match {
        req = req.header("If-Match", etag);
    }
    req.send().await.unwrap()
}

async fn key_view(app: &TestApp, name: &str) -> (Value, String) {
    let res = app.get_key("acme", name).await;
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    (res.json().await.unwrap(), etag)
}

fn grace_ends(view: &Value) -> Vec<String> {
    view["graceTokens"]
        .as_array()
        .unwrap_or_else(|| panic!("no graceTokens in {view}"))
        .iter()
        .map(|g| g["expiresAt"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_grace_token_cannot_rotate_delete_update_create_or_list_and_nothing_changes() {
    // Arrange: an admin key of the tenant, rotated with a grace period.
    let app = spawn_app().await;
    let old = app.new_key("acme", "robot", &[WRITE, "orders:read"]).await;
    let new = token(&rotate(&app, "robot", 3600).await);
    let before = app.read_file("acme");

    // Act + Assert: every admin call with the old token is refused as an invalid key.
    let refusals = [
        app.rotate_key_as("acme", "robot", None, ApiKey(&old), None)
            .await,
        app.delete_key_as("acme", "robot", ApiKey(&old), None).await,
        app.update_key_as(
            "acme",
            "robot",
            json!({"enabled": true}),
            ApiKey(&old),
            None,
        )
        .await,
        app.create_key_as(
            "acme",
            json!({"name": "forever", "permissions": ["orders:read"]}),
            ApiKey(&old),
        )
        .await,
        app.list_keys("acme", ApiKey(&old)).await,
    ];
    for res in refusals {
        let body = assert_problem(res, 401, "invalid_token").await;
        assert!(!body.to_string().contains(&old));
    }
    assert_eq!(app.read_file("acme"), before, "nothing changed on disk");
    assert_eq!(app.verdict("acme", &new).await["valid"], true);
    assert_eq!(app.verdict("acme", &old).await["valid"], true);

    // The current token still acts as the key.
    let res = app.list_keys("acme", ApiKey(&new)).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_grace_token_verifies_until_its_grace_ends_and_answers_that_end_as_its_expiry() {
    // Arrange
    let app = spawn_app_with_manual_clock().await;
    let old = app.new_key("acme", "svc", &["orders:read"]).await;
    let end = app.in_seconds(60);

    // Act
    let new = token(&rotate(&app, "svc", 60).await);

    // Assert
    let verdict = app.verdict("acme", &old).await;
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["expiresAt"], end.as_str(), "{verdict}");
    assert_eq!(app.verdict("acme", &new).await["expiresAt"], Value::Null);
    let res = app.forward_auth("acme", Some(&old), &["orders:read"]).await;
    assert_eq!(res.status(), 204);
    app.clock.advance(Duration::from_secs(59));
    assert_eq!(app.verdict("acme", &old).await["valid"], true);
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(app.verdict("acme", &old).await["code"], "expired");
    assert_eq!(app.verdict("acme", &new).await["valid"], true);
}

#[tokio::test]
async fn a_grace_token_revokes_itself_and_the_key_lives_on() {
    let app = spawn_app().await;
    let old = app.new_key("acme", "robot", &[WRITE]).await;
    let new = token(&rotate(&app, "robot", 3600).await);

    let res = app.revoke_current("acme", &old).await;

    assert_eq!(res.status(), 204);
    assert_eq!(app.verdict("acme", &old).await["valid"], false);
    assert_eq!(app.verdict("acme", &new).await["valid"], true);
    let (view, _) = key_view(&app, "robot").await;
    assert!(grace_ends(&view).is_empty());
}

#[tokio::test]
async fn the_key_shows_how_many_grace_tokens_it_has_and_until_when() {
    // Arrange
    let app = spawn_app_with_manual_clock().await;
    app.new_key("acme", "svc", &[]).await;
    let first_end = app.in_seconds(600);
    rotate(&app, "svc", 600).await;
    app.clock.advance(Duration::from_secs(5));
    let second_end = app.in_seconds(60);

    // Act
    let rotated = rotate(&app, "svc", 60).await;

    // Assert: soonest end first, in the rotation's answer, the key and the list.
    let ends = vec![second_end, first_end];
    assert_eq!(grace_ends(&rotated), ends);
    let (view, _) = key_view(&app, "svc").await;
    assert_eq!(grace_ends(&view), ends);
    let list: Vec<Value> = app.list_keys("acme", Reader).await.json().await.unwrap();
    let listed = list.iter().find(|k| k["name"] == "svc").unwrap();
    assert_eq!(grace_ends(listed), ends);
    let plain = list.iter().find(|k| k["name"] == "ci-deploy").unwrap();
    assert!(grace_ends(plain).is_empty());
    // An ended grace period is no longer shown.
    app.clock.advance(Duration::from_secs(60));
    let (view, _) = key_view(&app, "svc").await;
    assert_eq!(grace_ends(&view).len(), 1);
}

#[tokio::test]
async fn the_owner_ends_grace_tokens_early_with_if_match() {
    // Arrange
    let app = spawn_app().await;
    let old = app.new_key("acme", "svc", &[]).await;
    let (_, stale) = key_view(&app, "svc").await;
    let new = token(&rotate(&app, "svc", 3600).await);
    let (_, etag) = key_view(&app, "svc").await;
    let before = app.read_file("acme");

    // A stale ETag, a reader, an unknown key: refused, nothing written.
    assert_problem(
        end_grace(&app, "svc", &writer("acme"), Some(&stale)).await,
        412,
        "precondition_failed",
    )
    .await;
    assert_problem(
        end_grace(&app, "svc", &crate::helpers::token("acme", READ), None).await,
        403,
        "insufficient_scope",
    )
    .await;
    assert_problem(
        end_grace(&app, "nope", &writer("acme"), None).await,
        404,
        "key_not_found",
    )
    .await;
    assert_eq!(app.read_file("acme"), before);
    assert_eq!(app.verdict("acme", &old).await["valid"], true);

    // Act
    let res = end_grace(&app, "svc", &writer("acme"), Some(&etag)).await;

    // Assert
    assert_eq!(res.status(), 200);
    assert_ne!(res.headers()["etag"].to_str().unwrap(), etag);
    let body: Value = res.json().await.unwrap();
    assert!(grace_ends(&body).is_empty());
    assert!(body.get("token").is_none());
    assert_eq!(app.verdict("acme", &old).await["valid"], false);
    assert_eq!(app.verdict("acme", &new).await["valid"], true);
    assert!(!app.read_file("acme").contains("previousHashes"));
}

#[tokio::test]
async fn a_rotation_without_grace_ends_every_earlier_grace_token() {
    // Arrange: two tokens in their grace period.
    let app = spawn_app().await;
    let first = app.new_key("acme", "svc", &[]).await;
    let second = token(&rotate(&app, "svc", 3600).await);
    let third = token(&rotate(&app, "svc", 3600).await);

    // Act
    let rotated = rotate(&app, "svc", 0).await;

    // Assert
    for old in [&first, &second, &third] {
        assert_eq!(app.verdict("acme", old).await["valid"], false);
    }
    assert_eq!(app.verdict("acme", &token(&rotated)).await["valid"], true);
    assert!(grace_ends(&rotated).is_empty());
    assert_eq!(rotated["endedGraceTokens"].as_array().unwrap().len(), 2);
    assert!(!app.read_file("acme").contains("previousHashes"));
}

#[tokio::test]
async fn a_key_keeps_at_most_five_grace_tokens_and_the_rotation_that_ends_the_oldest_says_so() {
    // Arrange: five rotations, a second apart, leave five grace tokens.
    let app = spawn_app_with_manual_clock().await;
    let mut tokens = vec![app.new_key("acme", "svc", &[]).await];
    let mut ends = Vec::new();
    for _ in 0..5 {
        ends.push(app.in_seconds(3600));
        let rotated = rotate(&app, "svc", 3600).await;
        assert_eq!(rotated["endedGraceTokens"], json!([]));
        tokens.push(token(&rotated));
        app.clock.advance(Duration::from_secs(1));
    }
    assert_eq!(grace_ends(&key_view(&app, "svc").await.0).len(), 5);

    // Act
    let rotated = rotate(&app, "svc", 3600).await;

    // Assert: the oldest is ended and named by its end; the other four and the two newest
    // tokens work.
    assert_eq!(
        rotated["endedGraceTokens"],
        json!([{"expiresAt": ends[0]}]),
        "{rotated}"
    );
    assert_eq!(grace_ends(&rotated).len(), 5);
    assert_eq!(app.verdict("acme", &tokens[0]).await["valid"], false);
    for t in &tokens[1..] {
        assert_eq!(app.verdict("acme", t).await["valid"], true);
    }
    assert_eq!(app.verdict("acme", &token(&rotated)).await["valid"], true);
    assert_eq!(app.read_file("acme").matches("expiresAt:").count(), 5);
}

#[tokio::test]
async fn in_git_mode_a_grace_token_changes_nothing_and_the_owner_ends_it_in_one_commit() {
    // Arrange
    let world = World::new();
    let clone = world.clone_for("a");
    let state = tempfile::tempdir().unwrap();
    let tenants = clone.join("tenants");
    let app = spawn_app_on(state, move |s| {
        s.tenants_dir = tenants;
        s.git.enabled = true;
        s.git.pull_interval_seconds = 1;
    })
    .await;
    let old = app.new_key("acme", "robot", &[WRITE]).await;
    rotate(&app, "robot", 3600).await;
    let remote = world.on_remote("acme");

    // Act + Assert: the grace token is refused and nothing reaches the remote.
    let res = app
        .rotate_key_as("acme", "robot", None, ApiKey(&old), None)
        .await;
    assert_problem(res, 401, "invalid_token").await;
    assert_eq!(world.on_remote("acme"), remote);

    let res = end_grace(&app, "robot", &writer("acme"), None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.verdict("acme", &old).await["valid"], false);
    assert!(!world.on_remote("acme").contains("previousHashes"));
    let log = git(&world.origin(), &["log", "-1", "--format=%s"]);
    assert_eq!(log.trim(), "end-grace acme/robot");
}

#[tokio::test]
async fn a_previous_token_in_its_grace_period_revokes_only_itself() {
    let app = spawn_app().await;
    let old = app.new_key("acme", "svc", &["orders:read"]).await;
    let rotated = app
        .rotate_key("acme", "svc", Some(json!({"gracePeriodSeconds": 3600})))
        .await;
    assert_eq!(rotated.status(), 200);
    let new = rotated.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = app.revoke_current("acme", &old).await;
    assert_eq!(res.status(), 204);

    assert_eq!(
        app.verdict("acme", &new).await["valid"],
        true,
        "the replacement lives on"
    );
    assert_eq!(
        app.verdict("acme", &old).await["valid"],
        false,
        "the old token is gone"
    );
    assert!(app.read_file("acme").contains("name: svc"));
}

#[tokio::test]
async fn a_grace_token_reads_its_own_key_until_its_grace_ends_and_then_can_do_nothing() {
    // Arrange
    let app = spawn_app_with_manual_clock().await;
    let old = app.new_key("acme", "svc", &["orders:read"]).await;
    rotate(&app, "svc", 60).await;

    // Act
    let res = app.current("acme", &old).await;

    // Assert
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["name"], "svc");
    app.clock.advance(Duration::from_secs(60));
    let before = app.read_file("acme");
    let problem = assert_problem(app.current("acme", &old).await, 401, "invalid_token").await;
    assert_eq!(problem["detail"], "invalid API key (expired)");
    let res = app.revoke_current("acme", &old).await;
    assert_problem(res, 401, "invalid_token").await;
    assert_eq!(app.read_file("acme"), before);
}

#[tokio::test]
async fn the_current_token_revoking_itself_ends_the_key_and_its_grace_tokens() {
    let app = spawn_app().await;
    let old = app.new_key("acme", "robot", &[]).await;
    let new = token(&rotate(&app, "robot", 3600).await);

    let res = app.revoke_current("acme", &new).await;

    assert_eq!(res.status(), 204);
    assert_eq!(app.verdict("acme", &new).await["valid"], false);
    assert_eq!(app.verdict("acme", &old).await["valid"], false);
    assert!(!app.read_file("acme").contains("name: robot"));
}
