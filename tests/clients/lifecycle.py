"""A key's whole life through the Python client `openapi-python-client` generates from
keyward's served document: create, page through the list, update with If-Match, rotate,
verify, delete. Any answer that differs from the contract exits non-zero.

Environment: KEYWARD_URL (the server), KEYWARD_TOKEN (a JWT with tenant.apiKey:write),
KEYWARD_TENANT (a tenant without keys). The generated package, `keyward_client`, must be
importable (its directory on PYTHONPATH).
"""

import os
import sys
from urllib.parse import parse_qs, urlsplit

from keyward_client import AuthenticatedClient, Client
from keyward_client.api.admin import (
    create_api_key,
    delete_api_key,
    get_api_key,
    list_api_keys,
    rotate_api_key,
    update_api_key,
)
from keyward_client.api.verify import verify_api_key
from keyward_client.models import (
    ApiKeyView,
    ApiKeyWithToken,
    CreateApiKey,
    ProblemDetails,
    RefusedKey,
    RotatedApiKey,
    UpdateApiKey,
    ValidKey,
    VerifyRequest,
)
from keyward_client.types import UNSET

TENANT = os.environ["KEYWARD_TENANT"]
KEY = "svc-a"
MORE = ["svc-b", "svc-c", "svc-d", "svc-e"]


def expect(condition, what):
    if not condition:
        sys.exit(f"lifecycle.py: {what}")


def expect_problem(response, status, code):
    """An error answer: its status, and a problem+json body with the stable code."""
    expect(response.status_code == status, f"{status} expected, got {response.status_code}")
    problem = response.parsed
    expect(isinstance(problem, ProblemDetails), f"a problem expected, got {problem!r}")
    expect(problem.code == code, f"code {code} expected, got {problem.code}")


def create(admin, name):
    """Creates `name`; answers its token, which only this answer carries."""
    res = create_api_key.sync_detailed(
        TENANT, client=admin, body=CreateApiKey(name=name, permissions=["orders:read"])
    )
    expect(res.status_code == 201, f"create {name}: {res.status_code} {res.content!r}")
    expect(isinstance(res.parsed, ApiKeyWithToken), f"create {name}: {res.parsed!r}")
    expect(res.headers["Location"].endswith(f"/{name}"), "create: Location names the key")
    expect(res.headers.get("ETag"), "create: an ETag")
    # `None` only for a retry another replica applied first (git mode): not this first try.
    expect(isinstance(res.parsed.token, str), f"create {name}: token issued elsewhere")
    return res.parsed.token


def next_cursor(link):
    """The `cursor` of a `Link: <...>; rel="next"` header, or None without one."""
    if link is None:
        return None
    target, _, rel = link.partition(";")
    expect(rel.strip() == 'rel="next"', f"a next link expected: {link}")
    return parse_qs(urlsplit(target.strip().strip("<>")).query)["cursor"][0]


def list_every_name(admin, limit):
    """Every key's name, page by page, following each page's next link to the end."""
    names, pages, cursor = [], 0, None
    while True:
        res = list_api_keys.sync_detailed(
            TENANT, client=admin, limit=limit, cursor=cursor or UNSET
        )
        expect(res.status_code == 200, f"list: {res.status_code} {res.content!r}")
        expect(len(res.parsed) <= limit, f"list: more than {limit} on a page")
        names += [key.name for key in res.parsed]
        pages += 1
        cursor = next_cursor(res.headers.get("Link"))
        if cursor is None:
            return names, pages


def get(admin, name):
    """The key and its ETag."""
    res = get_api_key.sync_detailed(TENANT, name, client=admin)
    expect(res.status_code == 200, f"get: {res.status_code} {res.content!r}")
    expect(isinstance(res.parsed, ApiKeyView), f"get: {res.parsed!r}")
    etag = res.headers.get("ETag")
    expect(etag, "get: an ETag")
    return res.parsed, etag


def update_with_if_match(admin, etag):
    """Updates once with the current ETag, then again with that now stale one: 412."""
    body = UpdateApiKey(enabled=True, description="billing's reader")
    res = update_api_key.sync_detailed(TENANT, KEY, client=admin, body=body, if_match=etag)
    expect(res.status_code == 200, f"update: {res.status_code} {res.content!r}")
    expect(res.parsed.description == "billing's reader", "update: the new description")
    expect(res.headers.get("ETag") not in (None, etag), "update: a new ETag")

    stale = update_api_key.sync_detailed(
        TENANT, KEY, client=admin, body=UpdateApiKey(enabled=False), if_match=etag
    )
    expect_problem(stale, 412, "precondition_failed")
    key, _ = get(admin, KEY)
    expect(key.enabled, "a refused update changed nothing")


def rotate(admin, old_token):
    """Rotates without a body; answers the new token."""
    res = rotate_api_key.sync_detailed(TENANT, KEY, client=admin)
    expect(res.status_code == 200, f"rotate: {res.status_code} {res.content!r}")
    expect(isinstance(res.parsed, RotatedApiKey), f"rotate: {res.parsed!r}")
    expect(isinstance(res.parsed.token, str), "rotate: token issued elsewhere")
    expect(res.parsed.token != old_token, "rotate: a new token")
    return res.parsed.token


def verify(anyone, key):
    res = verify_api_key.sync_detailed(
        TENANT, client=anyone, body=VerifyRequest(key=key, permissions=["orders:read"])
    )
    expect(res.status_code == 200, f"verify: {res.status_code} {res.content!r}")
    return res.parsed


def check_verdicts(anyone, new_token, old_token):
    verdict = verify(anyone, new_token)
    expect(isinstance(verdict, ValidKey) and verdict.valid, f"new token: {verdict!r}")
    expect(verdict.name == KEY, f"verify names the key: {verdict.name}")
    expect(verdict.permissions == ["orders:read"], f"verify: {verdict.permissions}")
    for key in (old_token, "not-a-key-of-this-tenant"):
        verdict = verify(anyone, key)
        expect(isinstance(verdict, RefusedKey), f"refused: {verdict!r}")
        expect(verdict.valid is False and verdict.code == "not_found", f"{verdict!r}")


def main():
    url = os.environ["KEYWARD_URL"]
    admin = AuthenticatedClient(
        base_url=url, token=os.environ["KEYWARD_TOKEN"], raise_on_unexpected_status=True
    )
    # Verification takes no credential: the key checked is the one in the body.
    anyone = Client(base_url=url, raise_on_unexpected_status=True)

    token = create(admin, KEY)
    for name in MORE:
        create(admin, name)
    names, pages = list_every_name(admin, limit=2)
    expect(names == sorted([KEY, *MORE]), f"list: {names}")
    expect(pages == 3, f"list: 5 keys on 3 pages of 2, got {pages}")

    _, etag = get(admin, KEY)
    update_with_if_match(admin, etag)
    new_token = rotate(admin, token)
    check_verdicts(anyone, new_token, token)

    res = delete_api_key.sync_detailed(TENANT, KEY, client=admin)
    expect(res.status_code == 204, f"delete: {res.status_code} {res.content!r}")
    expect_problem(get_api_key.sync_detailed(TENANT, KEY, client=admin), 404, "key_not_found")
    print("lifecycle.py: every step as documented")


if __name__ == "__main__":
    main()
