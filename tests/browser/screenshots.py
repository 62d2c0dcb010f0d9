"""The console's screens, each with how to reach it, and a script that photographs them.

`SCREENS` is the one table of the console's screens (name -> how to reach it from a signed-in
tab on the demo server); the accessibility test runs axe-core on every one of them and this
script photographs the main ones. A new screen is one new row.

    python3 tests/browser/screenshots.py [--out DIR]

starts the real keyward binary (KEYWARD_BIN, else target/debug/keyward) on a demo server,
signs in, and writes a PNG of each main screen in light and dark, at 1280x800 and 390x844.
It refuses to write into the repository's tracked tree: DIR must be outside the repository
or git-ignored (the default, target/console-screenshots/, is).
"""

import argparse
import hashlib
import os
import pathlib
import secrets
import string
import subprocess
import sys
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "target" / "console-screenshots"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
SCHEMES = ("light", "dark")
TENANT = "acme"

# ---- the demo server ----


BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


def token():
    """A token as keyward makes one: `kw_`, 43 random base-62 digits, and 6 more holding the
    CRC32 of the rest (which keyward checks before it looks a token up)."""
    body = "kw_" + "".join(secrets.choice(BASE62) for _ in range(43))
    crc = zlib.crc32(body.encode())
    check = ""
    for _ in range(6):
        check = BASE62[crc % 62] + check
        crc //= 62
    return body + check


def sha(text):
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def moment(days):
    return (datetime.now(timezone.utc) + timedelta(days=days)).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class DemoKey:
    name: str
    permissions: tuple
    description: str = ""
    enabled: bool = True
    expires_in_days: int = None
    grace: bool = False
    used: bool = True
    rate_limit: tuple = None

    def __post_init__(self):
        self.token = token()

    def entry(self):
        lines = [
            f"  - name: {self.name}",
            f"    hash: {sha(self.token)}",
            f"    hint: kw_...{self.token[-4:]}",
            f"    enabled: {str(self.enabled).lower()}",
            f"    permissions: [{', '.join(self.permissions)}]",
            f"    createdAt: {moment(-120)}",
            "    createdBy: ops@example.com",
        ]
        if self.description:
            lines.append(f"    description: {self.description!r}")
        if self.expires_in_days is not None:
            lines.append(f"    expiresAt: {moment(self.expires_in_days)}")
        if self.rate_limit:
            lines.append(f"    rateLimit: {{requests: {self.rate_limit[0]}, perSeconds: {self.rate_limit[1]}}}")
        if self.grace:
            lines += [
                f"    rotatedAt: {moment(-1)}",
                "    previousHashes:",
                f"      - hash: {sha(token())}",
                f"        expiresAt: {moment(2)}",
            ]
        return "\n".join(lines) + "\n"


DEMO_KEYS = [
    DemoKey("billing-webhook", ("billing:write",), "Stripe webhook receiver", rate_limit=(100, 60)),
    DemoKey("ci-deploy", ("deploy:write", "orders:read"), "GitHub Actions: deploys main", grace=True),
    DemoKey("data-export", ("orders:read", "customers:read"), "Nightly export to the warehouse", expires_in_days=90),
    DemoKey("grafana", ("metrics:read",), "Dashboards", rate_limit=(10, 1)),
    DemoKey("legacy-crm", ("customers:read",), "Old CRM sync, replaced by crm-sync", enabled=False, used=False),
    DemoKey("crm-sync", ("customers:read", "customers:write"), "Two-way CRM sync"),
    DemoKey("mobile-app", ("orders:read", "orders:write"), "iOS and Android app, v4", rate_limit=(1000, 60)),
    DemoKey("partner-acme-shipping", ("orders:read",), "Shipping partner, read only", expires_in_days=-10),
    DemoKey("reporting", ("reports:read",), "Monthly reports"),
    DemoKey("staging-smoke", ("orders:read",), "Smoke tests against staging", used=False),
    DemoKey("support-tools", ("customers:read", "orders:read"), "Support desk lookups", enabled=False),
    DemoKey("warehouse-scanner", ("inventory:write",), "Handheld scanners in the warehouse", expires_in_days=7),
]

BROKEN = "apiKeys:\n  - name: [broken\n"


def demo_tenants():
    return {
        TENANT: "# acme's keys, as the demo shows them\napiKeys:\n" + "".join(k.entry() for k in DEMO_KEYS),
        "empty": "apiKeys: []\n",
        "broken": BROKEN,
    }


