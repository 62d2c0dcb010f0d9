"""The console, driven in Chromium against the real server."""

import os
import pathlib
import re
import subprocess
import time

import pytest
from playwright.sync_api import expect

from conftest import ACME, free_port, key_entry, mint_jwt

TOKEN_SHAPE = re.compile(r"^kw_[A-Za-z0-9]{49}$")


def create_key(page, name, permissions="orders:read", description=""):
    page.get_by_role("button", name="New key").click()
    dialog = page.locator("#key-dialog")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Permissions").fill(permissions)
    if description:
        dialog.get_by_label("Description").fill(description)
    dialog.get_by_role("button", name="Create").click()


def shown_token(page):
    token_dialog = page.locator("#token-dialog")
    expect(token_dialog).to_be_visible()
    expect(token_dialog).to_contain_text("It will not be shown again")
    return page.get_by_label(re.compile("^Token for")).input_value()


def test_a_created_keys_token_is_shown_once_and_works(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt())
    expect(c.row("ci-deploy")).to_be_visible()
    c.shot("keys-desktop")

    create_key(page, "console-made", "orders:read orders:write", "made in the browser")
    token = shown_token(page)
    c.shot("token-desktop")
    assert TOKEN_SHAPE.match(token)
    assert keyward.verify("acme", token)
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    page.get_by_role("button", name="I have copied it").click()
    expect(page.locator("#token-dialog")).to_be_hidden()
    expect(c.row("console-made")).to_contain_text("made in the browser")
    assert "name: console-made" in keyward.file("acme").read_text()

    # The token was shown once: neither the page, nor a reload, nor the tab's storage has it.
    assert token not in page.content()
    page.reload()
    expect(c.row("console-made")).to_be_visible()
    assert token not in page.content()
    storage = page.evaluate("() => JSON.stringify({...sessionStorage}) + JSON.stringify({...localStorage})")
    assert token not in storage
    # The sign-in token is in this tab's sessionStorage only: no cookie, no localStorage.
    assert page.evaluate("() => localStorage.length") == 0
    assert c.context.cookies() == []


