"""A key's whole life in the console with the keyboard alone (Tab, Shift+Tab, Enter, Space,
Escape, and typing), in Chromium against the real server in dev mode: every step's effect is
read back from keyward's API and its file, not from the page."""

import re

import yaml
from playwright.sync_api import expect

NAME = "keyboard-made"


class Keyboard:
    """Moves the focus with Tab or Shift+Tab only, and checks that it is visibly marked."""

    def __init__(self, page):
        self.page = page

    def focused(self):
        return self.page.evaluate(
            "() => { const e = document.activeElement;"
            " return e ? (e.id ? '#' + e.id : '') + '|' + (e.getAttribute('aria-label') || e.textContent.trim()) : '' }"
        )

    def to(self, target, back=False, limit=80):
        """Presses Tab (Shift+Tab with `back`) until the focus is on `target`: `#id`, or the
        control's accessible text."""
        for _ in range(limit):
            self.page.keyboard.press("Shift+Tab" if back else "Tab")
            element_id, _, text = self.focused().partition("|")
            if target in (element_id, text):
                outline = self.page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
                assert outline != "none", f"{target} has no visible focus"
                return
        raise AssertionError(f"{'Shift+Tab' if back else 'Tab'} never reached {target}")

    def press(self, target, key="Enter", back=False):
        self.to(target, back)
        self.page.keyboard.press(key)


def dev_token(server):
    printed = "".join(server.log)
    found = re.search(r"#token=(\S+)", printed)
    assert found, "dev mode prints a console link with its token"
    return found.group(1)


def stored_key(server, jwt, name):
    status, _, body = server.call("GET", f"/api/acme/admin/apiKeys/{name}", jwt)
    return body if status == 200 else None


def file_names(server):
    return [k["name"] for k in yaml.safe_load(server.file("acme").read_text())["apiKeys"]]


def token_shown(page):
    expect(page.locator("#token-dialog")).to_be_visible()
    return page.locator("#new-token").input_value()


def test_a_keys_whole_life_with_the_keyboard_alone(start_keyward, console):
    # Arrange: dev mode, whose printed admin token is pasted into the sign-in form.
    server = start_keyward(env={"KEYWARD_AUTH__HS256_SECRET": None})
    jwt = dev_token(server)
    c = console(server)
    page = c.open()
    keys = Keyboard(page)

    # Act + Assert: sign in.
    keys.to("#pasted-token")
    page.keyboard.insert_text(jwt)
    keys.press("Use this token")
    expect(c.row("ci-deploy")).to_be_visible()

    # Create a key; copy its token; close the dialog.
    keys.press("New key")
    page.keyboard.type(NAME)
    keys.to("#key-permissions")
    page.keyboard.type("orders:read")
    keys.press("Create")
    first = token_shown(page)
    assert server.verify("acme", first)
    assert NAME in file_names(server)
    keys.press("Copy", key="Space")
    expect(page.locator("#copy-status")).to_have_text("Copied.")
    keys.press("I have copied it")
    expect(page.locator("#token-dialog")).to_be_hidden()

    # Edit its description: past it with Tab, back to it with Shift+Tab.
    keys.press(f"Edit {NAME}")
    expect(page.locator("#key-dialog")).to_be_visible()
    keys.to("Save")
    keys.to("#key-description", back=True)
    page.keyboard.type("Made without a mouse")
    keys.press("Save")
    expect(page.locator("#key-dialog")).to_be_hidden()
    assert stored_key(server, jwt, NAME)["description"] == "Made without a mouse"

    # Rotate, the old token kept for the default hour; the new token shown once.
    keys.press(f"Rotate {NAME}", key="Space")
    expect(page.locator("#rotate-dialog")).to_be_visible()
    keys.press("Rotate")
    second = token_shown(page)
    assert second != first
    assert server.verify("acme", second) and server.verify("acme", first)
    page.keyboard.press("Escape")
    expect(page.locator("#token-confirm")).to_be_visible()
    keys.press("Close anyway")
    expect(page.locator("#token-dialog")).to_be_hidden()

    # Disable it: the edit dialog opens on its Enabled box.
    keys.press(f"Edit {NAME}")
    expect(page.locator("#key-dialog")).to_be_visible()
    assert keys.focused().startswith("#key-enabled")
    page.keyboard.press("Space")
    keys.press("Save")
    expect(page.locator("#key-dialog")).to_be_hidden()
    assert stored_key(server, jwt, NAME)["enabled"] is False
    assert not server.verify("acme", second)

    # Delete it: Escape first cancels, then its name typed confirms.
    keys.press(f"Delete {NAME}")
    expect(page.locator("#delete-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#delete-dialog")).to_be_hidden()
    assert stored_key(server, jwt, NAME) is not None
    keys.press(f"Delete {NAME}")
    expect(page.locator("#delete-dialog")).to_be_visible()
    page.keyboard.type(NAME)
    keys.press("Delete")
    expect(page.locator("#delete-dialog")).to_be_hidden()
    expect(c.row(NAME)).to_have_count(0)
    assert stored_key(server, jwt, NAME) is None
    assert NAME not in file_names(server)
