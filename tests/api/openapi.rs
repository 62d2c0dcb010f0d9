//! The OpenAPI document: valid OpenAPI 3.1 by a real validator, and complete; and the
//! `/docs` page that renders it, served whole by keyward (no other origin, offline too).

use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::*;

/// Is the reference validator (`openapi-spec-validator`, which `.ci/run` installs)
/// importable? Nothing is installed from the network at test time: locally, without it,
/// the validation is skipped with a message; in CI its absence is a failure.
fn validator_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must install openapi-spec-validator (see .ci/run)"
    );
    if !found {
        eprintln!(
            "SKIPPED: OpenAPI validation: `python3 -m pip install openapi-spec-validator` to run it"
        );
    }
    found
}

/// Asserts that `body` fits the schema the document declares for `method path` answering
/// `status` (the reference Python validator, JSON Schema 2020-12, `$ref`s resolved in the
/// document). Skipped where the validator is missing, as `validator_available` says.
pub(crate) fn assert_fits_the_document(
    document: &Value,
    method: &str,
    path: &str,
    status: u16,
    body: &Value,
) {
    if !validator_available() {
        return;
    }
    let escape = |s: &str| {
        s.replace('~', "~0")
            .replace('/', "~1")
            .replace('{', "%7B")
            .replace('}', "%7D")
    };
    let pointer = format!(
        "#/paths/{}/{method}/responses/{status}/content/application~1json/schema",
        escape(path)
    );
    let dir = tempfile::tempdir().unwrap();
    let (doc_file, body_file) = (dir.path().join("doc.json"), dir.path().join("body.json"));
    std::fs::write(&doc_file, document.to_string()).unwrap();
    std::fs::write(&body_file, body.to_string()).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom jsonschema import Draft202012Validator\n\
             root = json.load(open(sys.argv[1]))\nroot['$ref'] = sys.argv[3]\n\
             Draft202012Validator(root).validate(json.load(open(sys.argv[2])))",
        ])
        .arg(&doc_file)
        .arg(&body_file)
        .arg(&pointer)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{method} {path} {status}: {body} does not fit the document: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_openapi_document_is_valid_openapi_3_1_and_lists_every_route() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));

    if validator_available() {
        let file = app.dir.path().join("openapi.json");
        std::fs::write(&file, &text).unwrap();
        let out = Command::new("python3")
            .args([
                "-c",
                "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The router and the document agree: on every documented path, a method it does not
    // document is a 405 whose `Allow` names exactly the documented methods.
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        // A path that documents PATCH answers every method (`/ext-authz/...`): there is no
        // method left to probe for a 405.
        if item.get("patch").is_some() {
            continue;
        }
        let documented: Vec<String> = ["get", "post", "put", "delete"]
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .map(str::to_uppercase)
            .collect();
        let url = app.url(
            &path
                .replace("{tenantId}", "acme")
                .replace("{keyName}", "ci-deploy"),
        );
        assert_eq!(allowed_methods(&url).await, sorted(documented), "{path}");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["apiKey"]["name"], "X-API-Key");
    let create = &doc["paths"]["/api/{tenantId}/admin/apiKeys"]["post"];
    assert!(create["responses"]["201"].is_object() && create["responses"]["422"].is_object());
    assert!(doc["components"]["schemas"]["ApiKeyView"]["properties"]["hash"].is_null());
}

/// The methods a path's 405 names in `Allow`, sorted, HEAD aside (it goes with GET, RFC
/// 9110, and the document names GET alone).
async fn allowed_methods(url: &str) -> Vec<String> {
    // A new connection each: the validator can outlast the server's keep-alive, and a
    // PATCH on a connection the server just closed is not retried.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let res = client
        .request(reqwest::Method::PATCH, url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405, "PATCH {url}");
    let allow = res.headers()["allow"].to_str().unwrap();
    sorted(
        allow
            .split(", ")
            .filter(|m| *m != "HEAD")
            .map(str::to_owned)
            .collect(),
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn document(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// What only a browser or a git host calls: mounted, and kept out of the clients' document.
const OFF_DOCUMENT: [(&str, &str, &str); 6] = [
    ("/", "/", "GET"),
    ("/console/config.json", "/console/config.json", "GET"),
    ("/console/{version}/{file}", "/console/v1/app.js", "GET"),
    ("/docs", "/docs", "GET"),
    ("/docs/{version}/{file}", "/docs/v1/docs.js", "GET"),
    ("/hooks/git", "/hooks/git", "POST"),
];

#[tokio::test]
async fn the_console_the_docs_page_and_the_webhook_are_mounted_but_not_in_the_document() {
    let app = spawn_app().await;

    let doc = document(&app).await;

    for (pattern, path, method) in OFF_DOCUMENT {
        assert!(doc["paths"][pattern].is_null(), "{pattern} is documented");
        assert_eq!(
            allowed_methods(&app.url(path)).await,
            [method],
            "{pattern} is not mounted as expected"
        );
    }
}

/// The operationId each client method is named after.
const OPERATION_IDS: [(&str, &str, &str); 26] = [
    ("get", "/api/{tenantId}/admin/apiKeys", "listApiKeys"),
    ("post", "/api/{tenantId}/admin/apiKeys", "createApiKey"),
    (
        "post",
        "/api/{tenantId}/admin/apiKeys/lookup",
        "lookupApiKey",
    ),
    (
        "get",
        "/api/{tenantId}/admin/apiKeys/{keyName}",
        "getApiKey",
    ),
    (
        "put",
        "/api/{tenantId}/admin/apiKeys/{keyName}",
        "updateApiKey",
    ),
    (
        "delete",
        "/api/{tenantId}/admin/apiKeys/{keyName}",
        "deleteApiKey",
    ),
    (
        "post",
        "/api/{tenantId}/admin/apiKeys/{keyName}/rotate",
        "rotateApiKey",
    ),
    (
        "delete",
        "/api/{tenantId}/admin/apiKeys/{keyName}/graceTokens",
        "endGraceTokens",
    ),
    ("get", "/api/{tenantId}/admin/status", "getTenantStatus"),
    ("get", "/api/tenants", "listTenants"),
    ("get", "/api/{tenantId}/admin/history", "listHistory"),
    ("post", "/api/{tenantId}/apiKeys/verify", "verifyApiKey"),
    ("get", "/auth/{tenantId}", "forwardAuth"),
    ("get", "/api/{tenantId}/apiKeys/current", "getCurrentApiKey"),
    (
        "delete",
        "/api/{tenantId}/apiKeys/current",
        "revokeCurrentApiKey",
    ),
    ("get", "/healthz", "healthz"),
    ("get", "/readyz", "readyz"),
    ("get", "/metrics", "getMetrics"),
    ("get", "/openapi.json", "getOpenApi"),
    ("get", "/ext-authz/{tenantId}/{path}", "extAuthzGet"),
    ("head", "/ext-authz/{tenantId}/{path}", "extAuthzHead"),
    ("post", "/ext-authz/{tenantId}/{path}", "extAuthzPost"),
    ("put", "/ext-authz/{tenantId}/{path}", "extAuthzPut"),
    ("patch", "/ext-authz/{tenantId}/{path}", "extAuthzPatch"),
    ("delete", "/ext-authz/{tenantId}/{path}", "extAuthzDelete"),
    ("options", "/ext-authz/{tenantId}/{path}", "extAuthzOptions"),
];

/// Every operation of the document, as (method, path, operation).
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            all.push((method.clone(), path.clone(), op));
        }
    }
    all
}

#[tokio::test]
async fn every_operation_is_named_for_what_it_does_and_has_a_summary_and_a_description() {
    let app = spawn_app().await;

    let doc = document(&app).await;

    let ops = operations(&doc);
    assert_eq!(ops.len(), OPERATION_IDS.len(), "one name per operation");
    for (method, path, id) in OPERATION_IDS {
        let op = &doc["paths"][path][method];
        assert_eq!(op["operationId"], id, "{method} {path}");
    }
    for (method, path, op) in ops {
        for field in ["summary", "description"] {
            let text = op[field].as_str().unwrap_or_default();
            assert!(!text.trim().is_empty(), "{method} {path} has no {field}");
        }
        let summary = op["summary"].as_str().unwrap();
        assert!(
            !summary.contains('\n'),
            "{method} {path}: a one-line summary"
        );
    }
}

/// The values of every `name="..."` attribute in `html`, in order.
fn attribute_values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let marker = format!(" {name}=\"");
    html.split(marker.as_str())
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect()
}

