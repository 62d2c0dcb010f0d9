"""The keys list and each key's page in Chromium against the real server: search as you
type, sortable columns, counts, token hints, rotation state, shareable key pages, empty
states and the phone layout."""

import re
from datetime import date

from playwright.sync_api import expect

from conftest import key_entry, mint_jwt


def dated_entry(name, created, expires=None, permissions=("orders:read",), description=None):
    entry = key_entry(name, permissions=permissions) + f"    createdAt: {created}T10:00:00Z\n"
    if expires:
        entry += f"    expiresAt: {expires}T00:00:00Z\n"
    if description:
        entry += f"    description: {description}\n"
    return entry


def names(page):
    return page.locator("#keys-body tr").evaluate_all("rows => rows.map(r => r.dataset.key)")


def create(server, jwt, name, **more):
    status, _, body = server.call("POST", "/api/acme/admin/apiKeys", jwt, {"name": name, "permissions": ["orders:read"], **more})
    assert status == 201, body
    return body


def test_the_search_box_searches_as_you_type_and_the_url_keeps_it(start_keyward, console):
    # Arrange
    keys = (
        dated_entry("ci-deploy", "2026-01-01")
        + dated_entry("reporting", "2026-01-02", permissions=("reports:read",))
        + dated_entry("nightly", "2026-01-03", description="exports the billing data")
    )
    server = start_keyward({"acme": "apiKeys:\n" + keys})
    c = console(server)
    page = c.sign_in(mint_jwt())
    expect(page.locator("#keys-body tr")).to_have_count(3)
    searches = []
    page.on("request", lambda r: searches.append(r.url) if "/apiKeys?" in r.url and "q=" in r.url else None)

    # Act: type, press nothing.
    page.get_by_label("Search keys").press_sequentially("deploy")

    # Assert: one search (not one per letter), through the API, kept in the URL.
    expect(page.locator("#keys-body tr")).to_have_count(1)
    expect(c.row("ci-deploy")).to_be_visible()
    assert 1 <= len(searches) < len("deploy"), searches
    assert "q=deploy" in page.url
    page.reload()
    expect(page.get_by_label("Search keys")).to_have_value("deploy")
    expect(page.locator("#keys-body tr")).to_have_count(1)

    # The API's q also reads descriptions and permissions.
    page.get_by_label("Search keys").fill("BILLING")
    expect(page.locator("#keys-body tr")).to_have_count(1)
    expect(c.row("nightly")).to_be_visible()
    page.get_by_label("Search keys").fill("reports:read")
    expect(c.row("reporting")).to_be_visible()
    expect(page.locator("#keys-body tr")).to_have_count(1)


def test_column_headers_sort_both_ways_through_the_api(start_keyward, console):
    # Arrange: names, creation and expiry in three different orders.
    keys = (
        dated_entry("bravo", "2026-03-01", "2028-01-01")
        + dated_entry("alpha", "2026-02-01", "2029-01-01")
        + dated_entry("charlie", "2026-01-01", "2027-06-01")
    )
    server = start_keyward({"acme": "apiKeys:\n" + keys})
    c = console(server)
    page = c.sign_in(mint_jwt())
    header = lambda name: page.get_by_role("columnheader", name=name)
    expect(page.locator("#keys-body tr")).to_have_count(3)
    assert names(page) == ["alpha", "bravo", "charlie"]
    expect(header("Name")).to_have_attribute("aria-sort", "ascending")

    # Act + Assert: each click asks keyward for that order.
    header("Name").get_by_role("button").click()
    expect(header("Name")).to_have_attribute("aria-sort", "descending")
    expect(page.locator("#keys-body tr").first).to_have_attribute("data-key", "charlie")
    assert names(page) == ["charlie", "bravo", "alpha"]

    header("Created").get_by_role("button").click()
    expect(header("Created")).to_have_attribute("aria-sort", "ascending")
    expect(header("Name")).not_to_have_attribute("aria-sort", re.compile("."))
    expect(page.locator("#keys-body tr").first).to_have_attribute("data-key", "charlie")
    assert names(page) == ["charlie", "alpha", "bravo"]
    assert "sort=createdAt" in page.url

    header("Expires").get_by_role("button").click()
    expect(header("Expires")).to_have_attribute("aria-sort", "ascending")
    header("Expires").get_by_role("button").click()
    expect(header("Expires")).to_have_attribute("aria-sort", "descending")
    expect(page.locator("#keys-body tr").first).to_have_attribute("data-key", "alpha")
    assert names(page) == ["alpha", "bravo", "charlie"]
    assert "sort=-expiresAt" in page.url

    header("Last used").get_by_role("button").click()
    expect(header("Last used")).to_have_attribute("aria-sort", "ascending")
    # The sort survives a reload.
    page.reload()
    expect(header("Last used")).to_have_attribute("aria-sort", "ascending")


