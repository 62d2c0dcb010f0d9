"""The /docs page in Chromium, with every request to anything but keyward refused: the API
reference must render from what keyward serves alone (offline, behind an air gap)."""

from urllib.parse import urlsplit

from playwright.sync_api import expect


def offline_tab(browser, server):
    """A tab that can reach `server` only; what else the page asks for is refused and kept."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    outside = []
    own = urlsplit(server.url).netloc

    def only_keyward(route):
        url = route.request.url
        if urlsplit(url).netloc == own:
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    context.route("**/*", only_keyward)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    return context, page, outside, errors


def test_the_docs_page_shows_every_operation_of_the_served_document_offline(keyward, browser):
    status, _, doc = keyward.call("GET", "/openapi.json")
    assert status == 200
    operations = [op for item in doc["paths"].values() for op in item.values() if isinstance(op, dict)]
    context, page, outside, errors = offline_tab(browser, keyward)
    try:
        page.goto(keyward.url + "/docs")

        reference = page.locator("#reference")
        listing = page.locator("#op-listApiKeys")
        expect(listing).to_be_visible()
        expect(listing.locator(".summary")).to_have_text(doc["paths"]["/api/{tenantId}/admin/apiKeys"]["get"]["summary"])
        expect(listing.locator(".path")).to_have_text("/api/{tenantId}/admin/apiKeys")
        expect(listing).to_contain_text("tenantId")
        for op in operations:
            expect(page.locator(f"#op-{op['operationId']}")).to_contain_text(op["summary"])
        # A response's declared headers are shown: creating a key answers with its Location.
        expect(page.locator("#op-createApiKey")).to_contain_text("Location")
        for name in doc["components"]["schemas"]:
            expect(reference.locator(f"#schema-{name}")).to_be_attached()
        # The page's address fragment links to an operation.
        page.locator("#toc").get_by_role("link", name=doc["paths"]["/healthz"]["get"]["summary"]).click()
        assert page.url.endswith("#op-healthz")
    finally:
        context.close()
    assert outside == [], f"the page asked for outside URLs: {outside}"
    assert errors == [], f"the page reported errors: {errors}"


def test_the_docs_page_says_so_when_the_document_cannot_be_loaded(keyward, browser):
    context, page, outside, errors = offline_tab(browser, keyward)
    try:
        page.route("**/openapi.json", lambda route: route.fulfill(status=503, body="{}"))

        page.goto(keyward.url + "/docs")

        expect(page.get_by_role("alert")).to_contain_text("Could not load the API document")
    finally:
        context.close()
    assert outside == []
    # The refused document is reported by the browser itself; no script failed.
    assert all("503" in e for e in errors), errors