/// The page as a browser gets it: its address (to resolve what it names), headers and HTML.
async fn docs_page(app: &TestApp) -> (reqwest::Url, reqwest::header::HeaderMap, String) {
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    (
        res.url().clone(),
        res.headers().clone(),
        res.text().await.unwrap(),
    )
}

fn content_type(headers: &reqwest::header::HeaderMap) -> &str {
    headers[reqwest::header::CONTENT_TYPE].to_str().unwrap()
}

#[tokio::test]
async fn the_docs_page_points_at_the_document() {
    let app = spawn_app().await;

    let (base, _, page) = docs_page(&app).await;

    let named = attribute_values(&page, "data-document");
    assert_eq!(named.len(), 1, "{page}");
    assert_eq!(
        base.join(named[0]).unwrap().as_str(),
        app.url("/openapi.json")
    );
}

#[tokio::test]
async fn the_docs_page_and_every_file_it_names_are_served_by_keyward_and_name_no_other_url() {
    let app = spawn_app().await;

    let (base, headers, page) = docs_page(&app).await;

    assert_eq!(content_type(&headers), "text/html; charset=utf-8");
    let mut named: Vec<&str> = attribute_values(&page, "src");
    named.extend(attribute_values(&page, "href"));
    assert!(
        named.iter().any(|n| n.ends_with(".js")),
        "no script: {page}"
    );
    assert!(
        named.iter().any(|n| n.ends_with(".css")),
        "no style: {page}"
    );
    let mut texts = vec![page.clone()];
    for name in named {
        let url = base.join(name).unwrap();
        assert_eq!(url.origin(), base.origin(), "{name} is not keyward's");
        let res = app.client.get(url.clone()).send().await.unwrap();
        assert_eq!(res.status(), 200, "{url}");
        let expected = match url.path().rsplit_once('.').map(|(_, ext)| ext) {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("json") => "application/json",
            other => panic!("{url}: an unexpected kind of file ({other:?})"),
        };
        assert_eq!(content_type(res.headers()), expected, "{url}");
        let text = res.text().await.unwrap();
        // The document is data the page shows as text; the page's own code is what runs.
        if !expected.starts_with("application/json") {
            texts.push(text);
        }
    }
    for text in texts {
        for scheme in ["http://", "https://"] {
            for (at, _) in text.match_indices(scheme) {
                assert!(
                    text[at..].starts_with(&app.address),
                    "an outside URL: {}",
                    &text[at..(at + 60).min(text.len())]
                );
            }
        }
    }
}

