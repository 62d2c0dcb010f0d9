//! `/ext-authz/{tenantId}`, spoken to exactly as Envoy's HTTP ext_authz client does with
//! `deploy/gateways/envoy/envoy.yaml`: the original method, `path_prefix` followed by the
//! original path and query, the original Host, `Content-Length: 0`, the allowed headers only
//! and the configured added ones. (Envoy is not in Debian, so no real Envoy runs here.)

use std::collections::BTreeMap;

use serde_yaml::Value as Yaml;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utoipa::OpenApi;

use crate::helpers::*;

const RECIPE: &str = include_str!("../../deploy/gateways/envoy/envoy.yaml");
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// What the recipe tells Envoy about the check.
struct Recipe {
    filter: Yaml,
    route: Yaml,
}

impl Recipe {
    fn load() -> Self {
        let doc: Yaml = serde_yaml::from_str(RECIPE).unwrap();
        let manager = &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        Self {
            filter: manager["http_filters"][0]["typed_config"].clone(),
            route: manager["route_config"]["virtual_hosts"][0]["routes"][0].clone(),
        }
    }

    fn service(&self) -> &Yaml {
        &self.filter["http_service"]
    }

    fn path_prefix(&self) -> &str {
        self.service()["path_prefix"].as_str().unwrap()
    }

    /// `headers_to_add` of the check request, as (name, value).
    fn added_headers(&self) -> Vec<(String, String)> {
        let added = self.service()["authorization_request"]["headers_to_add"]
            .as_sequence()
            .unwrap();
        added
            .iter()
            .map(|h| (str_of(&h["key"]), str_of(&h["value"])))
            .collect()
    }

    fn patterns(&self, section: &str, list: &str) -> Vec<String> {
        let patterns = self.service()[section][list]["patterns"]
            .as_sequence()
            .unwrap();
        patterns.iter().map(|p| str_of(&p["exact"])).collect()
    }
}

fn str_of(value: &Yaml) -> String {
    value.as_str().unwrap().to_owned()
}

/// keyward's answer to a check.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends the check request Envoy would send for `method original_path` with these headers
/// (the allowed ones the client sent, then the configured ones), byte for byte, since an
/// HTTP client library would resolve the `..` a client may put in its path.
async fn envoy_check(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(String, String)],
) -> Answer {
    let address = app.address.trim_start_matches("http://");
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: shop.example.com\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += "content-length: 0\r\nx-envoy-expected-rq-timeout-ms: 500\r\n";
    request += "connection: close\r\n\r\n";
    let mut conn = tokio::net::TcpStream::connect(address).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    parse_answer(&String::from_utf8(raw).unwrap())
}

fn parse_answer(raw: &str) -> Answer {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status: status.parse().unwrap(),
        headers,
        body: body.to_owned(),
    }
}

/// The headers of a check for a client that sent `key`, as the recipe configures them.
fn check_headers(recipe: &Recipe, key: Option<&str>) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = key
        .map(|k| ("x-api-key".to_owned(), k.to_owned()))
        .into_iter()
        .collect();
    headers.extend(recipe.added_headers());
    headers
}

fn assert_identity(answer: &Answer, key: &str, permissions: &str) {
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.headers["x-keyward-tenant"], "acme", "{answer:?}");
    assert_eq!(answer.headers["x-keyward-key"], key, "{answer:?}");
    assert_eq!(answer.headers["x-keyward-permissions"], permissions);
}

fn assert_refused(answer: &Answer, status: u16, key: Option<&str>) {
    assert_eq!(answer.status, status, "{key:?}: {answer:?}");
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    if let Some(key) = key {
        assert!(!answer.body.contains(key), "the key is echoed: {answer:?}");
    }
}

