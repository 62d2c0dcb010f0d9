"""The console's browser tests: the real keyward binary on a real port, real JWTs signed
with a real key, Debian's Chromium driven by Playwright.

Run by `cargo test` (tests/api/console.rs), which passes the binary in KEYWARD_BIN; or by
hand: `KEYWARD_BIN=target/debug/keyward python3 -m pytest tests/browser`.
Screenshots of the main screens go to target/console-screenshots/ (never into git).
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import pathlib
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect, sync_playwright

SECRET = "browser-test-secret-that-is-long-enough-for-hs256"
ROOT = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# The suite runs beside the rest of `cargo test` on two cores: give the page time.
expect.set_options(timeout=15_000)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_jwt(tenant="acme", scope="tenant.apiKey:read tenant.apiKey:write", ttl=3600, sub="alice@example.com", **more):
    """An HS256 JWT signed with the server's secret; `scope=None` leaves the claim out, and
    `more` adds claims (`scp=...`)."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": sub, "tenant_id": tenant, "iat": now, "exp": now + ttl, **more}
    if scope is not None:
        claims["scope"] = scope
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    sig = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def key_entry(name, token=None, permissions=("orders:read",)):
    # Not keyward's prefix: an imported key, hashed as it is.
    token = token or f"legacy-{name}-{'x' * 20}"
    digest = hashlib.sha256(token.encode()).hexdigest()
    perms = ", ".join(permissions)
    return f"  - name: {name}\n    hash: sha256:{digest}\n    permissions: [{perms}]\n"


ACME = "# acme's keys\napiKeys:\n" + key_entry("ci-deploy") + key_entry("reporting", permissions=("reports:read",))


def parsed(headers, body):
    return json.loads(body) if "json" in headers.get("Content-Type", "") and body else body


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Keyward:
    """The keyward binary serving a temp directory of tenants."""

    def __init__(self, root: pathlib.Path, tenants: dict, env: dict, port: int = 0):
        self.root = root
        for name, text in tenants.items():
            (root / "tenants" / name).mkdir(parents=True, exist_ok=True)
            (root / "tenants" / name / "security.yml").write_text(text)
        (root / "tenants").mkdir(exist_ok=True)
        settings = {
            "KEYWARD_LISTEN": f"127.0.0.1:{port}",
            "KEYWARD_LOG_FORMAT": "json",
            "KEYWARD_AUTH__HS256_SECRET": SECRET,
            "RUST_LOG": "info",
        }
        settings.update(env)
        # A developer's own KEYWARD_* settings (a listen address, a secret) must not leak
        # into the test's server: pass only the test's own.
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KEYWARD_")}
        # None: leave the setting at its default.
        environ.update({k: v for k, v in settings.items() if v is not None})
        self.proc = subprocess.Popen(
            [os.environ["KEYWARD_BIN"], "serve"],
            cwd=root,
            env=environ,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.log = []
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.log.append(line)
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                message = record.get("message", "")
                if "keyward listening" in message:
                    self.port = record["port"]
                if "keyward ready" in message:
                    ready.set()
            ready.set()  # it exited

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(15) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("keyward did not become ready:\n" + "".join(self.log))
        self.url = f"http://127.0.0.1:{self.port}"

    def file(self, tenant):
        return self.root / "tenants" / tenant / "security.yml"

    def call(self, method, path, token=None, body=None, headers=None):
        """One API call from outside the browser: (status, headers, json)."""
        req = urllib.request.Request(self.url + path, method=method)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, data) as res:
                return res.status, res.headers, parsed(res.headers, res.read())
        except urllib.error.HTTPError as e:
            return e.code, e.headers, parsed(e.headers, e.read())

    def verify(self, tenant, key):
        _, _, body = self.call("POST", f"/api/{tenant}/apiKeys/verify", body={"key": key})
        return body["valid"]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def start_keyward(tmp_path):
    started = []

    def start(tenants=None, env=None, port=0, root=None):
        server = Keyward(root or tmp_path, {"acme": ACME} if tenants is None else tenants, env or {}, port)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def keyward(start_keyward):
    return start_keyward()


@contextlib.contextmanager
def launch():
    """Debian's Chromium, headless, as every browser test (and the screenshot script) runs it."""
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def browser():
    with launch() as b:
        yield b


class Console:
    """A browser tab on the console, failing the test on any script error or CSP report."""

    def __init__(self, browser, server, width=1280, height=800):
        self.server = server
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "console",
            lambda m: self.errors.append(m.text) if "Content Security Policy" in m.text or m.type == "error" and "Refused" in m.text else None,
        )

    def open(self, path="/"):
        self.page.goto(self.server.url + path)
        return self.page

    def sign_in(self, token):
        page = self.open()
        page.get_by_label("Bearer token").fill(token)
        page.get_by_role("button", name="Use this token").click()
        return page

    def row(self, name):
        return self.page.locator(f'#keys-body tr[data-key="{name}"]')

    def shot(self, name):
        # The screenshot script's own writer, into its default (git-ignored) directory.
        from screenshots import DEFAULT_OUT, save

        save(self.page, DEFAULT_OUT, name)

    def close(self):
        self.context.close()
        assert not self.errors, f"the page reported errors: {self.errors}"


@pytest.fixture
def console(browser):
    opened = []

    def open_console(server, **size):
        c = Console(browser, server, **size)
        opened.append(c)
        return c

    yield open_console
    for c in opened:
        c.close()
