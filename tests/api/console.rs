//! The console at `/`: what the server promises about the page and its assets. The browser
//! suite is its own test binary (`tests/console_browser.rs`).

use reqwest::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};

use crate::helpers::*;

async fn get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).send().await.unwrap()
}

fn header(res: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default()
}

/// The asset URLs the page names, in order.
fn asset_urls(html: &str) -> Vec<String> {
    html.split(['"', '\''])
        .filter(|s| s.starts_with("/console/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_console_page_runs_only_its_own_scripts_and_is_never_cached_stale() {
    let app = spawn_app().await;

    let res = get(&app, "/").await;

    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(header(&res, CACHE_CONTROL), "no-cache");
    let csp = header(&res, CONTENT_SECURITY_POLICY).to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let html = res.text().await.unwrap();
    // No inline script or style: every script is loaded from this server.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains(r#"<script type="module" src="/console/"#));
    assert!(!html.contains("<style") && !html.contains(" style="));
    assert_eq!(inline_handlers(&html), Vec::<&str>::new());
}

/// Attributes such as `onclick=`: inline script a strict policy would refuse.
fn inline_handlers(html: &str) -> Vec<&str> {
    html.match_indices(" on")
        .map(|(i, _)| &html[i + 1..])
        .map(|rest| {
            &rest[..rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len())]
        })
        .filter(|name| html.contains(&format!(" {name}=")))
        .collect()
}

#[tokio::test]
async fn assets_are_embedded_kept_for_good_and_load_nothing_from_elsewhere() {
    let app = spawn_app().await;
    let html = get(&app, "/").await.text().await.unwrap();
    let mut files = asset_urls(&html);
    // The modules app.js imports.
    let version = files[0].split('/').nth(2).unwrap().to_owned();
    for module in ["api.js", "session.js", "keys.js", "history.js"] {
        files.push(format!("/console/{version}/{module}"));
    }

    for path in &files {
        let res = get(&app, path).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            header(&res, CACHE_CONTROL),
            "public, max-age=31536000, immutable",
            "{path}"
        );
        let body = res.text().await.unwrap();
        // No CDN, no font service, no analytics: the only absolute URL is SVG's namespace.
        let outside: Vec<&str> = body
            .match_indices("http")
            .map(|(i, _)| &body[i..(i + 40).min(body.len())])
            .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
            .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
            .collect();
        assert!(outside.is_empty(), "{path} names {outside:?}");
    }
}

#[tokio::test]
async fn an_asset_of_another_build_or_name_is_a_404_problem() {
    let app = spawn_app().await;
    let html = get(&app, "/").await.text().await.unwrap();
    let css = asset_urls(&html)
        .into_iter()
        .find(|u| u.ends_with(".css"))
        .unwrap();

    for path in [
        css.replace("console.css", "nothing.css"),
        "/console/000000000000/console.css".into(),
        css.replace("console.css", "..%2Fconfig.json"),
    ] {
        let res = get(&app, &path).await;
        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(header(&res, CONTENT_TYPE), "application/problem+json");
    }
}

#[tokio::test]
async fn the_console_config_says_how_to_sign_in_and_holds_no_secret() {
    let app = spawn_app().await;

    let res = get(&app, "/console/config.json").await;

    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, CACHE_CONTROL), "no-cache");
    let config: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        config,
        serde_json::json!({"devMode": false, "tenantClaim": "tenant_id", "signIn": null})
    );
}

#[tokio::test]
async fn a_console_client_id_without_an_issuer_refuses_to_start() {
    let dir = tenants_with(&[("acme", ACME_FILE)]);
    let mut settings = settings_for(dir.path());
    settings.console.client_id = Some("keyward-console".into());

    let err = keyward::startup::Application::build(settings)
        .await
        .err()
        .expect("start-up is refused");

    assert!(err.to_string().contains("auth.issuer"), "{err}");
}
