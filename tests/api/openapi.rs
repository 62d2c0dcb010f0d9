//! The OpenAPI document: valid OpenAPI 3.1 by a real validator, and complete.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::helpers::*;

/// A Python with `openapi-spec-validator` importable: the machine's, or one installed from
/// PyPI into cargo's temp dir on first use.
fn validator_pythonpath() -> Option<PathBuf> {
    let probe = |path: Option<&PathBuf>| {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", "import openapi_spec_validator"]);
        if let Some(p) = path {
            cmd.env("PYTHONPATH", p);
        }
        cmd.status().is_ok_and(|s| s.success())
    };
    if probe(None) {
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("openapi-validator");
    if !probe(Some(&dir)) {
        let ok = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&dir)
            .arg("openapi-spec-validator")
            .status()
            .expect("python3 runs");
        assert!(
            ok.success(),
            "could not install openapi-spec-validator from PyPI"
        );
    }
    Some(dir)
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

    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))",
    ])
    .arg(&file);
    if let Some(path) = validator_pythonpath() {
        cmd.env("PYTHONPATH", path);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let paths = doc["paths"].as_object().unwrap();
    for route in keyward::routes::mounted() {
        assert!(
            paths.contains_key(route),
            "{route} is mounted but not documented"
        );
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["apiKey"]["name"], "X-API-Key");
    let create = &doc["paths"]["/api/{tenant}/admin/apiKeys"]["post"];
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
