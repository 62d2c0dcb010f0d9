//! Every bad input: a problem+json error, nothing written, no panic.

use serde_json::json;

use crate::helpers::*;

async fn post_raw(
    app: &TestApp,
    tenant: &str,
    ct: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.client
        .post(app.keys_url(tenant))
        .bearer_auth(writer(tenant))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn invalid_fields_are_named_in_errors_and_nothing_is_written() {
    let app = spawn_app().await;
    let cases = [
        (json!({"name": "bad name"}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(129)}), "name"),
        (
            json!({"name": "ok", "permissions": ["has space"]}),
            "permissions[0]",
        ),
        (
            json!({"name": "ok", "permissions": ["a", "a"]}),
            "permissions",
        ),
        (json!({"name": "ok", "permissions": [""]}), "permissions[0]"),
        (
            json!({"name": "ok", "description": "x".repeat(1025)}),
            "description",
        ),
        (
            json!({"name": "ok", "description": "bell\u{7}"}),
            "description",
        ),
        (json!({"name": "ok", "expiresAt": "tomorrow"}), "expiresAt"),
        (
            json!({"name": "ok", "expiresAt": "2001-01-01T00:00:00Z"}),
            "expiresAt",
        ),
    ];
    for (body, field) in cases {
        let res = app.create_key("acme", body.clone()).await;
        let problem = assert_problem(res, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_invalid_requests() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({"name": "ok", "hash": "sha256:00"}), "hash"),
        (json!({"name": "ok", "enabled": "yes"}), "enabled"),
        (json!({"name": 5}), "name"),
        (json!({"name": "ok", "permissions": "a"}), "permissions"),
        (json!(["name"]), ""),
    ] {
        let res = app.create_key("acme", body.clone()).await;
        let problem = assert_problem(res, 400, "invalid_request").await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn malformed_json_wrong_media_type_and_oversized_bodies() {
    let app = spawn_app().await;

    let res = post_raw(&app, "acme", "application/json", "{\"name\": ").await;
    assert_problem(res, 400, "invalid_request").await;

    let res = post_raw(&app, "acme", "text/plain", "{\"name\": \"x\"}").await;
    assert_problem(res, 415, "unsupported_media_type").await;

    let huge = format!(
        "{{\"name\": \"x\", \"description\": \"{}\"}}",
        "a".repeat(70_000)
    );
    let res = post_raw(&app, "acme", "application/json", huge).await;
    assert_problem(res, 413, "payload_too_large").await;

    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn path_traversal_tenant_ids_are_not_found_and_touch_nothing() {
    let app = spawn_app().await;
    let all = jwt(json!({"exp": now() + 60, "scope": WRITE, "tenant_id": "*"}));
    for tenant in ["..", "%2e%2e", "..%2F..%2Fetc", ".hidden", "a%00b", "nope"] {
        let res = app
            .create_key_as(tenant, json!({"name": "evil"}), &all)
            .await;
        let status = res.status().as_u16();
        assert!(status == 404, "{tenant}: {status}");
    }
    let mut entries: Vec<_> = std::fs::read_dir(app.tenants())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["acme", "globex"],
        "no tenant directory was created"
    );
    assert!(!app.dir.path().join("evil").exists());
    assert_eq!(app.read_file("acme"), ACME_FILE);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_problem(res, 404, "not_found").await;
    let res = app
        .client
        .patch(app.keys_url("acme"))
        .bearer_auth(writer("acme"))
        .send()
        .await
        .unwrap();
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert_eq!(allow, "GET, POST", "RFC 9110 wants the allowed methods");
    assert_problem(res, 405, "method_not_allowed").await;
}
