//! Clients generated from the served `/openapi.json` by the generators people use, each
//! driving a key's whole life against the real server (`tests/clients/lifecycle.*`): the
//! document is proven by the code it produces and by what that code gets back.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::helpers::*;

/// Where the lifecycle programs and the pinned Node packages live.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Nothing is installed from the network at test time: locally, without `what`, the test
/// is skipped with a message; in CI its absence is a failure.
fn available(found: bool, what: &str, install: &str) -> bool {
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must install {what} ({install}, see .ci/run)"
    );
    if !found {
        eprintln!("SKIPPED: {what}: `{install}` to run it");
    }
    found
}

/// `openapi-python-client`, from `tests/clients/requirements.txt`.
fn python_generator() -> bool {
    let found = std::process::Command::new("openapi-python-client")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    available(
        found,
        "openapi-python-client",
        "python3 -m pip install -r tests/clients/requirements.txt",
    )
}

/// `node`, with `openapi-typescript`, `openapi-fetch` and `tsc` from `tests/clients`.
fn typescript_tools() -> Option<PathBuf> {
    let bin = clients_dir().join("node_modules/.bin");
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    let found = node
        && ["openapi-typescript", "tsc"]
            .iter()
            .all(|t| bin.join(t).exists());
    available(
        found,
        "node and the TypeScript client tools",
        "npm ci --prefix tests/clients",
    )
    .then_some(bin)
}

/// Runs `command` to its end; fails the test with its output unless it succeeded. The
/// child is killed if the test ends first.
async fn run(command: &mut Command, what: &str) {
    let out = command.kill_on_drop(true).output().await.unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The served document, written where a generator can read it.
async fn served_document(app: &TestApp) -> PathBuf {
    let file = app.dir.path().join("openapi.json");
    std::fs::write(&file, app.text("/openapi.json").await).unwrap();
    file
}

/// What a lifecycle program is told: the server, an admin JWT, and a tenant without keys
/// (so the list it pages through holds exactly the keys it made).
fn lifecycle_env(app: &TestApp) -> [(&'static str, String); 3] {
    [
        ("KEYWARD_URL", app.address.clone()),
        ("KEYWARD_TOKEN", token("globex", WRITE)),
        ("KEYWARD_TENANT", "globex".to_owned()),
    ]
}

#[tokio::test]
async fn a_generated_python_client_runs_a_key_s_whole_lifecycle() {
    if !python_generator() {
        return;
    }
    let app = spawn_app().await;
    let document = served_document(&app).await;
    let project = app.dir.path().join("python-client");

    // A warning means a part of the document the generator could not turn into code.
    run(
        Command::new("openapi-python-client")
            .args(["generate", "--fail-on-warning", "--path"])
            .arg(&document)
            .arg("--output-path")
            .arg(&project),
        "openapi-python-client generate",
    )
    .await;

    // The generated project holds the `keyward_client` package: on the path, it imports.
    run(
        Command::new("python3")
            .arg(clients_dir().join("lifecycle.py"))
            .env("PYTHONPATH", &project)
            .envs(lifecycle_env(&app)),
        "lifecycle.py",
    )
    .await;
}

#[tokio::test]
async fn a_generated_typescript_client_type_checks_strictly_and_runs_a_key_s_whole_lifecycle() {
    let Some(bin) = typescript_tools() else {
        return;
    };
    let app = spawn_app().await;
    let document = served_document(&app).await;
    // The program beside its generated types, resolving the pinned packages as it would in
    // tests/clients (`"type": "module"` from package.json).
    let project = app.dir.path().join("typescript-client");
    std::fs::create_dir(&project).unwrap();
    for file in ["lifecycle.ts", "package.json"] {
        std::fs::copy(clients_dir().join(file), project.join(file)).unwrap();
    }
    std::os::unix::fs::symlink(
        clients_dir().join("node_modules"),
        project.join("node_modules"),
    )
    .unwrap();

    run(
        Command::new(bin.join("openapi-typescript"))
            .arg(&document)
            .arg("--output")
            .arg(project.join("schema.d.ts")),
        "openapi-typescript",
    )
    .await;
    // One pass checks under --strict and, only when nothing is wrong, emits the JavaScript
    // that node 20 (which cannot strip types itself) runs.
    run(
        Command::new(bin.join("tsc"))
            .args(["--strict", "--noEmitOnError", "--module", "nodenext"])
            .args(["--target", "es2022", "lifecycle.ts"])
            .current_dir(&project),
        "tsc --strict",
    )
    .await;
    run(
        Command::new("node")
            .arg("lifecycle.js")
            .current_dir(&project)
            .envs(lifecycle_env(&app)),
        "lifecycle.ts",
    )
    .await;
}
