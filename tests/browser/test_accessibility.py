"""axe-core on every screen of the console (screenshots.SCREENS), in light and dark, at
desktop width and on a 390 px phone, in Chromium against the real server: no serious or
critical violation anywhere. Every violation found, of any impact, is printed."""

import pytest

import axe
from screenshots import SCREENS, Tab, admin_jwt, show, start_demo, variants

CASES = [(name, scheme, size) for name, screen in SCREENS.items() for scheme, size in variants(screen)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    server = start_demo(tmp_path_factory.mktemp("demo"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tab(browser, demo):
    # axe-core is injected: this context alone bypasses the page's script policy (axe.py).
    context = axe.context(browser)
    yield Tab(context.new_page(), demo, admin_jwt())
    context.close()


@pytest.mark.parametrize(("name", "scheme", "size"), CASES, ids=["-".join(c) for c in CASES])
def test_no_serious_or_critical_violation(tab, name, scheme, size):
    axe.available()
    # Arrange
    show(tab, name, scheme, size)

    # Act
    violations = axe.run(tab.page)

    # Assert
    if violations:
        print(f"\n{name}, {scheme}, {size}:\n{axe.report(violations)}")
    assert not axe.blocking(violations), axe.report(axe.blocking(violations))