#[tokio::test]
async fn the_docs_page_runs_only_its_own_files_each_pinned_by_its_integrity_hash() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let app = spawn_app().await;

    let (base, headers, page) = docs_page(&app).await;

    let policy = headers[reqwest::header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    let directives: Vec<Vec<&str>> = policy
        .split(';')
        .map(|d| d.split_whitespace().collect())
        .collect();
    for directive in &directives {
        for source in &directive[1..] {
            assert!(
                ["'self'", "'none'"].contains(source),
                "{} allows {source}: {policy}",
                directive[0]
            );
        }
    }
    for needed in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
    ] {
        let needed: Vec<&str> = needed.split(' ').collect();
        assert!(directives.contains(&needed), "{policy}");
    }
    let tags = page
        .split('<')
        .filter(|t| t.starts_with("script") || t.starts_with("link"));
    for tag in tags {
        let url = attribute_values(tag, "src")
            .into_iter()
            .chain(attribute_values(tag, "href"))
            .next()
            .unwrap_or_else(|| panic!("loads nothing: {tag}"));
        let bytes = app
            .client
            .get(base.join(url).unwrap())
            .send()
            .await
            .unwrap();
        let bytes = bytes.bytes().await.unwrap();
        let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&bytes));
        assert_eq!(
            attribute_values(tag, "integrity"),
            [format!("sha384-{digest}")],
            "{tag}"
        );
    }
}

