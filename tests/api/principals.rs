//! Who a write is recorded as: a JWT `sub` verbatim when git and the file can carry it and it
//! cannot pass for another kind of principal; otherwise `jwt:` and its percent-encoding.

use serde_json::{Value, json};

use crate::git_world::{World, keyward_on};
use crate::helpers::*;

/// A write token for acme signed with the server's key, for `sub`.
fn writer_named(sub: &str) -> String {
    jwt(json!({"sub": sub, "exp": now() + 600, "scope": WRITE, "tenant_id": "acme"}))
}

/// Creates `name` in acme as `sub`; the key as answered.
async fn create_as(app: &TestApp, sub: &str, name: &str) -> Value {
    let res = app
        .create_key_as("acme", json!({"name": name}), &writer_named(sub))
        .await;
    assert_eq!(res.status(), 201, "creating {name} as {sub:?}");
    res.json().await.unwrap()
}

/// The `createdBy:` line of `name`'s entry in `text`.
fn created_by_in(text: &str, name: &str) -> String {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    let entry = doc["apiKeys"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"));
    entry["createdBy"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_sub_git_cannot_carry_is_written_in_git_mode_as_jwt_and_its_percent_encoding() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;

    let angled = create_as(&app, "a<b>c", "angled").await;
    let bare = create_as(&app, "<>", "bare").await;
    let res = app
        .update_key_as(
            "acme",
            "angled",
            json!({"enabled": false}),
            &writer_named("a<b>c"),
            None,
        )
        .await;
    assert_eq!(res.status(), 200);

    assert_eq!(angled["createdBy"], "jwt:a%3Cb%3Ec");
    assert_eq!(bare["createdBy"], "jwt:%3C%3E");
    let remote = world.on_remote("acme");
    assert_eq!(created_by_in(&remote, "angled"), "jwt:a%3Cb%3Ec");
    assert_eq!(created_by_in(&remote, "bare"), "jwt:%3C%3E");
    let log = world.remote_log();
    let ours: Vec<&str> = log.lines().take(3).collect();
    assert_eq!(
        ours,
        [
            "jwt:a%3Cb%3Ec||keyward|update acme/angled",
            "jwt:%3C%3E||keyward|create acme/bare",
            "jwt:a%3Cb%3Ec||keyward|create acme/angled",
        ],
        "{log}"
    );
}

#[tokio::test]
async fn a_sub_git_cannot_carry_is_written_without_git_as_jwt_and_its_percent_encoding() {
    let app = spawn_app().await;

    let key = create_as(&app, "a<b>c", "angled").await;

    assert_eq!(key["createdBy"], "jwt:a%3Cb%3Ec");
    assert_eq!(
        created_by_in(&app.read_file("acme"), "angled"),
        "jwt:a%3Cb%3Ec"
    );
    let listed = app.get_key("acme", "angled").await;
    assert_eq!(
        listed.json::<Value>().await.unwrap()["createdBy"],
        "jwt:a%3Cb%3Ec"
    );
}

#[tokio::test]
async fn a_sub_that_names_an_api_key_never_passes_for_that_key() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;
    let root = app.new_key("acme", "root", &["tenant.apiKey:write"]).await;

    let by_jwt = create_as(&app, "apikey:root", "by-jwt").await;
    let res = app
        .create_key_as("acme", json!({"name": "by-key"}), ApiKey(&root))
        .await;
    assert_eq!(res.status(), 201);
    let by_key: Value = res.json().await.unwrap();

    assert_eq!(by_jwt["createdBy"], "jwt:apikey%3Aroot");
    assert_eq!(by_key["createdBy"], "apikey:root");
    let remote = world.on_remote("acme");
    assert_eq!(created_by_in(&remote, "by-jwt"), "jwt:apikey%3Aroot");
    assert_eq!(created_by_in(&remote, "by-key"), "apikey:root");
    let log = world.remote_log();
    let ours: Vec<&str> = log.lines().take(2).collect();
    assert_eq!(
        ours,
        [
            "apikey:root||keyward|create acme/by-key",
            "jwt:apikey%3Aroot||keyward|create acme/by-jwt",
        ],
        "{log}"
    );
    let history: Vec<Value> = app.history("acme", None).await.json().await.unwrap();
    let author_of = |name: &str| {
        history
            .iter()
            .find(|c| c["keyName"] == name && c["action"] == "create")
            .unwrap_or_else(|| panic!("no create of {name} in {history:?}"))["author"]
            .clone()
    };
    assert_eq!(author_of("by-jwt"), "jwt:apikey%3Aroot");
    assert_eq!(author_of("by-key"), "apikey:root");
}

#[tokio::test]
async fn a_sub_that_looks_like_an_encoded_one_is_encoded_too() {
    let app = spawn_app().await;

    let key = create_as(&app, "jwt:a%3Cb%3Ec", "lookalike").await;

    assert_eq!(key["createdBy"], "jwt:jwt%3Aa%253Cb%253Ec");
}

#[tokio::test]
async fn an_ordinary_sub_is_written_as_it_is() {
    let world = World::new();
    let clone = world.clone_for("server");
    let app = keyward_on(&clone, |_| {}).await;

    let key = create_as(&app, "carol@example.com", "by-carol").await;
    let plain = create_as(&app, "service account 7", "by-service").await;

    assert_eq!(key["createdBy"], "carol@example.com");
    assert_eq!(plain["createdBy"], "service account 7");
    let log = world.remote_log();
    let ours: Vec<&str> = log.lines().take(2).collect();
    assert_eq!(
        ours,
        [
            "service account 7||keyward|create acme/by-service",
            "carol@example.com|carol@example.com|keyward|create acme/by-carol",
        ],
        "{log}"
    );
}

#[tokio::test]
async fn descriptions_and_created_by_refuse_bidirectional_overrides() {
    let app = spawn_app().await;
    for text in ["ok \u{202E}txt.exe", "isolate \u{2066}x\u{2069}"] {
        let res = app
            .create_key("acme", json!({"name": "trojan", "description": text}))
            .await;
        assert_problem(res, 422, "validation_failed").await;
    }

    // A `sub` is the identity provider's: keyward stores it encoded, without the overrides.
    let sneaky = jwt(json!({
        "sub": "mallory\u{202E}nimda", "exp": now() + 600, "scope": WRITE, "tenant_id": "acme"
    }));
    let res = app
        .client
        .post(app.keys_url("acme"))
        .bearer_auth(sneaky)
        .json(&json!({"name": "by-mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(
        res.json::<Value>().await.unwrap()["createdBy"],
        "jwt:mallory%E2%80%AEnimda"
    );
    assert!(!app.read_file("acme").contains('\u{202E}'));
}
