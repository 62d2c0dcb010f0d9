"""The console's dialogs in Chromium against the real server: a new token cannot be lost by
closing its dialog, creating a key suggests permissions and expiry presets, and rotate and
delete carry the key's ETag so another admin's change is never overwritten."""

import re
from datetime import datetime, timedelta, timezone

import yaml
from playwright.sync_api import expect

from conftest import key_entry, mint_jwt

OLD = "legacy-ci-deploy-" + "x" * 20
CHANGED_FIRST = "Another admin changed this key first"


def new_key(page, name):
    page.get_by_role("button", name="New key").click()
    dialog = page.locator("#key-dialog")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_role("button", name="Create").click()
    expect(page.locator("#token-dialog")).to_be_visible()


def test_the_token_dialog_asks_before_closing_until_the_token_was_copied(keyward, console):
    # Arrange
    c = console(keyward)
    page = c.sign_in(mint_jwt())
    dialog = page.locator("#token-dialog")
    confirm = page.locator("#token-confirm")
    new_key(page, "kept-safe")

    # Act + Assert: Escape, the close button and a click outside each ask first.
    page.keyboard.press("Escape")
    expect(confirm).to_be_visible()
    expect(confirm).to_have_text(re.compile("You have not copied the token; it will not be shown again. Close anyway?"))
    expect(dialog).to_be_visible()
    page.get_by_role("button", name="Keep it open").click()
    expect(confirm).to_be_hidden()
    dialog.get_by_role("button", name="Close", exact=True).click()
    expect(confirm).to_be_visible()
    page.get_by_role("button", name="Keep it open").click()
    page.mouse.click(3, 3)
    expect(confirm).to_be_visible()
    expect(dialog).to_be_visible()
    page.get_by_role("button", name="Close anyway").click()
    expect(dialog).to_be_hidden()

    # After Copy, closing is immediate.
    new_key(page, "copied-first")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    new_key(page, "copied-then-clicked-out")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    page.mouse.click(3, 3)
    expect(dialog).to_be_hidden()
    expect(confirm).to_be_hidden()


def test_creating_a_key_suggests_the_tenants_permissions_and_expiry_presets(start_keyward, console):
    # Arrange
    entries = key_entry("ci-deploy", permissions=("orders:read", "orders:write")) + key_entry("reporting", permissions=("reports:read",))
    server = start_keyward({"acme": "apiKeys:\n" + entries})
    c = console(server)
    page = c.sign_in(mint_jwt())
    page.get_by_role("button", name="New key").click()
    dialog = page.locator("#key-dialog")
    suggestions = dialog.get_by_role("group", name="Suggestions from this tenant's keys")

    # Assert: the permissions the tenant's keys use, each once.
    expect(suggestions.get_by_role("button")).to_have_text(["orders:read", "orders:write", "reports:read"])

    # Act: pick two, by mouse and by keyboard; choose a preset expiry.
    dialog.get_by_label("Name").fill("suggested")
    suggestions.get_by_role("button", name="reports:read").click()
    suggestions.get_by_role("button", name="orders:read").focus()
    page.keyboard.press("Space")
    expect(dialog.get_by_label("Permissions", exact=False).first).to_have_value("reports:read orders:read")
    expect(suggestions.get_by_role("button", name="orders:read")).to_have_attribute("aria-pressed", "true")
    dialog.get_by_role("button", name="90 days").click()
    expected = (datetime.now() + timedelta(days=90)).strftime("%Y-%m-%d")
    expect(dialog.get_by_label("Expires")).to_have_value(re.compile(f"^{expected}T"))
    dialog.get_by_role("button", name="Never").click()
    expect(dialog.get_by_label("Expires")).to_have_value("")
    dialog.get_by_role("button", name="30 days").click()
    dialog.get_by_role("button", name="Create").click()
    expect(page.locator("#token-dialog")).to_be_visible()

    # Assert: stored as picked.
    stored = next(k for k in yaml.safe_load(server.file("acme").read_text())["apiKeys"] if k["name"] == "suggested")
    assert stored["permissions"] == ["reports:read", "orders:read"]
    expires = stored["expiresAt"]
    expires = expires if isinstance(expires, datetime) else datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
    days = (expires - datetime.now(timezone.utc)).total_seconds() / 86400
    assert 29 < days <= 30, days


def test_rotate_and_delete_send_the_shown_keys_etag_and_a_412_changes_nothing(start_keyward, console):
    # Arrange
    server = start_keyward({"acme": "apiKeys:\n" + key_entry("ci-deploy", OLD)})
    jwt = mint_jwt()
    c = console(server)
    page = c.sign_in(jwt)
    sent = []
    page.on("request", lambda r: sent.append((r.method, r.url, r.headers.get("if-match"))) if "/apiKeys/ci-deploy" in r.url else None)
    page.get_by_role("button", name="Rotate ci-deploy").click()
    dialog = page.locator("#rotate-dialog")
    expect(dialog).to_be_visible()

    # Act: another admin changes the key while the dialog is open.
    status, _, _ = server.call("PUT", "/api/acme/admin/apiKeys/ci-deploy", jwt, {"enabled": True, "description": "changed elsewhere"})
    assert status == 200
    before = server.file("acme").read_text()
    dialog.get_by_role("button", name="Rotate").click()

    # Assert: refused, said plainly, the fresh key shown, nothing changed.
    expect(dialog.locator("#rotate-error")).to_contain_text(CHANGED_FIRST)
    expect(dialog.locator(".target-summary")).to_contain_text("changed elsewhere")
    expect(page.locator("#token-dialog")).to_be_hidden()
    assert server.file("acme").read_text() == before
    assert server.verify("acme", OLD)
    rotate = [s for s in sent if s[0] == "POST" and s[1].endswith("/rotate")]
    assert rotate and all(s[2] for s in rotate), rotate
    # Now on the fresh key: it goes through.
    dialog.get_by_role("button", name="Rotate").click()
    expect(page.locator("#token-dialog")).to_be_visible()
    page.get_by_role("button", name="I have copied it").click()

    # The same for delete.
    page.get_by_role("button", name="Delete ci-deploy").click()
    dialog = page.locator("#delete-dialog")
    dialog.get_by_label("Type the key's name to confirm").fill("ci-deploy")
    status, _, _ = server.call("PUT", "/api/acme/admin/apiKeys/ci-deploy", jwt, {"enabled": False})
    assert status == 200
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(dialog.locator("#delete-error")).to_contain_text(CHANGED_FIRST)
    expect(dialog.locator(".target-summary")).to_contain_text("disabled")
    assert "name: ci-deploy" in server.file("acme").read_text()
    deletes = [s for s in sent if s[0] == "DELETE"]
    assert deletes and all(s[2] for s in deletes), deletes
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(page.locator("#notice")).to_have_text("Deleted ci-deploy.")
    assert "name: ci-deploy" not in server.file("acme").read_text()
