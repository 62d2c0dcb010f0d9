"""axe-core, as `npm ci --prefix tests/browser/axe` installs it (pinned), run inside a page.

The console's policy allows only its own scripts, so axe-core cannot be added to the page as
it is served: the accessibility test opens its pages in a browser context made with
`bypass_csp=True` (see `context`). Nothing else runs there; every other browser test keeps
the policy and fails on any report of it.
"""

import os
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
# What fails a screen; lesser findings are printed, for the record.
BLOCKING = {"serious", "critical"}


def available():
    """Whether axe-core is installed; locally a skip with a message, under CI a failure."""
    if SCRIPT.exists():
        return True
    message = "axe-core is not installed: `npm ci --prefix tests/browser/axe`"
    if os.environ.get("CI"):
        pytest.fail(f"CI must install it (see .ci/run). {message}")
    pytest.skip(message)


def context(browser):
    """A context whose pages accept an injected script: only axe-core is ever injected."""
    return browser.new_context(bypass_csp=True)


def run(page):
    """axe-core's violations on the page as it is now (dialogs and all), every impact."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(SCRIPT))
    return page.evaluate(
        """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))
        })))"""
    )


def report(violations):
    """Every violation, one block each: rule, impact, what it asks, and where."""
    lines = []
    for v in violations:
        lines.append(f"[{v['impact']}] {v['id']}: {v['help']}")
        for node in v["nodes"]:
            summary = " ".join((node["summary"] or "").split())
            lines.append(f"    {node['target']}: {summary}")
    return "\n".join(lines)


def blocking(violations):
    return [v for v in violations if v["impact"] in BLOCKING]
