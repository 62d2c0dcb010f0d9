"""Rate limits in the console, in Chromium against the real server: set on create, shown in
the row and on the key's page, changed and removed on edit, checked before sending, and
keyward's own refusal shown on the fields. Every effect is read back from keyward."""

import yaml
from playwright.sync_api import expect

from conftest import mint_jwt

JWT = mint_jwt()


def stored_limit(server, name):
    status, _, body = server.call("GET", f"/api/acme/admin/apiKeys/{name}", JWT)
    assert status == 200, body
    return body["rateLimit"]


def file_entry(server, name):
    return next(k for k in yaml.safe_load(server.file("acme").read_text())["apiKeys"] if k["name"] == name)


def fill_limit(dialog, requests, seconds):
    dialog.get_by_label("Requests").fill(requests)
    dialog.get_by_label("Per seconds").fill(seconds)


def test_a_rate_limit_is_set_shown_changed_and_removed(keyward, console):
    # Arrange
    c = console(keyward)
    page = c.sign_in(JWT)
    dialog = page.locator("#key-dialog")

    # Act: create a key limited to 100 verifications a minute.
    page.get_by_role("button", name="New key").click()
    dialog.get_by_label("Name").fill("limited")
    fill_limit(dialog, "100", "60")
    dialog.get_by_role("button", name="Create").click()
    page.get_by_role("button", name="I have copied it").click()

    # Assert: keyward holds it; the row and the key's page tell it.
    assert stored_limit(keyward, "limited") == {"requests": 100, "perSeconds": 60}
    expect(c.row("limited")).to_contain_text("100 / 60 s")
    expect(c.row("ci-deploy")).not_to_contain_text(" / ")
    page.get_by_role("link", name="limited").click()
    expect(page.locator("#key-facts")).to_contain_text("at most 100 requests every 60 seconds")

    # Act: change it, then remove it, from the key's page.
    page.get_by_role("button", name="Edit").click()
    expect(dialog.get_by_label("Requests")).to_have_value("100")
    expect(dialog.get_by_label("Per seconds")).to_have_value("60")
    fill_limit(dialog, "5", "1")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    assert stored_limit(keyward, "limited") == {"requests": 5, "perSeconds": 1}
    expect(page.locator("#key-facts")).to_contain_text("at most 5 requests every 1 second")
    page.get_by_role("button", name="Edit").click()
    fill_limit(dialog, "", "")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()

    # Assert: not limited any more, in keyward and in its file.
    assert stored_limit(keyward, "limited") is None
    assert "rateLimit" not in file_entry(keyward, "limited")
    expect(page.locator("#key-facts")).to_contain_text("not limited")


def test_an_edit_that_leaves_the_limit_alone_does_not_send_it(start_keyward, console):
    # Arrange: a key limited in its file.
    server = start_keyward({"acme": "apiKeys:\n  - name: kept\n    hash: sha256:" + "1" * 64 + "\n    rateLimit: {requests: 7, perSeconds: 30}\n"})
    c = console(server)
    page = c.sign_in(JWT)
    expect(c.row("kept")).to_contain_text("7 / 30 s")

    # Act
    page.get_by_role("button", name="Edit kept").click()
    page.locator("#key-dialog").get_by_label("Description").fill("still limited")
    page.locator("#key-dialog").get_by_role("button", name="Save").click()
    expect(page.locator("#key-dialog")).to_be_hidden()

    # Assert
    assert stored_limit(server, "kept") == {"requests": 7, "perSeconds": 30}


def test_a_limit_out_of_bounds_is_refused_on_its_fields_and_changes_nothing(keyward, console):
    # Arrange
    c = console(keyward)
    page = c.sign_in(JWT)
    dialog = page.locator("#key-dialog")
    before = keyward.file("acme").read_text()
    page.get_by_role("button", name="New key").click()
    dialog.get_by_label("Name").fill("too-fast")
    requests, seconds = dialog.get_by_label("Requests"), dialog.get_by_label("Per seconds")

    # Act + Assert: checked as keyward checks, before anything is sent.
    for typed, field, message in [
        (("0", "60"), requests, "1 to 1000000"),
        (("10", "86401"), seconds, "1 to 86400"),
        (("10", ""), seconds, "both"),
        (("2.5", "60"), requests, "whole number"),
    ]:
        fill_limit(dialog, *typed)
        dialog.get_by_role("button", name="Create").click()
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(page.locator(f"#{field.get_attribute('id')}-error")).to_contain_text(message)
    assert keyward.file("acme").read_text() == before

    # keyward's own refusal (a console whose bounds are out of date) lands on the fields too.
    requests.evaluate("input => input.removeAttribute('max')")
    fill_limit(dialog, "2000000", "60")
    dialog.get_by_role("button", name="Create").click()
    expect(requests).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#key-rate-requests-error")).to_contain_text("a rate limit is 1 to 1000000 requests per 1 to 86400 seconds")
    expect(page.locator("#key-form-error")).to_contain_text("Check the fields")
    assert keyward.file("acme").read_text() == before
