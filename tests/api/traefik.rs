//! `deploy/gateways/traefik/dynamic.yml`'s ForwardAuth check, sent to keyward as Traefik
//! sends it: GET at the configured address as it stands, the `authRequestHeaders` only, and
//! the client's method, host and URI in X-Forwarded-*. (Traefik is not in Debian, so no
//! real Traefik runs here.)

use serde_yaml::Value as Yaml;

use crate::helpers::*;

const RECIPE: &str = include_str!("../../deploy/gateways/traefik/dynamic.yml");

fn recipe() -> Yaml {
    serde_yaml::from_str(RECIPE).unwrap()
}

fn strings(list: &Yaml) -> Vec<String> {
    let list = list.as_sequence().unwrap();
    list.iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The check Traefik makes for a client's `POST /orders/42?page=2` that sent `key`.
async fn traefik_check(app: &TestApp, key: Option<&str>) -> reqwest::Response {
    let doc = recipe();
    let auth = &doc["http"]["middlewares"]["keyward"]["forwardAuth"];
    let address = auth["address"]
        .as_str()
        .unwrap()
        .replace("http://127.0.0.1:8080", &app.address);
    let mut req = reqwest::Client::new()
        .get(address)
        .header("User-Agent", "Go-http-client/1.1")
        .header("Accept-Encoding", "gzip")
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Forwarded-Method", "POST")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "shop.example.com")
        .header("X-Forwarded-Uri", "/orders/42?page=2&permissions=none");
    // `authRequestHeaders`: of the client's headers, only these go to keyward.
    for name in strings(&auth["authRequestHeaders"]) {
        assert_eq!(name, "X-API-Key", "only the key goes to keyward");
        if let Some(k) = key {
            req = req.header(&name, k);
        }
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn traefik_s_check_passes_exactly_the_headers_keyward_sends_and_refuses_as_keyward_does() {
    let app = spawn_app().await;
    let reader = app.new_key("acme", "reader", &["orders:read"]).await;
    let write_only = app.new_key("acme", "writer-only", &["orders:write"]).await;
    let theirs = app.new_key("globex", "theirs", &["orders:read"]).await;

    let ok = traefik_check(&app, Some(&reader)).await;
    assert!(ok.status().is_success(), "{}", ok.status());
    let mut sent: Vec<String> = ok
        .headers()
        .keys()
        .map(|h| h.as_str().to_owned())
        .filter(|h| h.starts_with("x-keyward-"))
        .collect();
    sent.sort();
    assert_eq!(ok.headers()["x-keyward-tenant"], "acme");
    assert_eq!(ok.headers()["x-keyward-key"], "reader");
    assert_eq!(ok.headers()["x-keyward-permissions"], "orders:read");
    let doc = recipe();
    let auth = &doc["http"]["middlewares"]["keyward"]["forwardAuth"];
    let mut copied: Vec<String> = strings(&auth["authResponseHeaders"])
        .iter()
        .map(|h| h.to_lowercase())
        .collect();
    copied.sort();
    assert_eq!(copied, sent, "authResponseHeaders names what keyward sends");

    for (key, status) in [
        (None, 401),
        (Some("kw_not-a-real-key"), 401),
        (Some(&*theirs), 401),
        (Some(&*write_only), 403),
    ] {
        // Traefik hands a non-2xx answer to the client as it is: status, headers and body.
        let refused = traefik_check(&app, key).await;
        assert_eq!(refused.status(), status, "{key:?}");
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
        let body = refused.text().await.unwrap();
        assert!(key.is_none_or(|k| !body.contains(k)), "the key is echoed");
    }
}

#[tokio::test]
async fn traefik_s_check_of_a_key_over_its_limit_is_keyward_s_429_with_retry_after() {
    let clock = keyward::clock::Clock::manual(time::macros::datetime!(2030-01-01 00:00 UTC));
    let app = spawn_app_with_clock(clock, |_| {}).await;
    let body = serde_json::json!({"name": "limited", "permissions": ["orders:read"],
        "rateLimit": {"requests": 1, "perSeconds": 60}});
    let created: serde_json::Value = app.create_key("acme", body).await.json().await.unwrap();
    let key = created["token"].as_str().unwrap();

    assert!(traefik_check(&app, Some(key)).await.status().is_success());
    // Traefik hands a non-2xx answer to the client as it is: status, headers and body.
    let over = traefik_check(&app, Some(key)).await;

    assert_eq!(over.status(), 429);
    assert_eq!(over.headers()["retry-after"], "60");
    assert_eq!(over.headers()["ratelimit"], r#""key";r=0;t=60"#);
    assert_eq!(over.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_traefik_recipe_checks_first_then_drops_the_key_before_the_service() {
    let doc = recipe();
    let http = &doc["http"];

    let chain = strings(&http["routers"]["orders"]["middlewares"]);
    assert_eq!(chain, ["keyward", "keyward-drop-key"]);
    let drop = &http["middlewares"]["keyward-drop-key"]["headers"]["customRequestHeaders"];
    // Traefik removes a request header set to the empty string.
    assert_eq!(drop["X-API-Key"], "");
}
