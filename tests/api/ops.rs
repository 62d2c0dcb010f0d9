//! Operations: Prometheus metrics (guarded by `metrics_token` when set) and CORS for
//! browser dashboards.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

/// The value of the sample line that starts with `prefix` (labels included), or 0.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

// Each app has a registry of its own, so every count below is exactly this app's traffic: a
// count leaking in from another app, or one increment made twice, fails the test.
#[tokio::test]
async fn metrics_count_requests_verify_outcomes_reloads_and_keys() {
    // Arrange
    let app = spawn_app().await;
    let token = app.new_key("acme", "m", &[]).await;
    app.verify("acme", json!({"key": token})).await;
    app.verify("acme", json!({"key": "kw_bad"})).await;
    std::fs::write(app.file("globex"), "apiKeys: [\n").unwrap();
    let reload_errors = r#"keyward_reload_errors_total{tenant="globex"}"#;
    eventually(
        "a reload error counted for globex",
        Duration::from_secs(5),
        || app.metrics(),
        |text| sample(text, reload_errors) > 0.0,
    )
    .await;

    // Act
    let text = app.metrics().await;

    // Assert
    for (prefix, count) in [
        (r#"keyward_verify_total{code="valid"}"#, 1.0),
        (r#"keyward_verify_total{code="malformed"}"#, 1.0),
        (r#"keyward_verify_total{code="not_found"}"#, 0.0),
        (
            r#"http_requests_total{route="/api/{tenantId}/admin/apiKeys",method="POST",status="201"}"#,
            1.0,
        ),
        (reload_errors, 1.0),
        (r#"keyward_keys{tenant="acme"}"#, 3.0),
    ] {
        assert_eq!(sample(&text, prefix), count, "{prefix}:\n{text}");
    }
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(!text.contains(&token) && !text.contains("sha256"));
}

#[tokio::test]
async fn a_made_up_method_is_counted_as_other_and_mints_no_series() {
    let app = spawn_app().await;
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

    let text = app.metrics().await;

    let other = r#"http_requests_total{route="/healthz",method="other",status="405"}"#;
    assert_eq!(sample(&text, other), 3.0, "{text}");
    assert!(!text.contains("BREW"), "{text}");
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

#[tokio::test]
async fn metrics_need_the_metrics_token_when_one_is_set() {
    let token = "scraper-token-0123456789";
    let app = spawn_app_with(|s| s.metrics_token = Some(token.to_owned().into())).await;
    let metrics = |bearer: Option<&str>| {
        let mut req = app.client.get(app.url("/metrics"));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send()
    };

    assert_problem(metrics(None).await.unwrap(), 401, "invalid_token").await;
    assert_problem(
        metrics(Some("scraper-token-0123456780")).await.unwrap(),
        401,
        "invalid_token",
    )
    .await;
    let ok = metrics(Some(token)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("keyward_keys{tenant=\"acme\"}")
    );
}

#[tokio::test]
async fn a_scraper_gets_openmetrics_only_when_it_asks_for_it_first() {
    let app = spawn_app().await;
    let scrape = |accept: &'static str| {
        let req = app.client.get(app.url("/metrics")).header("accept", accept);
        async move {
            let res = req.send().await.unwrap();
            let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
            (content_type, res.text().await.unwrap())
        }
    };
    // What Prometheus itself sends.
    let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

    let (om_type, om) = scrape(prometheus).await;
    let (old_om_type, _) = scrape("application/openmetrics-text; version=0.0.1").await;
    let (text_type, text) = scrape("text/plain;q=0.9, application/openmetrics-text;q=0.1").await;

    assert_eq!(
        om_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.contains("# TYPE http_requests counter\n"), "{om}");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert_eq!(
        old_om_type,
        "application/openmetrics-text; version=0.0.1; charset=utf-8"
    );
    assert_eq!(text_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        text.contains("# TYPE http_requests_total counter\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
}
