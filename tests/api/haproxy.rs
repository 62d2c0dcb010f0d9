//! `deploy/gateways/haproxy/` (haproxy.cfg and keyward.lua), run verbatim (bar its
//! addresses) in a real HAProxy in front of a real upstream.

use std::process::Command;

use crate::gateway::*;

const CONFIG: &str = include_str!("../../deploy/gateways/haproxy/haproxy.cfg");
const LUA: &str = include_str!("../../deploy/gateways/haproxy/keyward.lua");
/// Where the shipped configuration expects keyward.lua.
const LUA_PATH: &str = "/etc/haproxy/keyward.lua";

#[tokio::test]
async fn the_haproxy_recipe_authenticates_strips_the_key_and_fails_closed() {
    let Some(haproxy) = installed("haproxy", &["/usr/sbin/haproxy"], "apt-get install haproxy")
    else {
        return;
    };
    let app = spawn_gateway_app().await;
    let keys = Keys::make(&app).await;
    let upstream = Upstream::start().await;
    let port = free_port();
    let keyward = app.address.trim_start_matches("http://");
    let dir = tempfile::tempdir().unwrap();
    let lua = dir.path().join("keyward.lua");
    std::fs::write(&lua, LUA).unwrap();
    let config = with_addresses(CONFIG, keyward, upstream.port, port)
        .replace(LUA_PATH, &lua.display().to_string());
    let file = dir.path().join("haproxy.cfg");
    std::fs::write(&file, config).unwrap();

    // In the foreground (`-db`), one process: killing it by its PID leaves nothing behind.
    let _haproxy = Gateway::spawn(Command::new(haproxy).arg("-db").arg("-f").arg(&file));
    let base = format!("http://127.0.0.1:{port}");
    wait_until_listening("haproxy", &base).await;

    assert_recipe_guards_the_upstream(&app, &keys, &upstream, &base).await;
}