#[tokio::test]
async fn a_docs_file_of_another_build_or_one_that_does_not_exist_is_a_404_problem() {
    let app = spawn_app().await;
    let (base, _, page) = docs_page(&app).await;
    let script = attribute_values(&page, "src")[0];
    let (version, _) = script.trim_start_matches("docs/").split_once('/').unwrap();

    for path in [
        "/docs/000000000000/docs.js".to_owned(),
        format!("/docs/{version}/missing.js"),
        format!("/docs/{version}/..%2Fdocs.js"),
    ] {
        let res = app
            .client
            .get(base.join(&path).unwrap())
            .send()
            .await
            .unwrap();

        assert_eq!(res.status(), 404, "{path}");
        assert_eq!(
            content_type(res.headers()),
            "application/problem+json",
            "{path}"
        );
    }
}

/// `schema`, or the component it points at with `$ref`.
fn resolved<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// Does `pattern` match `text`? Python's `re` reads these patterns as JSON Schema's
/// ECMA-262 does; `None` where no `python3` is installed.
fn matches(pattern: &str, text: &str) -> Option<bool> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import re, sys\nsys.exit(0 if re.search(sys.argv[1], sys.argv[2]) else 1)",
        ])
        .args([pattern, text])
        .status()
        .ok()?;
    Some(out.success())
}

#[tokio::test]
async fn the_documented_key_name_pattern_accepts_exactly_the_names_the_server_accepts() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let create = &doc["components"]["schemas"]["CreateApiKey"]["properties"]["name"];
    let pattern = resolved(&doc, create)["pattern"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = &doc["paths"]["/api/{tenantId}/admin/apiKeys"]["get"]["parameters"];
    let cursor = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "cursor")
        .unwrap();
    // Opaque: it carries the sort and the last key's place in it, base64url-encoded.
    assert_eq!(
        resolved(&doc, &cursor["schema"])["pattern"],
        "^[A-Za-z0-9_-]+$"
    );

    let long = "a".repeat(128);
    let too_long = "a".repeat(129);
    let dot_long = format!("..{}", "a".repeat(126));
    let names = [
        "ci-deploy.v2_x",
        &long,
        "...",
        ".a",
        "a.",
        "..a",
        &dot_long,
        "",
        "a b",
        "a/b",
        "ä",
        &too_long,
        "a:b",
        ".",
        "..",
    ];
    for name in names {
        let Some(documented) = matches(&pattern, name) else {
            eprintln!("SKIPPED: no python3 to read the key-name pattern with");
            return;
        };

        let res = app.create_key("acme", json!({"name": name})).await;

        assert_eq!(
            res.status() == 201,
            documented,
            "{name:?} against {pattern}"
        );
    }
}

#[tokio::test]
async fn the_documented_limits_are_the_servers_own() {
    let app = spawn_app().await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let rotate = &doc["components"]["schemas"]["RotateApiKey"]["properties"];
    let grace = resolved(&doc, &rotate["gracePeriodSeconds"]);
    assert_eq!(
        grace["maximum"],
        keyward::keys::Rotation::MAX_GRACE.as_secs()
    );
    let list = &doc["paths"]["/api/{tenantId}/admin/apiKeys"]["get"]["parameters"];
    let limit = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        resolved(&doc, &limit["schema"])["maximum"],
        keyward::keys::KeyFilter::MAX_LIMIT
    );
}