def test_the_count_is_keywards_total_and_a_created_column_shows(start_keyward, console):
    # Arrange: more keys than a page.
    server = start_keyward({"acme": "apiKeys:\n" + "".join(dated_entry(f"key-{i:03}", "2026-05-04") for i in range(120))})
    c = console(server)
    page = c.sign_in(mint_jwt())

    # Assert
    expect(page.locator("#key-count")).to_have_text("120 keys")
    expect(page.locator("#keys-body tr")).to_have_count(50)
    expect(page.get_by_role("columnheader", name="Created")).to_be_visible()
    expect(c.row("key-000").locator("td.created")).to_contain_text("2026")
    page.get_by_label("Search keys").fill("key-11")  # key-110 to key-119
    expect(page.locator("#key-count")).to_have_text("10 keys")


def test_the_list_shows_each_keys_hint_and_none_for_keys_without_one(keyward, console):
    # Arrange: a key made by keyward has a hint; the imported ones have none.
    jwt = mint_jwt()
    made = create(keyward, jwt, "made-here")
    hint = made["key"]["hint"] if "key" in made else made["hint"]
    assert hint and made["token"].endswith(hint[-4:])
    c = console(keyward)
    page = c.sign_in(jwt)

    # Assert
    expect(c.row("made-here").locator(".hint")).to_have_text(hint)
    expect(c.row("ci-deploy").locator(".hint")).to_have_count(0)


def test_rotation_state_shows_in_the_row_and_on_the_keys_page_which_ends_grace(start_keyward, console):
    # Arrange: two rotations with a grace period.
    server = start_keyward({"acme": "apiKeys:\n" + key_entry("ci-deploy") + key_entry("reporting")})
    jwt = mint_jwt()
    for grace in (3600, 600):
        status, _, body = server.call("POST", "/api/acme/admin/apiKeys/ci-deploy/rotate", jwt, {"gracePeriodSeconds": grace})
        assert status == 200, body
    c = console(server)
    page = c.sign_in(jwt)

    # Assert: the row says when it was rotated and how many old tokens work until when.
    row = c.row("ci-deploy")
    expect(row.locator(".rotated")).to_contain_text("rotated")
    expect(row.locator(".rotated")).to_contain_text(str(date.today().year))
    expect(row.locator(".grace-note")).to_contain_text("2 old tokens work until")
    expect(c.row("reporting").locator(".rotated")).to_have_count(0)

    # The key's own page says the same and ends them.
    row.get_by_role("link", name="ci-deploy").click()
    facts = page.locator("#key-facts")
    expect(facts).to_contain_text("Rotated at")
    expect(facts).to_contain_text("2 old tokens work until")
    page.get_by_role("button", name="End grace now").click()
    page.locator("#grace-dialog").get_by_role("button", name="End them now").click()
    expect(page.locator("#notice")).to_have_text("The old tokens of ci-deploy no longer work.")
    expect(facts).to_contain_text("no old token works")
    expect(page.get_by_role("button", name="End grace now")).to_be_hidden()


