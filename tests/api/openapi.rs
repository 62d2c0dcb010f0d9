//! The OpenAPI document: valid OpenAPI 3.1 by a real validator, and complete; and the
//! `/docs` page that renders it, from a pinned script only.

use std::process::Command;

use serde_json::Value;

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
    // A new connection each: the validator can outlast the server's keep-alive, and a
    // PATCH on a connection the server just closed is not retried.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    for (path, item) in paths {
        let mut documented: Vec<String> = ["get", "post", "put", "delete"]
            .into_iter()
            .filter(|m| item.get(*m).is_some())
            .map(str::to_uppercase)
            .collect();
        let url = app.url(
            &path
                .replace("{tenantId}", "acme")
                .replace("{keyName}", "ci-deploy"),
        );
        let res = client
            .request(reqwest::Method::PATCH, &url)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "PATCH {path}");
        let allow = res.headers()["allow"].to_str().unwrap();
        // HEAD goes with GET (RFC 9110); the document names GET alone.
        let mut allowed: Vec<String> = allow
            .split(", ")
            .filter(|m| *m != "HEAD")
            .map(str::to_owned)
            .collect();
        allowed.sort();
        documented.sort();
        assert_eq!(allowed, documented, "{path}: mounted vs documented");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["apiKey"]["name"], "X-API-Key");
    let create = &doc["paths"]["/api/{tenantId}/admin/apiKeys"]["post"];
    assert!(create["responses"]["201"].is_object() && create["responses"]["422"].is_object());
    assert!(doc["components"]["schemas"]["ApiKeyView"]["properties"]["hash"].is_null());
}

#[tokio::test]
async fn the_docs_page_points_at_the_document() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("/openapi.json"));
}

#[tokio::test]
async fn the_docs_page_loads_redoc_only_at_a_pinned_version_with_an_integrity_hash() {
    let app = spawn_app().await;
    let page = app.text("/docs").await;

    assert!(!page.contains("latest"), "{page}");
    for script in page.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap();
        assert!(tag.contains("redoc@2.5.4/"), "pinned: {tag}");
        assert!(tag.contains(r#"integrity="sha384-"#), "integrity: {tag}");
        assert!(tag.contains(r#"crossorigin="anonymous""#), "{tag}");
    }
}