/// Every object schema in the document, with the name of the property it sits under.
fn properties(value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                for (name, schema) in props {
                    out.push((name.clone(), schema.clone()));
                }
            }
            for v in map.values() {
                properties(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| properties(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_timestamp_is_documented_as_a_date_time() {
    let app = spawn_app().await;

    let doc = document(&app).await;

    let mut all = Vec::new();
    properties(&doc, &mut all);
    let stamps: Vec<_> = all
        .iter()
        .filter(|(name, _)| name.ends_with("At") || name == "at" || name == "date")
        .collect();
    assert!(stamps.len() >= 10, "{stamps:?}");
    for (name, schema) in stamps {
        assert_eq!(schema["format"], "date-time", "{name}: {schema}");
    }
}

#[tokio::test]
async fn a_key_s_every_field_is_required_as_every_answer_carries_it() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let view = &doc["components"]["schemas"]["ApiKeyView"];

    let key: Value = app.get_key("acme", "ci-deploy").await.json().await.unwrap();

    let mut required: Vec<&str> = view["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut sent: Vec<&str> = key
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    required.sort();
    sent.sort();
    assert_eq!(required, sent);
    let problem = &doc["components"]["schemas"]["ProblemDetails"];
    assert_eq!(
        problem["required"],
        json!(["type", "title", "status", "detail", "code"])
    );
}

/// The `code` enum of a schema, as strings.
fn codes(schema: &Value) -> Vec<String> {
    schema["properties"]["code"]["enum"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_verdict_is_told_apart_by_valid_and_names_only_the_codes_the_server_sends() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let branches = doc["components"]["schemas"]["VerifyResponse"]["oneOf"]
        .as_array()
        .unwrap()
        .clone();
    let branch = |valid: bool| {
        branches
            .iter()
            .find(|b| b["properties"]["valid"]["const"] == valid)
            .unwrap_or_else(|| panic!("no branch with valid: const {valid}"))
            .clone()
    };
    let (accepted, refused) = (branch(true), branch(false));
    let refusals: Vec<String> = keyward::domain::Refusal::ALL
        .iter()
        .map(|r| r.code().to_owned())
        .collect();
    assert_eq!(codes(&refused), refusals);
    assert!(
        accepted["required"]
            .as_array()
            .unwrap()
            .contains(&json!("name"))
    );

    let token = app
        .create_key("acme", json!({"name": "gate"}))
        .await
        .json::<Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (key, perms, valid) in [
        (token.as_str(), json!([]), true),
        (token.as_str(), json!(["orders:read"]), false),
        ("kw_nope", json!([]), false),
        ("imported-elsewhere", json!([]), false),
    ] {
        let res = app
            .verify("acme", json!({"key": key, "permissions": perms}))
            .await;
        let verdict: Value = res.json().await.unwrap();
        assert_eq!(verdict["valid"], valid, "{verdict}");
        if !valid {
            assert!(codes(&refused).contains(&verdict["code"].as_str().unwrap().to_owned()));
        }
    }
}

#[tokio::test]
async fn every_problem_code_the_server_sends_is_in_the_documented_enum() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let documented = codes(&doc["components"]["schemas"]["ProblemDetails"]);

    let mut sent = Vec::new();
    for res in [
        app.client
            .get(app.url("/api/acme/admin/apiKeys"))
            .send()
            .await
            .unwrap(),
        app.get_key("acme", "nobody").await,
        app.get_key("nowhere", "nobody").await,
        app.create_key("acme", json!({"name": "a b"})).await,
        app.create_key("acme", json!({"name": "ci-deploy"})).await,
        app.client.patch(app.url("/healthz")).send().await.unwrap(),
        app.client.get(app.url("/nowhere")).send().await.unwrap(),
    ] {
        let problem: Value = res.json().await.unwrap();
        sent.push(problem["code"].as_str().unwrap().to_owned());
    }

    for code in &sent {
        assert!(documented.contains(code), "{code} is not documented");
    }
    assert_eq!(sent.len(), 7);
    assert!(documented.contains(&"precondition_failed".to_owned()));
}

#[tokio::test]
async fn rotate_s_body_is_optional_with_its_plain_schema_and_if_match_is_a_plain_string() {
    let app = spawn_app().await;

    let doc = document(&app).await;

    let rotate = &doc["paths"]["/api/{tenantId}/admin/apiKeys/{keyName}/rotate"]["post"];
    let body = &rotate["requestBody"];
    assert_eq!(body["required"], false, "{body}");
    assert_eq!(
        body["content"]["application/json"]["schema"],
        json!({"$ref": "#/components/schemas/RotateApiKey"})
    );
    for (method, path, op) in operations(&doc) {
        let params = op["parameters"].as_array().cloned().unwrap_or_default();
        for p in params.iter().filter(|p| p["name"] == "If-Match") {
            assert_eq!(p["required"], false, "{method} {path}");
            assert_eq!(p["schema"], json!({"type": "string"}), "{method} {path}");
        }
    }
}

/// The headers keyward itself sets, which a client may need to read.
const KEYWARD_HEADERS: [&str; 11] = [
    "etag",
    "location",
    "link",
    "cache-control",
    "www-authenticate",
    "retry-after",
    "x-keyward-tenant",
    "x-keyward-key",
    "x-keyward-permissions",
    "keyward-history",
    "idempotent-replayed",
];

/// Every one of keyward's headers in `res` is declared on that operation's response.
fn assert_headers_declared(doc: &Value, method: &str, path: &str, res: &reqwest::Response) {
    let status = res.status().as_str().to_owned();
    let declared = &doc["paths"][path][method]["responses"][&status]["headers"];
    for name in KEYWARD_HEADERS {
        if res.headers().contains_key(name) {
            let found = declared
                .as_object()
                .is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(name)));
            assert!(found, "{method} {path} {status}: {name} is not declared");
        }
    }
}

#[tokio::test]
async fn every_header_an_answer_carries_is_declared_on_its_response() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let key_path = "/api/{tenantId}/admin/apiKeys/{keyName}";
    let created = app.create_key("acme", json!({"name": "h1"})).await;
    assert_headers_declared(&doc, "post", "/api/{tenantId}/admin/apiKeys", &created);
    let mut seen: Vec<&str> = KEYWARD_HEADERS
        .into_iter()
        .filter(|h| created.headers().contains_key(*h))
        .collect();
    let key = created.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reader = token("acme", READ);
    let anonymous = app.client.get(app.url("/api/acme/admin/apiKeys"));
    let cases: Vec<(&str, &str, reqwest::RequestBuilder)> = vec![
        (
            "get",
            "/api/{tenantId}/admin/apiKeys",
            app.client
                .get(app.url("/api/acme/admin/apiKeys?limit=1"))
                .bearer_auth(writer("acme")),
        ),
        ("get", "/api/{tenantId}/admin/apiKeys", anonymous),
        (
            "post",
            "/api/{tenantId}/admin/apiKeys",
            app.client
                .post(app.url("/api/acme/admin/apiKeys"))
                .bearer_auth(&reader)
                .json(&json!({"name": "h2"})),
        ),
        (
            "get",
            key_path,
            app.client
                .get(app.url("/api/acme/admin/apiKeys/h1"))
                .bearer_auth(&reader),
        ),
        (
            "put",
            key_path,
            app.client
                .put(app.url("/api/acme/admin/apiKeys/h1"))
                .bearer_auth(writer("acme"))
                .json(&json!({"enabled": true})),
        ),
        (
            "post",
            "/api/{tenantId}/admin/apiKeys/{keyName}/rotate",
            app.client
                .post(app.url("/api/acme/admin/apiKeys/ci-deploy/rotate"))
                .bearer_auth(writer("acme")),
        ),
        (
            "post",
            "/api/{tenantId}/apiKeys/verify",
            app.client
                .post(app.url("/api/acme/apiKeys/verify"))
                .json(&json!({"key": key})),
        ),
        (
            "get",
            "/auth/{tenantId}",
            app.client
                .get(app.url("/auth/acme"))
                .header("X-API-Key", &key),
        ),
        (
            "get",
            "/auth/{tenantId}",
            app.client.get(app.url("/auth/acme")),
        ),
        (
            "get",
            "/api/{tenantId}/apiKeys/current",
            app.client
                .get(app.url("/api/acme/apiKeys/current"))
                .header("X-API-Key", &key),
        ),
        (
            "get",
            "/api/{tenantId}/apiKeys/current",
            app.client.get(app.url("/api/acme/apiKeys/current")),
        ),
    ];

    for (method, path, request) in cases {
        let res = request.send().await.unwrap();
        seen.extend(
            KEYWARD_HEADERS
                .into_iter()
                .filter(|h| res.headers().contains_key(*h)),
        );
        assert_headers_declared(&doc, method, path, &res);
    }

    // A retry with the same Idempotency-Key and body is given the first answer again, and
    // says so.
    let retry = || {
        app.client
            .post(app.url("/api/acme/admin/apiKeys"))
            .bearer_auth(writer("acme"))
            .header("Idempotency-Key", "h3-once")
            .json(&json!({"name": "h3"}))
    };
    assert_eq!(retry().send().await.unwrap().status(), 201);
    let again = retry().send().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_headers_declared(&doc, "post", "/api/{tenantId}/admin/apiKeys", &again);

    // The cases above do meet each header a client reads.
    for name in KEYWARD_HEADERS
        .iter()
        .take(9)
        .filter(|h| **h != "retry-after")
    {
        assert!(seen.contains(name), "no case answered {name}");
    }
}

