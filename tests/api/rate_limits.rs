//! Per-key rate limits, through the real server: the quota, then 429 with `Retry-After` and
//! the RateLimit fields on every check route; reloads that keep or change a limit; the
//! admin API that sets one; `keyward check` on a bad one. Time is the server's manual
//! clock, moved by the test: nothing here waits for a window to pass.

use std::time::Duration;

use keyward::clock::Clock;
use keyward::domain::KeyHash;
use reqwest::Response;
use serde_json::{Value, json};
use time::macros::datetime;

use crate::helpers::*;

async fn app_on_manual_clock() -> TestApp {
    spawn_app_with_clock(Clock::manual(datetime!(2030-01-01 00:00 UTC)), |_| {}).await
}

/// A key of `tenant` named `name` holding `orders:read`, limited to `requests` every
/// `per_seconds` seconds; its token.
async fn limited_key(app: &TestApp, tenant: &str, name: &str, requests: u32, per: u32) -> String {
    let res = app
        .create_key(
            tenant,
            json!({
                "name": name,
                "permissions": ["orders:read"],
                "rateLimit": {"requests": requests, "perSeconds": per},
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["rateLimit"],
        json!({"requests": requests, "perSeconds": per})
    );
    body["token"].as_str().unwrap().to_owned()
}

fn header<'a>(res: &'a Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

/// `RateLimit` and, when there is one, `Retry-After`.
fn limit_state(res: &Response) -> (Option<&str>, Option<&str>) {
    (header(res, "ratelimit"), header(res, "retry-after"))
}

async fn ext_authz(app: &TestApp, tenant: &str, key: &str) -> Response {
    reqwest::Client::new()
        .post(app.url(&format!("/ext-authz/{tenant}/orders/7?x=1")))
        .header("x-api-key", key)
        .header("x-keyward-permission", "orders:read")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn forward_auth_allows_the_quota_then_answers_429_with_retry_after_and_the_ratelimit_fields()
{
    let app = app_on_manual_clock().await;
    let limited = limited_key(&app, "acme", "limited", 3, 60).await;
    let free = app.new_key("acme", "free", &["orders:read"]).await;

    let mut states = Vec::new();
    for _ in 0..3 {
        let res = app
            .forward_auth("acme", Some(&limited), &["orders:read"])
            .await;
        assert_eq!(res.status(), 204);
        assert_eq!(header(&res, "ratelimit-policy"), Some(r#""key";q=3;w=60"#));
        states.push(limit_state(&res).0.map(str::to_owned));
    }
    let over = app
        .forward_auth("acme", Some(&limited), &["orders:read"])
        .await;

    assert_eq!(
        states,
        [
            Some(r#""key";r=2;t=20"#.to_owned()),
            Some(r#""key";r=1;t=40"#.to_owned()),
            Some(r#""key";r=0;t=60"#.to_owned()),
        ]
    );
    assert_eq!(limit_state(&over), (Some(r#""key";r=0;t=60"#), Some("20")));
    assert_eq!(header(&over, "ratelimit-policy"), Some(r#""key";q=3;w=60"#));
    assert_eq!(
        header(&over, "x-keyward-key"),
        None,
        "no identity when refused"
    );
    assert_problem(over, 429, "rate_limited").await;

    let other = app
        .forward_auth("acme", Some(&free), &["orders:read"])
        .await;
    assert_eq!(
        other.status(),
        204,
        "another key of the tenant is unaffected"
    );
    assert_eq!(header(&other, "ratelimit"), None, "no limit, no field");
    assert_eq!(header(&other, "ratelimit-policy"), None);

    app.clock.advance(Duration::from_secs(20));
    let again = app
        .forward_auth("acme", Some(&limited), &["orders:read"])
        .await;
    assert_eq!(again.status(), 204, "one verification came back after 20 s");
}

#[tokio::test]
async fn ext_authz_allows_the_quota_then_answers_429_with_retry_after() {
    let app = app_on_manual_clock().await;
    let limited = limited_key(&app, "acme", "limited", 3, 60).await;

    for _ in 0..3 {
        assert_eq!(ext_authz(&app, "acme", &limited).await.status(), 200);
    }
    let over = ext_authz(&app, "acme", &limited).await;

    assert_eq!(limit_state(&over), (Some(r#""key";r=0;t=60"#), Some("20")));
    assert_problem(over, 429, "rate_limited").await;
}

#[tokio::test]
async fn json_verify_answers_rate_limited_with_the_same_fields_and_counts_it() {
    let app = app_on_manual_clock().await;
    let limited = limited_key(&app, "acme", "limited", 3, 60).await;
    let body = json!({"key": limited, "permissions": ["orders:read"]});

    for _ in 0..3 {
        let res = app.verify("acme", body.clone()).await;
        assert!(header(&res, "ratelimit").is_some());
        assert_eq!(res.json::<Value>().await.unwrap()["valid"], true);
    }
    let over = app.verify("acme", body).await;

    assert_eq!(over.status(), 200);
    assert_eq!(limit_state(&over), (Some(r#""key";r=0;t=60"#), Some("20")));
    assert_eq!(
        over.json::<Value>().await.unwrap(),
        json!({"valid": false, "code": "rate_limited"})
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains(r#"keyward_verify_total{code="rate_limited"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_refused_key_and_the_admin_api_never_spend_its_allowance() {
    let app = app_on_manual_clock().await;
    let limited = limited_key(&app, "acme", "limited", 3, 60).await;

    for _ in 0..5 {
        let res = app
            .forward_auth("acme", Some(&limited), &["billing:read"])
            .await;
        assert_eq!(
            res.status(),
            403,
            "lacks the permission: refused before the limit"
        );
        assert_eq!(header(&res, "ratelimit"), None);
        assert_eq!(app.current("acme", &limited).await.status(), 200);
        // The admin API's own key check (the key lacks its permission: refused after).
        let listed = app.list_keys("acme", ApiKey(&limited)).await;
        assert_eq!(listed.status(), 403);
    }

    for _ in 0..3 {
        let res = app
            .forward_auth("acme", Some(&limited), &["orders:read"])
            .await;
        assert_eq!(res.status(), 204, "the whole quota is still there");
    }
}

/// A hand-written file: `limited` with `limit` (a YAML flow mapping, or nothing), and an
/// unlimited `marker` key whose verdict tells the test the file was loaded.
fn file_with(limit: Option<&str>, marker: &str) -> String {
    let mut text = format!(
        "apiKeys:\n  - name: limited\n    hash: {}\n",
        KeyHash::of(b"limited-token")
    );
    if let Some(limit) = limit {
        text.push_str(&format!("    rateLimit: {limit}\n"));
    }
    text.push_str(&format!(
        "  - name: {marker}\n    hash: {}\n",
        KeyHash::of(marker.as_bytes())
    ));
    text
}

async fn spend(app: &TestApp, times: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..times {
        let res = app.forward_auth("acme", Some("limited-token"), &[]).await;
        statuses.push(res.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn a_reload_keeps_what_a_kept_limit_spent_and_applies_a_changed_one() {
    let app = app_on_manual_clock().await;
    let path = app.file("acme");
    std::fs::write(
        &path,
        file_with(Some("{requests: 3, perSeconds: 60}"), "m1"),
    )
    .unwrap();
    app.eventually_valid("acme", "m1", true).await;
    assert_eq!(spend(&app, 3).await, [204, 204, 204]);

    std::fs::write(
        &path,
        file_with(Some("{requests: 3, perSeconds: 60}"), "m2"),
    )
    .unwrap();
    app.eventually_valid("acme", "m2", true).await;
    assert_eq!(spend(&app, 1).await, [429], "the same limit: still spent");

    std::fs::write(
        &path,
        file_with(Some("{requests: 5, perSeconds: 60}"), "m3"),
    )
    .unwrap();
    app.eventually_valid("acme", "m3", true).await;
    assert_eq!(
        spend(&app, 6).await,
        [204, 204, 204, 204, 204, 429],
        "a raised limit applies, whole"
    );

    std::fs::write(&path, file_with(None, "m4")).unwrap();
    app.eventually_valid("acme", "m4", true).await;
    assert_eq!(spend(&app, 10).await, [204; 10], "a removed limit lifts it");
}

#[tokio::test]
async fn a_malformed_limit_is_a_file_problem_with_its_line_and_the_old_limit_stays() {
    let app = app_on_manual_clock().await;
    let path = app.file("acme");
    std::fs::write(
        &path,
        file_with(Some("{requests: 3, perSeconds: 60}"), "m1"),
    )
    .unwrap();
    app.eventually_valid("acme", "m1", true).await;

    std::fs::write(
        &path,
        file_with(Some("{requests: 0, perSeconds: 60}"), "m2"),
    )
    .unwrap();
    let status = eventually(
        "acme's status invalid",
        Duration::from_secs(5),
        || async { app.status("acme").await.json::<Value>().await.unwrap() },
        |status| status["valid"] == false,
    )
    .await;

    assert_eq!(status["error"]["line"], 4, "{status}");
    let message = status["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("apiKeys[0].rateLimit: invalid rate limit"),
        "{status}"
    );
    assert_eq!(app.verdict("acme", "m2").await["code"], "not_found");
    assert_eq!(
        spend(&app, 4).await,
        [204, 204, 204, 429],
        "never silently unlimited: the last good limit holds"
    );
}

#[tokio::test]
async fn the_admin_api_sets_changes_keeps_and_removes_a_limit_and_refuses_a_bad_one() {
    let app = app_on_manual_clock().await;
    let token = app.new_key("acme", "svc", &[]).await;
    let view = |res: Response| async move {
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["rateLimit"].clone()
    };
    assert_eq!(view(app.get_key("acme", "svc").await).await, Value::Null);

    let set = json!({"enabled": true, "rateLimit": {"requests": 2, "perSeconds": 10}});
    let shown = view(app.update_key("acme", "svc", set).await).await;
    assert_eq!(shown, json!({"requests": 2, "perSeconds": 10}));
    assert!(
        app.read_file("acme")
            .contains("rateLimit: {requests: 2, perSeconds: 10}")
    );
    let kept = view(
        app.update_key("acme", "svc", json!({"enabled": true, "description": "d"}))
            .await,
    )
    .await;
    assert_eq!(kept, shown, "absent: unchanged");
    assert_eq!(
        app.rotate_key("acme", "svc", None)
            .await
            .json::<Value>()
            .await
            .unwrap()["rateLimit"],
        shown,
        "a rotation keeps it"
    );

    for bad in [
        json!({"requests": 0, "perSeconds": 10}),
        json!({"requests": 2, "perSeconds": 86_401}),
        json!({"requests": 5_000_000_000_u64, "perSeconds": 10}),
    ] {
        let res = app
            .update_key("acme", "svc", json!({"enabled": true, "rateLimit": bad}))
            .await;
        let problem = assert_problem(res, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], "rateLimit", "{problem}");
    }
    let unknown =
        json!({"enabled": true, "rateLimit": {"requests": 2, "perSeconds": 10, "burst": 9}});
    assert_problem(
        app.update_key("acme", "svc", unknown).await,
        400,
        "invalid_request",
    )
    .await;
    assert_eq!(
        view(app.get_key("acme", "svc").await).await,
        shown,
        "unchanged"
    );

    // JSON Schema counts 3.0 as an integer, so a generated client may send it so.
    let floats = json!({"enabled": true, "rateLimit": {"requests": 3.0, "perSeconds": 10.0}});
    let as_floats = view(app.update_key("acme", "svc", floats).await).await;
    assert_eq!(as_floats, json!({"requests": 3, "perSeconds": 10}));
    let fraction = json!({"enabled": true, "rateLimit": {"requests": 2.5, "perSeconds": 10}});
    assert_problem(
        app.update_key("acme", "svc", fraction).await,
        400,
        "invalid_request",
    )
    .await;

    let removed = view(
        app.update_key("acme", "svc", json!({"enabled": true, "rateLimit": null}))
            .await,
    )
    .await;
    assert_eq!(removed, Value::Null);
    assert!(!app.read_file("acme").contains("rateLimit"));
    drop(token);
}

#[test]
fn check_reports_a_bad_limit_with_its_line() {
    let text = format!(
        "apiKeys:\n  - name: a\n    hash: {}\n    rateLimit: {{requests: 10, perSeconds: 100000}}\n",
        KeyHash::of(b"a")
    );
    let dir = tenants_with(&[("acme", &text)]);

    let out = keyward()
        .args(["check", "--tenants"])
        .arg(dir.path().join("tenants"))
        .output()
        .unwrap();

    let printed = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("acme/security.yml:4:16: apiKeys[0].rateLimit: invalid rate limit"),
        "{printed}"
    );
}

#[tokio::test]
async fn the_document_declares_the_limit_with_its_bounds_and_the_rate_limited_answers() {
    let app = spawn_app().await;

    let doc: Value = serde_json::from_str(&app.text("/openapi.json").await).unwrap();

    let schemas = &doc["components"]["schemas"];
    for (schema, field, max) in [
        ("RateLimitBody", "requests", 1_000_000),
        ("RateLimitBody", "perSeconds", 86_400),
        ("RateLimitView", "requests", 1_000_000),
        ("RateLimitView", "perSeconds", 86_400),
    ] {
        let bounds = &schemas[schema]["properties"][field];
        assert_eq!(
            (&bounds["minimum"], &bounds["maximum"]),
            (&json!(1), &json!(max)),
            "{schema}.{field}"
        );
    }
    let refused = doc.to_string();
    assert!(refused.contains(r#""rate_limited""#));
    let forward_auth = &doc["paths"]["/auth/{tenantId}"]["get"]["responses"];
    assert!(
        forward_auth["429"]["headers"]["Retry-After"].is_object(),
        "{forward_auth}"
    );
}
