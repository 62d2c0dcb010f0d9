//! `GET /api/tenants` (README, "Admin API"): the tenants a caller may see, each with the
//! `canWrite` its status would show; never a directory across the tenants directory's
//! boundaries; 401 and 403 as on every admin route.

use serde_json::{Value, json};

use crate::helpers::*;

/// Beside acme and globex: `tenants` (a tenant named like the route), `broken` (an invalid
/// file), `linked` (a symlink into a hidden directory: served, read-only), `outside` (a
/// symlink out of the tenants directory: never a tenant) and `bad name` (not a tenant id).
async fn many_tenants() -> (TestApp, tempfile::TempDir) {
    let elsewhere = tempfile::tempdir().unwrap();
    let dir = tenants_with(&[
        ("acme", ACME_FILE),
        ("globex", "apiKeys: []\n"),
        ("tenants", "apiKeys: []\n"),
        ("broken", "apiKeys: [\n"),
        ("..data/linked", "apiKeys: []\n"),
        ("bad name", "apiKeys: []\n"),
    ]);
    let tenants = dir.path().join("tenants");
    std::os::unix::fs::symlink("..data/linked", tenants.join("linked")).unwrap();
    std::fs::create_dir_all(elsewhere.path().join("outside")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("outside"), tenants.join("outside")).unwrap();
    (spawn_app_on(dir, |_| {}).await, elsewhere)
}

async fn tenants_as<'a>(app: &TestApp, who: Credential<'a>) -> reqwest::Response {
    let req = app.client.get(app.url("/api/tenants"));
    match who {
        Bearer(t) => req.bearer_auth(t),
        ApiKey(k) => req.header("X-API-Key", k),
        _ => req,
    }
    .send()
    .await
    .unwrap()
}

async fn seen<'a>(app: &TestApp, who: Credential<'a>) -> Vec<(String, bool)> {
    let res = tenants_as(app, who).await;
    assert_eq!(res.status(), 200);
    let body: Vec<Value> = res.json().await.unwrap();
    body.iter()
        .map(|t| {
            assert_eq!(t.as_object().unwrap().len(), 2, "{t}");
            (t["id"].as_str().unwrap().to_owned(), t["canWrite"] == true)
        })
        .collect()
}

fn pairs(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(t, w)| (t.to_string(), *w)).collect()
}

#[tokio::test]
async fn a_token_for_every_tenant_sees_every_tenant_inside_the_tenants_directory() {
    let (app, _elsewhere) = many_tenants().await;

    let writer = seen(&app, Bearer(&token("*", WRITE))).await;
    let reader = seen(&app, Bearer(&token("*", READ))).await;

    assert_eq!(
        writer,
        pairs(&[
            ("acme", true),
            ("broken", false),
            ("globex", true),
            ("linked", false),
            ("tenants", true),
        ])
    );
    assert!(reader.iter().all(|(_, w)| !w), "{reader:?}");
    assert_eq!(reader.len(), 5);
}

#[tokio::test]
async fn can_write_is_what_each_tenants_status_says() {
    let (app, _elsewhere) = many_tenants().await;
    for scope in [READ, WRITE] {
        let jwt = token("*", scope);

        for (tenant, can_write) in seen(&app, Bearer(&jwt)).await {
            let status: Value = app
                .status_as(&tenant, Bearer(&jwt))
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(status["canWrite"], can_write, "{tenant} with {scope}");
        }
    }
}

#[tokio::test]
async fn a_token_bound_to_tenants_sees_those_that_exist() {
    let (app, _elsewhere) = many_tenants().await;
    let several = jwt(json!({
        "exp": now() + 600,
        "scope": READ,
        "tenant_id": ["globex", "nope", "outside", "../acme", "linked"],
    }));

    assert_eq!(
        seen(&app, Bearer(&token("acme", WRITE))).await,
        pairs(&[("acme", true)])
    );
    assert_eq!(
        seen(&app, Bearer(&several)).await,
        pairs(&[("globex", false), ("linked", false)])
    );
    assert_eq!(seen(&app, Bearer(&token("nope", READ))).await, pairs(&[]));
}

#[tokio::test]
async fn an_api_key_sees_its_own_tenant() {
    let (app, _elsewhere) = many_tenants().await;
    let reader = app
        .new_key("acme", "dashboard", &["tenant.apiKey:read"])
        .await;
    let admin = app.new_key("acme", "admin", &["tenant.apiKey:*"]).await;

    assert_eq!(seen(&app, ApiKey(&reader)).await, pairs(&[("acme", false)]));
    assert_eq!(seen(&app, ApiKey(&admin)).await, pairs(&[("acme", true)]));
}

#[tokio::test]
async fn no_credential_is_401_and_no_read_scope_is_403() {
    let (app, _elsewhere) = many_tenants().await;
    let plain_key = app.new_key("acme", "orders", &["orders:read"]).await;

    let none = tenants_as(&app, Anonymous).await;
    assert!(none.headers().contains_key("www-authenticate"));
    assert_problem(none, 401, "invalid_token").await;
    let bad = tenants_as(&app, Bearer("not.a.jwt")).await;
    assert_problem(bad, 401, "invalid_token").await;
    let unknown = tenants_as(&app, ApiKey("kw_not-a-key")).await;
    assert_problem(unknown, 401, "invalid_token").await;

    let no_scope = tenants_as(&app, Bearer(&token("*", "orders:read"))).await;
    assert_problem(no_scope, 403, "insufficient_scope").await;
    let key_without_admin = tenants_as(&app, ApiKey(&plain_key)).await;
    assert_problem(key_without_admin, 403, "insufficient_scope").await;
}

#[tokio::test]
async fn a_tenant_named_tenants_keeps_its_own_routes() {
    let (app, _elsewhere) = many_tenants().await;

    let res = app.list_keys("tenants", Writer).await;

    assert_eq!(res.status(), 200);
    let created = app
        .create_key("tenants", json!({"name": "in-tenants"}))
        .await;
    assert_eq!(created.status(), 201);
    assert_eq!(app.list_names("tenants").await, ["in-tenants"]);
}