#[tokio::test]
async fn every_admin_write_takes_an_idempotency_key() {
    let app = spawn_app().await;
    let doc = document(&app).await;

    let mut writes = 0;
    for (method, path, op) in operations(&doc) {
        // The lookup is a read that takes its token in a body, never in the URL.
        let read = method == "get" || op["operationId"] == "lookupApiKey";
        if !path.starts_with("/api/{tenantId}/admin/") || read {
            continue;
        }
        writes += 1;
        let takes_key = op["parameters"].as_array().is_some_and(|params| {
            params
                .iter()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
        });
        assert!(takes_key, "{method} {path}");
    }
    // create, update, delete, rotate, and ending grace tokens.
    assert_eq!(writes, 5);
}

#[tokio::test]
async fn the_document_names_its_server_public_routes_need_nothing_and_each_operation_has_a_4xx() {
    let app = spawn_app().await;

    let doc = document(&app).await;

    assert_eq!(doc["servers"][0]["url"], "/");
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/api/{tenantId}/apiKeys/verify",
    ] {
        let item = doc["paths"][path].as_object().unwrap();
        for (method, op) in item {
            assert_eq!(op["security"], json!([]), "{method} {path}");
        }
    }
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('4')),
            "{method} {path} has no 4xx"
        );
    }
}