def git(*args, cwd):
    subprocess.run(
        ["git", "-c", "user.name=ops", "-c", "user.email=ops@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def start_demo(root: pathlib.Path):
    """keyward in git mode (so the history tab exists) on a clone holding the demo tenants;
    the keys marked used have verified once, so they show when."""
    from conftest import Keyward

    git("init", "-q", "--bare", "-b", "main", "origin.git", cwd=root)
    git("clone", "-q", "origin.git", "clone", cwd=root)
    clone = root / "clone"
    for name, text in demo_tenants().items():
        (clone / "tenants" / name).mkdir(parents=True)
        (clone / "tenants" / name / "security.yml").write_text(text)
    git("add", ".", cwd=clone)
    git("commit", "-qm", "The demo tenants", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    server = Keyward(clone, {}, {"KEYWARD_GIT__ENABLED": "true", "KEYWARD_STATE_DIR": str(root / "state")})
    for key in DEMO_KEYS:
        if key.used and key.enabled and (key.expires_in_days or 1) > 0:
            server.verify(TENANT, key.token)
    return server


def admin_jwt():
    """An administrator of every tenant: the tenant picker lists them all."""
    from conftest import mint_jwt

    return mint_jwt(tenant="*", ttl=24 * 3600)


# ---- the screens ----


class Tab:
    """A tab on the demo server signed in with `jwt`: the page, the server, fresh key names."""

    def __init__(self, page, server, jwt):
        self.page = page
        self.server = server
        self.jwt = jwt
        self.names = count(1)
        self.signed_in = False

    def load(self, fragment=""):
        self.page.goto("about:blank")
        self.page.goto(f"{self.server.url}/{fragment}")

    def go(self, fragment=f"#/{TENANT}"):
        """A fresh load of the console at `fragment`, signed in. The console keeps its token
        in the tab's sessionStorage: put there once, every later load finds it (signing in by
        the form itself is tested in test_console.py)."""
        if not self.signed_in:
            self.load()
            self.page.evaluate("jwt => sessionStorage.setItem('keyward.token', jwt)", self.jwt)
            self.signed_in = True
        self.load(fragment)

    def sign_out(self):
        self.load()
        self.page.evaluate("() => sessionStorage.clear()")
        self.signed_in = False

    def keys_shown(self):
        self.page.locator(f'#keys-body tr[data-key="ci-deploy"]').wait_for()

    def new_name(self):
        return f"new-key-{os.getpid()}-{next(self.names)}"


def sign_in(tab):
    tab.sign_out()
    tab.load()
    tab.page.locator("#sign-in").wait_for()


def key_list(tab):
    tab.go()
    tab.keys_shown()


def empty_tenant(tab):
    tab.go("#/empty")
    tab.page.locator("#empty-create").wait_for()


def tenant_picker(tab):
    key_list(tab)
    tab.page.locator("#tenant-select").focus()


def key_page(tab):
    tab.go(f"#/{TENANT}/keys/ci-deploy")
    tab.page.locator("#key-facts dt").first.wait_for()


def create_dialog(tab):
    key_list(tab)
    tab.page.locator("#new-key").click()
    tab.page.locator("#permission-suggestions button").first.wait_for()


def create_errors(tab):
    create_dialog(tab)
    tab.page.locator("#key-name").fill("no spaces allowed")
    tab.page.locator("#key-submit").click()
    tab.page.locator("#key-name-error").filter(has_text=" ").wait_for()


def rate_limit_errors(tab):
    create_dialog(tab)
    tab.page.locator("#key-name").fill(tab.new_name())
    tab.page.locator("#key-rate-requests").fill("0")
    tab.page.locator("#key-submit").click()
    tab.page.locator("#key-rate-seconds-error").filter(has_text=" ").wait_for()


def token_dialog(tab):
    key_list(tab)
    tab.page.locator("#new-key").click()
    tab.page.locator("#key-name").fill(tab.new_name())
    tab.page.locator("#key-permissions").fill("orders:read")
    tab.page.locator("#key-submit").click()
    tab.page.locator("#token-dialog").wait_for()


def token_close_anyway(tab):
    token_dialog(tab)
    tab.page.keyboard.press("Escape")
    tab.page.locator("#token-confirm").wait_for()


def row_action(tab, action, dialog):
    key_page(tab)
    tab.page.locator(f'#key-view-actions button[data-action="{action}"]').click()
    tab.page.locator(dialog).wait_for()


def edit_dialog(tab):
    row_action(tab, "edit", "#key-dialog")
    tab.page.locator("#key-permissions").wait_for()


def rotate_dialog(tab):
    row_action(tab, "rotate", "#rotate-dialog")


def delete_dialog(tab):
    row_action(tab, "delete", "#delete-dialog")


def end_grace_dialog(tab):
    row_action(tab, "end-grace", "#grace-dialog")


def lookup_answer(tab):
    key_list(tab)
    tab.page.locator("#tab-lookup").click()
    tab.page.locator("#lookup-token").fill(DEMO_KEYS[0].token)
    tab.page.locator("#lookup-form button[type=submit]").click()
    tab.page.locator("#lookup-result .lookup-found").wait_for()


def history_tab(tab):
    key_list(tab)
    tab.page.locator("#tab-history").click()
    tab.page.locator("#history-body tr").first.wait_for()


def invalid_file(tab):
    tab.go("#/broken")
    tab.page.locator("#file-banner").wait_for()


def error_notice(tab):
    tab.go("#/no-such-tenant")
    tab.page.locator("#notice").wait_for()


def filters_folded(tab):
    key_list(tab)


def filters_unfolded(tab):
    key_list(tab)
    toggle = tab.page.locator("#filters-toggle")
    if toggle.is_visible():
        toggle.click()
        tab.page.locator("#filter-enabled").wait_for()


@dataclass(frozen=True)
class Screen:
    reach: Callable[[Tab], None]
    # Photographed by the script (every screen is checked by axe-core either way).
    main: bool = False
    # Only a phone shows it as its own screen.
    phone_only: bool = False


SCREENS = {
    "sign-in": Screen(sign_in, main=True),
    "keys": Screen(key_list, main=True),
    "empty-tenant": Screen(empty_tenant, main=True),
    "tenant-picker": Screen(tenant_picker),
    "key-page": Screen(key_page, main=True),
    "create": Screen(create_dialog, main=True),
    "create-errors": Screen(create_errors),
    "rate-limit-errors": Screen(rate_limit_errors),
    "token": Screen(token_dialog, main=True),
    "token-close-anyway": Screen(token_close_anyway),
    "edit": Screen(edit_dialog, main=True),
    "rotate": Screen(rotate_dialog),
    "delete": Screen(delete_dialog),
    "end-grace": Screen(end_grace_dialog),
    "lookup": Screen(lookup_answer, main=True),
    "history": Screen(history_tab, main=True),
    "invalid-file": Screen(invalid_file, main=True),
    "error-notice": Screen(error_notice),
    "filters-folded": Screen(filters_folded, phone_only=True),
    "filters-unfolded": Screen(filters_unfolded, phone_only=True),
}


def variants(screen: Screen):
    """(scheme, size) pairs the screen is seen in."""
    sizes = ["phone"] if screen.phone_only else list(SIZES)
    return [(scheme, size) for scheme in SCHEMES for size in sizes]


def show(tab, name, scheme, size):
    """Reaches screen `name` in `scheme` at `size`."""
    width, height = SIZES[size]
    tab.page.set_viewport_size({"width": width, "height": height})
    tab.page.emulate_media(color_scheme=scheme)
    SCREENS[name].reach(tab)


# ---- writing PNGs ----


def save(page, out: pathlib.Path, name):
    """The page, whole, as `out/name.png`; the path written."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def tracked_tree(out: pathlib.Path):
    """Whether files written in `out` would land in the repository's tracked tree."""
    out = out.resolve()
    if ROOT not in out.parents and out != ROOT:
        return False
    probe = out / "probe.png"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=ROOT, capture_output=True)
    return ignored.returncode != 0


def photograph(browser, server, out):
    """Every main screen in every variant; the paths written."""
    context = browser.new_context()
    try:
        tab = Tab(context.new_page(), server, admin_jwt())
        written = []
        for name, screen in SCREENS.items():
            if not screen.main:
                continue
            for scheme, size in variants(screen):
                show(tab, name, scheme, size)
                written.append(save(tab.page, out, f"{name}-{scheme}-{size}"))
        return written
    finally:
        context.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT, help=f"where the PNGs go (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if tracked_tree(args.out):
        sys.exit(f"{args.out} is inside the repository and not git-ignored: choose another --out")
    os.environ.setdefault("KEYWARD_BIN", str(ROOT / "target" / "debug" / "keyward"))
    from conftest import launch

    with tempfile.TemporaryDirectory() as root, launch() as browser:
        server = start_demo(pathlib.Path(root))
        try:
            written = photograph(browser, server, args.out)
        finally:
            server.stop()
    for path in written:
        print(path)
    print(f"{len(written)} screenshots in {args.out}")


if __name__ == "__main__":
    main()
