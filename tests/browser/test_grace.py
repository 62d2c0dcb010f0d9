"""Grace tokens and untouched fields in the console, in Chromium against the real server."""

import json

import yaml
from playwright.sync_api import expect

from conftest import key_entry, mint_jwt

OLD = "legacy-ci-deploy-" + "x" * 20


def rotate(server, token, grace):
    status, _, body = server.call(
        "POST", "/api/acme/admin/apiKeys/ci-deploy/rotate", token, {"gracePeriodSeconds": grace}
    )
    assert status == 200, body
    return body["token"]


def test_the_console_shows_grace_tokens_and_ends_them(start_keyward, console):
    # Arrange: two rotations with a grace period leave two old tokens working.
    server = start_keyward({"acme": "apiKeys:\n" + key_entry("ci-deploy", OLD) + key_entry("reporting")})
    jwt = mint_jwt()
    second = rotate(server, jwt, 3600)
    current = rotate(server, jwt, 600)
    c = console(server)
    page = c.sign_in(jwt)

    # Assert: the key says how many old tokens still work, and until when.
    note = c.row("ci-deploy").locator(".grace-note")
    expect(note).to_contain_text("2 old tokens work until")
    expect(c.row("reporting").locator(".grace-note")).to_have_count(0)
    expect(page.get_by_role("button", name="End grace now for reporting")).to_have_count(0)
    c.shot("grace-tokens-desktop")

    # Act: end them.
    page.get_by_role("button", name="End grace now for ci-deploy").click()
    dialog = page.locator("#grace-dialog")
    expect(dialog).to_contain_text("2 old tokens")
    dialog.get_by_role("button", name="End them now").click()

    # Assert
    expect(page.locator("#notice")).to_have_text("The old tokens of ci-deploy no longer work.")
    expect(note).to_have_count(0)
    assert not server.verify("acme", OLD)
    assert not server.verify("acme", second)
    assert server.verify("acme", current)
    assert "previousHashes" not in server.file("acme").read_text()


def test_disabling_a_key_leaves_its_multi_line_padded_description_as_it_was(start_keyward, console):
    # Arrange
    description = "  deploys from CI\n  ask ops before rotating  "
    # A JSON string is a YAML double-quoted scalar: the file holds exactly this text.
    entry = key_entry("ci-deploy", OLD) + f"    description: {json.dumps(description)}\n"
    server = start_keyward({"acme": "apiKeys:\n" + entry})
    assert yaml.safe_load(server.file("acme").read_text())["apiKeys"][0]["description"] == description
    c = console(server)
    page = c.sign_in(mint_jwt())

    # Act: disable the key, touching nothing else.
    page.get_by_role("button", name="Edit ci-deploy").click()
    expect(page.get_by_label("Description")).to_have_value(description)
    page.get_by_label("Enabled", exact=True).uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#notice")).to_have_text("Saved ci-deploy.")

    # Assert
    stored = yaml.safe_load(server.file("acme").read_text())["apiKeys"][0]
    assert stored["enabled"] is False
    assert stored["description"] == description
