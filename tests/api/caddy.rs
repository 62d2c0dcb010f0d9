//! `deploy/gateways/caddy/Caddyfile`, run verbatim (bar its addresses) in a real Caddy in
//! front of a real upstream.

use std::process::Command;

use crate::gateway::*;

const RECIPE: &str = include_str!("../../deploy/gateways/caddy/Caddyfile");

/// Test-only global options: no admin endpoint (tests run side by side), no certificates,
/// and only loopback.
const TEST_GLOBALS: &str = "{\n\tadmin off\n\tauto_https off\n\t\
                            default_bind 127.0.0.1\n}\n";

#[tokio::test]
async fn the_caddy_recipe_authenticates_strips_the_key_and_fails_closed() {
    let Some(caddy) = installed("caddy", &["/usr/bin/caddy"], "apt-get install caddy") else {
        return;
    };
    let app = spawn_gateway_app().await;
    let keys = Keys::make(&app).await;
    let upstream = Upstream::start().await;
    let port = free_port();
    let keyward = app.address.trim_start_matches("http://");
    let config = TEST_GLOBALS.to_owned() + &with_addresses(RECIPE, keyward, upstream.port, port);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, config).unwrap();

    let _caddy = Gateway::spawn(
        Command::new(caddy)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            // Caddy keeps its state under these; the test's own directory, not root's.
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path()),
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_until_listening("caddy", &base).await;

    assert_recipe_guards_the_upstream(&app, &keys, &upstream, &base).await;
}
