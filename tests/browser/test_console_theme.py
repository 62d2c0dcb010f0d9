"""Dark mode and the keyboard in the console, in Chromium against the real server."""

from playwright.sync_api import expect

from conftest import mint_jwt


def colour(page, selector, prop):
    return page.evaluate(f"() => getComputedStyle(document.querySelector('{selector}')).{prop}")


def luminance(rgb):
    r, g, b = (int(x) for x in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_dark_mode_follows_the_systems_colour_scheme(keyward, console):
    # Arrange
    c = console(keyward)
    page = c.sign_in(mint_jwt())
    expect(c.row("ci-deploy")).to_be_visible()

    # Act + Assert: light by default, dark when the system asks, every surface with it.
    page.emulate_media(color_scheme="light")
    assert luminance(colour(page, "body", "backgroundColor")) > 0.9
    page.emulate_media(color_scheme="dark")
    assert luminance(colour(page, "body", "backgroundColor")) < 0.15
    assert luminance(colour(page, "body", "color")) > 0.8
    assert luminance(colour(page, "#filter-q", "backgroundColor")) < 0.15
    assert luminance(colour(page, "#tab-lookup", "color")) > 0.6
    page.get_by_role("button", name="New key").click()
    assert luminance(colour(page, "#key-dialog", "backgroundColor")) < 0.15
    c.shot("dark-create")


def test_row_actions_sort_and_key_pages_work_from_the_keyboard(keyward, console):
    # Arrange
    c = console(keyward)
    page = c.sign_in(mint_jwt())
    expect(c.row("ci-deploy")).to_be_visible()

    def tab_to(name, limit=60):
        for _ in range(limit):
            page.keyboard.press("Tab")
            focused = page.evaluate("() => document.activeElement.getAttribute('aria-label') || document.activeElement.textContent.trim()")
            if focused == name:
                assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
                return
        raise AssertionError(f"Tab never reached {name}")

    # Act + Assert: a sortable header by Enter, a row action by Space, Escape closes.
    tab_to("Name")
    page.keyboard.press("Enter")
    expect(page.get_by_role("columnheader", name="Name")).to_have_attribute("aria-sort", "descending")
    tab_to("Rotate reporting")
    page.keyboard.press("Space")
    expect(page.locator("#rotate-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#rotate-dialog")).to_be_hidden()

    # A key's page by Enter on its name, its actions by Tab.
    page.locator("#filter-q").focus()
    tab_to("ci-deploy")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="ci-deploy")).to_be_visible()
    tab_to("Edit")
    page.keyboard.press("Enter")
    expect(page.locator("#key-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#key-dialog")).to_be_hidden()