#[tokio::test]
async fn envoy_s_check_of_any_method_and_any_path_below_the_tenant_answers_200_with_identity() {
    let app = spawn_app().await;
    let recipe = Recipe::load();
    let key = app.new_key("acme", "reader", &["orders:read"]).await;
    let headers = check_headers(&recipe, Some(&key));
    let prefix = recipe.path_prefix();

    for method in METHODS {
        // The client's query string is the service's business, not a misspelt permission.
        for original in ["/orders/42?page=2&permissions=none", "/", ""] {
            let answer = envoy_check(&app, method, &format!("{prefix}{original}"), &headers).await;
            assert_identity(&answer, "reader", "orders:read");
            assert_eq!(answer.body, "", "{method} {original}");
        }
    }
}

#[tokio::test]
async fn envoy_s_check_refuses_as_forward_auth_does_and_never_echoes_the_key() {
    let app = spawn_app().await;
    let recipe = Recipe::load();
    let write_only = app.new_key("acme", "writer-only", &["orders:write"]).await;
    let theirs = app.new_key("globex", "theirs", &["orders:read"]).await;
    let path = format!("{}/orders/42", recipe.path_prefix());

    for method in ["GET", "POST", "DELETE"] {
        for key in [None, Some("kw_not-a-real-key"), Some(&*theirs)] {
            let answer = envoy_check(&app, method, &path, &check_headers(&recipe, key)).await;
            assert_refused(&answer, 401, key);
        }
        let headers = check_headers(&recipe, Some(&write_only));
        let answer = envoy_check(&app, method, &path, &headers).await;
        assert_refused(&answer, 403, Some(&write_only));
    }
}

#[tokio::test]
async fn envoy_s_check_of_a_key_over_its_limit_is_429_and_the_recipe_passes_retry_after_on() {
    let clock = keyward::clock::Clock::manual(time::macros::datetime!(2030-01-01 00:00 UTC));
    let app = spawn_app_with_clock(clock, |_| {}).await;
    let recipe = Recipe::load();
    let body = serde_json::json!({"name": "limited", "permissions": ["orders:read"],
        "rateLimit": {"requests": 1, "perSeconds": 60}});
    let created: serde_json::Value = app.create_key("acme", body).await.json().await.unwrap();
    let key = created["token"].as_str().unwrap();
    let path = format!("{}/orders/42", recipe.path_prefix());
    let headers = check_headers(&recipe, Some(key));

    let within = envoy_check(&app, "GET", &path, &headers).await;
    let over = envoy_check(&app, "GET", &path, &headers).await;

    assert_identity(&within, "limited", "orders:read");
    assert_refused(&over, 429, Some(key));
    assert_eq!(over.headers["retry-after"], "60", "{over:?}");
    let to_client = recipe.patterns("authorization_response", "allowed_client_headers");
    for name in ["retry-after", "ratelimit", "ratelimit-policy"] {
        assert!(over.headers.contains_key(name), "{name}: {over:?}");
        assert!(to_client.iter().any(|p| p == name), "{name} stops at Envoy");
    }
    let on_success = recipe.patterns(
        "authorization_response",
        "allowed_client_headers_on_success",
    );
    for name in ["ratelimit", "ratelimit-policy"] {
        assert!(within.headers.contains_key(name), "{name}: {within:?}");
        assert!(
            on_success.iter().any(|p| p == name),
            "{name} stops at Envoy"
        );
    }
}

#[tokio::test]
async fn the_tenant_is_the_path_s_first_segment_whatever_the_client_s_path_holds() {
    let app = spawn_app().await;
    let recipe = Recipe::load();
    let ours = app.new_key("acme", "reader", &["orders:read"]).await;
    let theirs = app.new_key("globex", "theirs", &["orders:read"]).await;
    let prefix = recipe.path_prefix();

    for original in ["/../globex/orders", "/%2e%2e/globex/orders", "/..%2fglobex"] {
        let path = format!("{prefix}{original}");
        let answer = envoy_check(&app, "GET", &path, &check_headers(&recipe, Some(&theirs))).await;
        assert_refused(&answer, 401, Some(&theirs));
        let answer = envoy_check(&app, "GET", &path, &check_headers(&recipe, Some(&ours))).await;
        assert_identity(&answer, "reader", "orders:read");
    }
}