def test_field_errors_show_beside_their_fields_and_change_nothing(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt())
    before = keyward.file("acme").read_text()
    create_key(page, "bad name!", "orders:read ordérs:read")
    expect(page.locator("#key-name-error")).to_contain_text("key name")
    expect(page.locator("#key-permissions-error")).not_to_be_empty()
    expect(page.locator("#key-dialog").get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    c.shot("create-errors-desktop")
    # A name taken already: the problem's detail, said plainly.
    page.locator("#key-dialog").get_by_label("Name").fill("ci-deploy")
    page.locator("#key-dialog").get_by_label("Permissions").fill("orders:read")
    page.locator("#key-dialog").get_by_role("button", name="Create").click()
    expect(page.locator("#key-form-error")).to_contain_text("already exists")
    assert keyward.file("acme").read_text() == before


def test_an_edit_on_a_stale_etag_says_someone_changed_the_key(keyward, console):
    token = mint_jwt()
    c = console(keyward)
    page = c.sign_in(token)
    page.get_by_role("button", name="Edit ci-deploy").click()
    expect(page.get_by_label("Description")).to_be_visible()

    # Someone else changes the key while the dialog is open.
    status, _, _ = keyward.call("PUT", "/api/acme/admin/apiKeys/ci-deploy", token, {"enabled": True, "description": "changed elsewhere"})
    assert status == 200
    page.get_by_label("Description").fill("my change")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#key-form-error")).to_contain_text("Someone changed this key since you opened it")
    c.shot("edit-412-desktop")
    assert "my change" not in keyward.file("acme").read_text()

    page.get_by_role("button", name="Reload the key").click()
    expect(page.get_by_label("Description")).to_have_value("changed elsewhere")
    page.get_by_label("Description").fill("my change")
    page.get_by_label("Enabled", exact=True).uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#notice")).to_have_text("Saved ci-deploy.")
    expect(c.row("ci-deploy")).to_contain_text("disabled")
    text = keyward.file("acme").read_text()
    assert "my change" in text and "changed elsewhere" not in text


def test_rotate_shows_the_new_token_once_and_keeps_the_old_for_the_grace_period(start_keyward, console):
    old = "legacy-ci-deploy-" + "x" * 20
    server = start_keyward({"acme": "apiKeys:\n" + key_entry("ci-deploy", old)})
    c = console(server)
    page = c.sign_in(mint_jwt())
    page.get_by_role("button", name="Rotate ci-deploy").click()
    page.get_by_label("Old token keeps working for").select_option("3600")
    page.locator("#rotate-dialog").get_by_role("button", name="Rotate").click()
    new = shown_token(page)
    assert new != old
    assert server.verify("acme", new)
    assert server.verify("acme", old), "the old token works during the grace period"
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    page.keyboard.press("Escape")
    expect(page.locator("#token-dialog")).to_be_hidden()
    assert new not in page.content()


def test_delete_needs_the_name_typed(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt())
    page.get_by_role("button", name="Delete reporting").click()
    confirm = page.get_by_role("button", name="Delete", exact=True)
    expect(confirm).to_be_disabled()
    page.get_by_label("Type the key's name to confirm").fill("reportin")
    expect(confirm).to_be_disabled()
    page.get_by_label("Type the key's name to confirm").fill("reporting")
    confirm.click()
    expect(page.locator("#notice")).to_have_text("Deleted reporting.")
    expect(c.row("reporting")).to_have_count(0)
    assert "reporting" not in keyward.file("acme").read_text()


def test_an_invalid_file_shows_a_banner_with_its_line_and_no_write_controls(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt())
    expect(page.get_by_role("button", name="New key")).to_be_visible()
    keyward.file("acme").write_text(ACME + "  - name: [broken\n")
    time.sleep(1.5)  # the watcher's debounce
    page.reload()
    banner = page.get_by_role("alert")
    expect(banner).to_contain_text("invalid")
    expect(banner).to_contain_text(re.compile(r"line \d+"))
    expect(page.get_by_role("button", name="New key")).to_be_hidden()
    expect(page.get_by_role("button", name="Edit ci-deploy")).to_be_hidden()
    c.shot("invalid-file-desktop")


def test_a_read_only_server_shows_no_write_controls(start_keyward, console):
    server = start_keyward(env={"KEYWARD_READ_ONLY": "true"})
    c = console(server)
    page = c.sign_in(mint_jwt())
    expect(c.row("ci-deploy")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("read-only")
    expect(page.get_by_role("button", name="New key")).to_be_hidden()
    expect(page.get_by_role("button", name="Delete ci-deploy")).to_be_hidden()


def test_a_read_only_token_shows_no_write_controls(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt(scope="tenant.apiKey:read"))
    expect(c.row("ci-deploy")).to_be_visible()
    expect(page.get_by_role("button", name="New key")).to_be_hidden()


def test_a_token_with_no_scope_claim_shows_no_write_controls(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt(scope=None))
    expect(page.locator("#notice")).to_contain_text("tenant.apiKey:read")
    expect(page.get_by_role("button", name="New key")).to_be_hidden()
    expect(page.get_by_role("button", name="Delete ci-deploy")).to_be_hidden()


def test_a_writer_whose_scopes_come_as_one_scp_string_gets_write_controls(keyward, console):
    # The server reads `scp` as a space-separated string too: the console follows its word.
    c = console(keyward)
    page = c.sign_in(mint_jwt(scope=None, scp="tenant.apiKey:read tenant.apiKey:write"))
    expect(c.row("ci-deploy")).to_be_visible()
    expect(page.get_by_role("button", name="New key")).to_be_visible()
    expect(page.get_by_role("button", name="Delete ci-deploy")).to_be_visible()


def test_pages_through_250_keys_and_filters(start_keyward, console):
    entries = "".join(key_entry(f"key-{i:03}") for i in range(250))
    server = start_keyward({"acme": "apiKeys:\n" + entries})
    c = console(server)
    page = c.sign_in(mint_jwt())
    seen = []
    for n in range(1, 6):
        expect(page.locator("#page-label")).to_have_text(f"Page {n}")
        names = page.locator("#keys-body tr").evaluate_all("rows => rows.map(r => r.dataset.key)")
        assert len(names) == 50
        seen += names
        if n < 5:
            page.get_by_role("button", name="Next page").click()
    assert seen == [f"key-{i:03}" for i in range(250)]
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(page.locator("#page-label")).to_have_text("Page 4")
    expect(c.row("key-150")).to_be_visible()

    page.get_by_label("Search keys").fill("key-24")
    expect(page.locator("#keys-body tr")).to_have_count(10)
    expect(page.locator("#page-label")).to_have_text("Page 1")


def test_it_is_usable_with_the_keyboard_alone(keyward, console):
    c = console(keyward)
    page = c.open()
    token = mint_jwt()

    def tab_to(selector, limit=40):
        for _ in range(limit):
            page.keyboard.press("Tab")
            if page.evaluate(f"() => document.activeElement.matches('{selector}')"):
                # The focused control is visibly marked.
                outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", f"{selector} has no visible focus"
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#pasted-token")
    page.keyboard.insert_text(token)
    tab_to("#token-form button[type=submit]")
    page.keyboard.press("Enter")
    expect(c.row("ci-deploy")).to_be_visible()
    tab_to("#new-key")
    page.keyboard.press("Enter")
    # The dialog takes the focus to its first field.
    assert page.evaluate("() => document.activeElement.id") == "key-name"
    page.keyboard.type("typed-key")
    tab_to("#key-permissions")
    page.keyboard.type("orders:read")
    page.keyboard.press("Enter")
    token = shown_token(page)
    assert keyward.verify("acme", token)
    tab_to("#copy-token")
    page.keyboard.press("Enter")
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    page.keyboard.press("Escape")
    expect(page.locator("#token-dialog")).to_be_hidden()
    expect(c.row("typed-key")).to_be_visible()


def test_every_control_has_a_label(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt())
    expect(c.row("ci-deploy")).to_be_visible()
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter(el => !el.closest('[hidden]'))
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.textContent.trim())
            .map(el => el.id || el.outerHTML)"""
    )
    assert unlabelled == []


def test_it_reads_at_360_px_and_the_token_dialog_moves_nothing(keyward, console):
    c = console(keyward, width=360, height=740)
    page = c.sign_in(mint_jwt())
    expect(c.row("ci-deploy")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    c.shot("keys-360")
    before = c.row("ci-deploy").bounding_box()
    create_key(page, "phone-made")
    shown_token(page)
    c.shot("token-360")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    assert c.row("ci-deploy").bounding_box() == before


def test_the_page_loads_nothing_from_another_origin(keyward, console):
    c = console(keyward)
    origins = set()
    c.page.on("request", lambda r: origins.add(re.match(r"^[a-z]+://[^/]+", r.url).group(0)))
    page = c.sign_in(mint_jwt())
    expect(c.row("ci-deploy")).to_be_visible()
    assert origins == {keyward.url}


def test_an_expired_sign_in_is_dropped(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt(ttl=8))
    expect(c.row("ci-deploy")).to_be_visible()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=20_000)
    expect(page.locator("#notice")).to_contain_text("expired")
    assert page.evaluate("() => sessionStorage.length") == 0


def test_sign_out_drops_the_token(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt())
    expect(c.row("ci-deploy")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_token_for_all_tenants_chooses_one_by_name(keyward, console):
    c = console(keyward)
    page = c.sign_in(mint_jwt(tenant="*"))
    page.get_by_label("Tenant", exact=True).fill("acme")
    page.get_by_role("button", name="Open").click()
    expect(c.row("ci-deploy")).to_be_visible()
    page.get_by_label("Tenant", exact=True).fill("nobody")
    page.get_by_role("button", name="Open").click()
    expect(page.locator("#notice")).not_to_be_empty()
    expect(page.locator("#tenant-page")).to_be_hidden()


def test_git_mode_has_a_history_tab(start_keyward, console, tmp_path):
    def git(*args, cwd=tmp_path):
        subprocess.run(["git", "-c", "user.name=ops", "-c", "user.email=ops@example.com", *args], cwd=cwd, check=True, capture_output=True)

    git("init", "-q", "--bare", "-b", "main", "origin.git")
    git("clone", "-q", "origin.git", "clone")
    clone = tmp_path / "clone"
    (clone / "tenants" / "acme").mkdir(parents=True)
    (clone / "tenants" / "acme" / "security.yml").write_text(ACME)
    git("add", ".", cwd=clone)
    git("commit", "-qm", "acme's keys", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    server = start_keyward(
        tenants={},
        root=clone,
        env={"KEYWARD_GIT__ENABLED": "true", "KEYWARD_STATE_DIR": str(tmp_path / "state")},
    )
    c = console(server)
    page = c.sign_in(mint_jwt())
    create_key(page, "with-history")
    shown_token(page)
    page.get_by_role("button", name="I have copied it").click()
    page.get_by_role("tab", name="History").click()
    rows = page.locator("#history-body tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("create")
    expect(rows.first).to_contain_text("with-history")
    expect(rows.nth(1)).to_contain_text("edit")
    c.shot("history-desktop")


def test_dev_modes_printed_link_signs_in(start_keyward, console, tmp_path):
    server = start_keyward(env={"KEYWARD_AUTH__HS256_SECRET": None})
    printed = "".join(server.log)
    link = re.search(r"(http://127\.0\.0\.1:\d+/#token=\S+)", printed)
    assert link, "dev mode prints a console link"
    c = console(server)
    page = c.open()
    expect(page.get_by_text("keyward is in dev mode")).to_be_visible()
    page.goto(link.group(1))
    page.get_by_label("Tenant", exact=True).fill("acme")
    page.get_by_role("button", name="Open").click()
    expect(c.row("ci-deploy")).to_be_visible()
    assert "#token" not in page.url


OIDC = pathlib.Path(__file__).parent / "oidc"


def test_signs_in_with_pkce_at_a_real_openid_provider(start_keyward, console, tmp_path):
    """The `oidc-provider` package as the identity provider: discovery, a login form,
    the code + PKCE (S256) exchange, and a JWT access token keyward checks against the
    provider's JWKS."""
    if not (OIDC / "node_modules").exists():
        assert "CI" not in os.environ, "CI must install the test provider (see .ci/run)"
        pytest.skip("the OpenID provider: `npm ci --prefix tests/browser/oidc` to run it")
    keyward_port, idp_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    idp = subprocess.Popen(
        ["node", str(OIDC / "provider.mjs"), str(idp_port), f"http://127.0.0.1:{keyward_port}/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert idp.stdout.readline().strip() == "ready"
        server = start_keyward(
            port=keyward_port,
            env={
                "KEYWARD_AUTH__HS256_SECRET": None,
                "KEYWARD_AUTH__ISSUER": issuer,
                "KEYWARD_AUTH__JWKS_URL": f"{issuer}/jwks",
                "KEYWARD_AUTH__AUDIENCE": "urn:keyward",
                "KEYWARD_CONSOLE__CLIENT_ID": "keyward-console",
            },
        )
        _, headers, _ = server.call("GET", "/")
        assert f"connect-src 'self' {issuer};" in headers["Content-Security-Policy"]

        c = console(server)
        sent = []
        c.page.on("request", lambda r: sent.append(r))
        page = c.open()
        page.get_by_role("button", name="Sign in with your identity provider").click()
        # The provider's own login page.
        page.locator("input[name=login]").fill("carol@example.com")
        page.locator("input[name=password]").fill("anything")
        page.locator("button[type=submit]").click()
        # Its consent page, for the scopes the console asked for.
        expect(page.get_by_role("heading", name="Authorize")).to_be_visible()
        page.get_by_role("button", name="Continue").click()
        expect(c.row("ci-deploy")).to_be_visible()
        expect(page.locator("#who")).to_contain_text("carol@example.com")
        assert page.url == f"{server.url}/#/acme", "the code and state are gone from the URL"

        authorize = next(r for r in sent if r.url.startswith(issuer) and "code_challenge=" in r.url)
        assert "code_challenge_method=S256" in authorize.url
        assert "client_id=keyward-console" in authorize.url
        exchange = next(r for r in sent if r.url.startswith(issuer) and r.method == "POST" and "code_verifier=" in (r.post_data or ""))
        assert "grant_type=authorization_code" in exchange.post_data

        # The access token is the provider's JWT, and keyward accepts it for writes too.
        create_key(page, "via-oidc")
        token = shown_token(page)
        assert server.verify("acme", token)
        assert "createdBy: carol@example.com" in server.file("acme").read_text()
    finally:
        idp.kill()
        idp.wait()