def test_a_key_has_a_page_whose_url_can_be_shared_and_back_and_forward_work(keyward, console):
    # Arrange
    jwt = mint_jwt()
    c = console(keyward)
    page = c.sign_in(jwt)
    expect(c.row("ci-deploy")).to_be_visible()

    # Act
    c.row("ci-deploy").get_by_role("link", name="ci-deploy").click()

    # Assert
    expect(page.get_by_role("heading", name="ci-deploy")).to_be_visible()
    assert page.url.endswith("/#/acme/keys/ci-deploy")
    expect(page.locator("#key-facts")).to_contain_text("orders:read")
    page.go_back()
    expect(c.row("reporting")).to_be_visible()
    page.go_forward()
    expect(page.get_by_role("heading", name="ci-deploy")).to_be_visible()
    expect(c.row("reporting")).to_be_hidden()

    # A fresh tab, signed in, opens the same URL on the key.
    other = console(keyward)
    other.sign_in(jwt)
    # Signed in first: the console then moves to `#/acme` by `replaceState`, which Playwright
    # can take for the end of a `goto` started before it, and reload the wrong address.
    expect(other.row("reporting")).to_be_visible()
    other.page.goto(keyward.url + "/#/acme/keys/reporting")
    other.page.reload()
    expect(other.page.get_by_role("heading", name="reporting")).to_be_visible()
    expect(other.page.locator("#key-facts")).to_contain_text("reports:read")
    # A name no key has says so.
    other.page.goto(keyward.url + "/#/acme/keys/nobody")
    expect(other.page.locator("#key-view-error")).to_contain_text("no key named nobody")


def test_an_empty_tenant_offers_to_create_a_key_and_a_filter_matching_nothing_offers_to_clear(start_keyward, console):
    # Arrange
    server = start_keyward({"acme": "apiKeys:\n" + key_entry("ci-deploy"), "empty": "apiKeys: []\n"})
    c = console(server)
    page = c.sign_in(mint_jwt(tenant="empty"))

    # Assert: an empty tenant.
    expect(page.locator("#keys-empty")).to_contain_text("This tenant has no keys yet.")
    expect(page.get_by_text("No keys match")).to_have_count(0)
    expect(page.get_by_role("button", name="Clear filters")).to_be_hidden()
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#key-dialog")).to_be_visible()
    page.keyboard.press("Escape")

    # A filter that matches nothing.
    other = console(server)
    page = other.sign_in(mint_jwt())
    expect(other.row("ci-deploy")).to_be_visible()
    page.get_by_label("Search keys").fill("zzz")
    expect(page.locator("#keys-empty")).to_contain_text("No keys match.")
    expect(page.get_by_role("button", name="Create key")).to_be_hidden()
    page.get_by_role("button", name="Clear filters").click()
    expect(other.row("ci-deploy")).to_be_visible()
    expect(page.get_by_label("Search keys")).to_have_value("")


def test_on_a_phone_fifty_keys_make_a_short_page_and_every_action_stays_reachable(start_keyward, console):
    # Arrange: 50 keys, as the 14,283 px page measured before.
    entries = "".join(dated_entry(f"key-{i:03}", "2026-05-04", description="a description of this key") for i in range(50))
    server = start_keyward({"acme": "apiKeys:\n" + entries})
    c = console(server, width=390, height=844)
    page = c.sign_in(mint_jwt())
    expect(page.locator("#keys-body tr")).to_have_count(50)

    # Assert: short, and nothing wider than the screen.
    height = page.evaluate("() => document.documentElement.scrollHeight")
    print(f"50 keys at 390 px: {height} px")
    assert height < 3_000, height
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    c.shot("keys-390")

    # The filters fold behind a button.
    enabled = page.get_by_role("combobox", name="Enabled")
    expect(enabled).to_be_hidden()
    page.get_by_role("button", name="Filters").click()
    expect(page.get_by_role("button", name="Filters")).to_have_attribute("aria-expanded", "true")
    enabled.select_option("false")
    expect(page.locator("#keys-empty")).to_contain_text("No keys match.")
    page.get_by_role("button", name="Clear filters").click()
    expect(page.locator("#keys-body tr")).to_have_count(50)

    # Every action is on the key's page.
    c.row("key-007").get_by_role("link", name="key-007").click()
    for action in ("Edit", "Rotate", "Delete"):
        expect(page.get_by_role("button", name=action, exact=True)).to_be_in_viewport()
    page.get_by_role("button", name="Rotate", exact=True).click()
    page.locator("#rotate-dialog").get_by_role("button", name="Rotate").click()
    expect(page.locator("#token-dialog")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