#[tokio::test]
async fn the_permissions_the_gateway_requires_are_comma_or_space_separated_or_repeated() {
    let app = spawn_app().await;
    let reader = app.new_key("acme", "reader", &["orders:read"]).await;
    let both = app
        .new_key("acme", "both", &["orders:read", "orders:write"])
        .await;
    let check = async |key: &str, required: &[&str]| {
        let mut headers = vec![("x-api-key".to_owned(), key.to_owned())];
        for value in required {
            headers.push(("x-keyward-permission".to_owned(), (*value).to_owned()));
        }
        envoy_check(&app, "PUT", "/ext-authz/acme/orders/42", &headers).await
    };

    for required in [
        &["orders:read, orders:write"][..],
        &["orders:read orders:write"],
        &["orders:read", "orders:write"],
    ] {
        assert_identity(
            &check(&both, required).await,
            "both",
            "orders:read orders:write",
        );
        assert_refused(&check(&reader, required).await, 403, Some(&reader));
    }
    // No header: any valid key of the tenant, as `/auth/{tenantId}` without `?permission=`.
    assert_identity(&check(&reader, &[]).await, "reader", "orders:read");
    // A header that names nothing is a broken configuration: it never means "any key".
    for empty in [&[""][..], &[" , "], &["orders:read", ","]] {
        let answer = check(&both, empty).await;
        assert_refused(&answer, 400, Some(&both));
    }
}

#[tokio::test]
async fn the_envoy_recipe_sends_only_the_key_passes_exactly_keyward_s_headers_and_strips_the_key() {
    let app = spawn_app().await;
    let recipe = Recipe::load();
    let key = app.new_key("acme", "reader", &["orders:read"]).await;
    let answer = envoy_check(
        &app,
        "GET",
        &format!("{}/orders/1", recipe.path_prefix()),
        &check_headers(&recipe, Some(&key)),
    )
    .await;
    let sent: Vec<String> = answer
        .headers
        .keys()
        .filter(|h| h.starts_with("x-keyward-"))
        .cloned()
        .collect();

    assert_eq!(
        recipe.patterns("authorization_request", "allowed_headers"),
        ["x-api-key"]
    );
    let added: Vec<String> = recipe.added_headers().into_iter().map(|h| h.0).collect();
    assert_eq!(added, ["x-keyward-permission"]);
    let mut upstream = recipe.patterns("authorization_response", "allowed_upstream_headers");
    upstream.sort();
    assert_eq!(upstream, sent, "the service gets exactly keyward's headers");
    assert_eq!(recipe.route["request_headers_to_remove"][0], "x-api-key");
    assert_eq!(recipe.filter["failure_mode_allow"], false);
}

#[test]
fn the_documented_check_has_one_operation_id_per_method() {
    let doc = serde_json::to_value(keyward::routes::ext_authz::Api::openapi()).unwrap();
    let item = &doc["paths"]["/ext-authz/{tenantId}/{path}"];
    for method in METHODS {
        let lower = method.to_lowercase();
        let title = format!("{}{}", &method[..1], &lower[1..]);
        assert_eq!(item[&lower]["operationId"], format!("extAuthz{title}"));
    }
}

#[tokio::test]
async fn a_method_no_checked_request_has_is_405_and_lets_nothing_through() {
    let app = spawn_app().await;
    let token = app.new_key("acme", "svc", &["orders:read"]).await;
    let trace = reqwest::Method::from_bytes(b"TRACE").unwrap();
    let res = app
        .client
        .request(trace, app.url("/ext-authz/acme/orders/1"))
        .header("X-API-Key", &token)
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("x-keyward-tenant").is_none());
    assert_problem(res, 405, "method_not_allowed").await;
}
