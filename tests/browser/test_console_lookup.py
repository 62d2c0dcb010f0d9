"""Finding a key by its token, the tenant picker and a sign-in refused after a dev-mode
restart, in Chromium against the real server."""

import os
import re
import subprocess

from playwright.sync_api import expect

from conftest import ACME, free_port, key_entry, mint_jwt


def issue(server, jwt, name, tenant="acme", **more):
    status, _, body = server.call("POST", f"/api/{tenant}/admin/apiKeys", jwt, {"name": name, "permissions": ["orders:read"], **more})
    assert status == 201, body
    return body["token"]


def cli_key(name, expires):
    """A keyward token and its entry from `keyward keys new`, disabled: a key the API
    would not create (its expiry is past)."""
    out = subprocess.run(
        [os.environ["KEYWARD_BIN"], "keys", "new", "--name", name, "--expires", expires, "--created-by", "ops"],
        capture_output=True, text=True, check=True,
    ).stdout
    token = re.search(r"(kw_\w+)", out).group(1)
    entry = out[out.index("  - name:"):].replace("enabled: true", "enabled: false")
    return token, entry


def test_which_key_is_this_finds_a_tokens_key_and_keeps_the_token_nowhere(start_keyward, console):
    # Arrange: a current token, a grace token, a disabled expired key's token, another tenant's.
    retired, entry = cli_key("retired", "2020-01-01T00:00:00Z")
    server = start_keyward({"acme": ACME + entry, "globex": "apiKeys: []\n"})
    jwt = mint_jwt(tenant=["acme", "globex"])
    old = issue(server, jwt, "rotating")
    status, _, body = server.call("POST", "/api/acme/admin/apiKeys/rotating/rotate", jwt, {"gracePeriodSeconds": 3600})
    assert status == 200, body
    current = body["token"]
    elsewhere = issue(server, jwt, "theirs", tenant="globex")
    c = console(server)
    page = c.sign_in(jwt)
    page.get_by_role("tab", name="Which key is this?").click()
    box = page.get_by_label("Token", exact=True)
    result = page.locator("#lookup-result")

    def look_up(token):
        box.fill(token)
        page.get_by_role("button", name="Find its key").click()

    # Act + Assert
    look_up(current)
    expect(result.get_by_role("link", name="rotating")).to_be_visible()
    expect(result).to_contain_text("current token")
    expect(box).to_have_value("")
    look_up(old)
    expect(result).to_contain_text("an old token of this key")
    look_up(retired)
    expect(result.get_by_role("link", name="retired")).to_be_visible()
    expect(result).to_contain_text("disabled")
    expect(result).to_contain_text("expired")
    look_up(elsewhere)
    expect(result).to_contain_text("No key of acme holds this token")
    look_up("not-a-token")
    expect(result).to_contain_text("This is not a keyward token")

    # The tokens went nowhere but keyward.
    kept = page.evaluate("() => location.href + JSON.stringify({...sessionStorage}) + JSON.stringify({...localStorage})")
    for token in (current, old, retired, elsewhere):
        assert token not in kept
        assert token not in page.content()
    # The link leads to the key's page.
    look_up(current)
    result.get_by_role("link", name="rotating").click()
    expect(page.get_by_role("heading", name="rotating")).to_be_visible()


def test_a_token_for_all_tenants_picks_one_from_the_tenants_keyward_lists(start_keyward, console):
    # Arrange
    server = start_keyward({"acme": ACME, "beta": "apiKeys:\n" + key_entry("beta-key"), "gamma": "apiKeys: []\n"})
    c = console(server)
    page = c.sign_in(mint_jwt(tenant="*"))
    picker = page.get_by_label("Tenant", exact=True)

    # Assert: a list, not a text box to guess in.
    expect(picker.locator("option")).to_have_text(["acme", "beta", "gamma"])
    expect(page.locator("#tenant")).to_be_hidden()

    # Act
    picker.select_option("beta")
    page.get_by_role("button", name="Open").click()

    # Assert
    expect(c.row("beta-key")).to_be_visible()
    assert page.url.endswith("/#/beta")


def test_a_sign_in_refused_after_a_dev_mode_restart_shows_keywards_explanation(start_keyward, console, tmp_path):
    # Arrange: a dev-mode token from an earlier start.
    port = free_port()
    first = start_keyward(env={"KEYWARD_AUTH__HS256_SECRET": None}, port=port)
    printed = "".join(first.log)
    token = re.search(r"#token=(\S+)", printed).group(1)
    first.stop()
    second = start_keyward(env={"KEYWARD_AUTH__HS256_SECRET": None}, port=port, root=tmp_path)
    _, _, problem = second.call("GET", "/api/acme/admin/status", token)
    detail = problem["detail"]
    assert "dev mode" in detail

    # Act
    c = console(second)
    page = c.sign_in(token)

    # Assert: the server's own words, not just a bad signature.
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#notice")).to_contain_text(detail)
