//! Operations: Prometheus metrics and CORS for browser dashboards.

use serde_json::json;

use crate::helpers::*;

async fn metrics(app: &TestApp) -> String {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    res.text().await.unwrap()
}

/// The value of the sample line that starts with `prefix` (labels included), or 0.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_verify_outcomes_reloads_and_keys() {
    let app = spawn_app().await;
    let before = metrics(&app).await;
    let token = app.new_key("acme", "m", &[]).await;
    app.client
        .post(app.url("/api/acme/apiKeys/verify"))
        .json(&json!({"key": token}))
        .send()
        .await
        .unwrap();
    app.client
        .post(app.url("/api/acme/apiKeys/verify"))
        .json(&json!({"key": "kw_bad"}))
        .send()
        .await
        .unwrap();
    std::fs::write(app.file("globex"), "apiKeys: [\n").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;

    let after = metrics(&app).await;

    for (prefix, at_least) in [
        (r#"keyward_verify_total{code="valid"}"#, 1.0),
        (r#"keyward_verify_total{code="malformed"}"#, 1.0),
        (
            r#"http_requests_total{route="/api/{tenantId}/admin/apiKeys",method="POST",status="201"}"#,
            1.0,
        ),
        (r#"keyward_reload_errors_total{tenant="globex"}"#, 1.0),
    ] {
        let grew = sample(&after, prefix) - sample(&before, prefix);
        assert!(grew >= at_least, "{prefix} grew by {grew}:\n{after}");
    }
    assert!(
        after.contains("http_request_duration_seconds_bucket{"),
        "{after}"
    );
    assert!(after.contains(r#"keyward_keys{tenant="acme"}"#), "{after}");
    assert!(!after.contains(&token) && !after.contains("sha256"));
}

#[tokio::test]
async fn a_made_up_method_is_counted_as_other_and_mints_no_series() {
    let app = spawn_app().await;
    let before = metrics(&app).await;
    for i in 0..3 {
        let method = reqwest::Method::from_bytes(format!("BREW{i}").as_bytes()).unwrap();
        let res = app
            .client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405);
    }

    let after = metrics(&app).await;
    let other = r#"http_requests_total{route="/healthz",method="other",status="405"}"#;
    assert!(
        sample(&after, other) - sample(&before, other) >= 3.0,
        "{after}"
    );
    assert!(!after.contains("BREW"), "{after}");
}

#[tokio::test]
async fn cors_lets_configured_dashboards_in_and_exposes_the_etag() {
    let app =
        spawn_app_with(|s| s.cors_allowed_origins = vec!["https://dash.example".into()]).await;

    let preflight = app
        .client
        .request(
            reqwest::Method::OPTIONS,
            app.keys_url("acme") + "/ci-deploy",
        )
        .header("Origin", "https://dash.example")
        .header("Access-Control-Request-Method", "PUT")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type, if-match",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://dash.example"
    );

    let res = app
        .client
        .get(app.keys_url("acme") + "/ci-deploy")
        .header("Origin", "https://dash.example")
        .bearer_auth(token("acme", READ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("etag"), "{exposed}");

    let other = app
        .client
        .request(reqwest::Method::OPTIONS, app.keys_url("acme"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "GET")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