/// A linter from `tests/clients/node_modules` (`npm ci --prefix tests/clients`, which
/// `.ci/run` runs). Locally, without it, the lint is skipped with a message; in CI its
/// absence is a failure.
fn linter(name: &str) -> Option<std::path::PathBuf> {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/node_modules/.bin")
        .join(name);
    let found = bin.exists();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must install {name} (npm ci --prefix tests/clients, see .ci/run)"
    );
    if !found {
        eprintln!("SKIPPED: {name}: `npm ci --prefix tests/clients` to run it");
    }
    found.then_some(bin)
}

/// The served document, written to a file a linter can read.
async fn served_document_file(app: &TestApp) -> std::path::PathBuf {
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, app.text("/openapi.json").await).unwrap();
    file
}

#[tokio::test]
async fn redocly_finds_no_error_in_the_served_document() {
    let app = spawn_app().await;
    let Some(redocly) = linter("redocly") else {
        return;
    };
    let file = served_document_file(&app).await;

    let out = Command::new(redocly)
        .args(["lint", "--format=stylish"])
        .arg(&file)
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .output()
        .unwrap();

    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn spectral_s_openapi_rules_find_no_warning_in_the_served_document() {
    let app = spawn_app().await;
    let Some(spectral) = linter("spectral") else {
        return;
    };
    let file = served_document_file(&app).await;
    let ruleset =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/.spectral.yaml");

    let out = Command::new(spectral)
        .args(["lint", "--fail-severity=warn", "--ruleset"])
        .arg(&ruleset)
        .arg(&file)
        .output()
        .unwrap();

    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
