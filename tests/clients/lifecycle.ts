/**
 * A key's whole life through `openapi-fetch` typed by the `schema.d.ts` that
 * `openapi-typescript` generates from keyward's served document: create, page through the
 * list, update with If-Match, rotate, verify, delete. It type-checks under `tsc --strict`
 * (a document change that breaks a client breaks the build), and any answer that differs
 * from the contract exits non-zero.
 *
 * Environment: KEYWARD_URL (the server), KEYWARD_TOKEN (a JWT with tenant.apiKey:write),
 * KEYWARD_TENANT (a tenant without keys). `./schema.js` is the generated `schema.d.ts`.
 */
import createClient from "openapi-fetch";
import type { paths } from "./schema.js";

const tenantId = env("KEYWARD_TENANT");
const keyName = "svc-a";
const more = ["svc-b", "svc-c", "svc-d", "svc-e"];

const baseUrl = env("KEYWARD_URL");
const admin = createClient<paths>({
  baseUrl,
  headers: { Authorization: `Bearer ${env("KEYWARD_TOKEN")}` },
});
// Verification takes no credential: the key checked is the one in the body.
const anyone = createClient<paths>({ baseUrl });

function env(name: string): string {
  const value = process.env[name];
  if (!value) fail(`${name} is not set`);
  return value;
}

function fail(what: string): never {
  console.error(`lifecycle.ts: ${what}`);
  process.exit(1);
}

function expect(condition: unknown, what: string): asserts condition {
  if (!condition) fail(what);
}

const key = { params: { path: { tenantId, keyName } } };

/** Creates `name`; answers its token, which only this answer carries. */
async function create(name: string): Promise<string> {
  const { data, response } = await admin.POST("/api/{tenantId}/admin/apiKeys", {
    params: { path: { tenantId } },
    body: { name, permissions: ["orders:read"] },
  });
  expect(response.status === 201 && data, `create ${name}: ${response.status}`);
  expect(response.headers.get("Location")?.endsWith(`/${name}`), "create: Location");
  expect(response.headers.get("ETag"), "create: an ETag");
  // `code` (and no token) only for a retry another replica applied first (git mode): not
  // this first try.
  expect(!("code" in data), `create ${name}: token issued elsewhere`);
  return data.token;
}

/** The `cursor` of a `Link: <...>; rel="next"` header, or undefined without one. */
function nextCursor(link: string | null): string | undefined {
  if (link === null) return undefined;
  const [target, rel] = link.split(";").map((part) => part.trim());
  expect(rel === 'rel="next"', `a next link expected: ${link}`);
  const cursor = new URL(target.replace(/^<|>$/g, ""), baseUrl).searchParams.get("cursor");
  expect(cursor, `a cursor in ${link}`);
  return cursor;
}

/** Every key's name, page by page, following each page's next link to the end. */
async function listEveryName(limit: number): Promise<{ names: string[]; pages: number }> {
  const names: string[] = [];
  let pages = 0;
  let cursor: string | undefined;
  do {
    const { data, response } = await admin.GET("/api/{tenantId}/admin/apiKeys", {
      params: { path: { tenantId }, query: { limit, cursor } },
    });
    expect(response.status === 200 && data, `list: ${response.status}`);
    expect(data.length <= limit, `list: more than ${limit} on a page`);
    names.push(...data.map((k) => k.name));
    pages += 1;
    cursor = nextCursor(response.headers.get("Link"));
  } while (cursor !== undefined);
  return { names, pages };
}

/** The key's ETag, read from a GET. */
async function etagOf(): Promise<string> {
  const { data, response } = await admin.GET("/api/{tenantId}/admin/apiKeys/{keyName}", key);
  expect(response.status === 200 && data, `get: ${response.status}`);
  const etag = response.headers.get("ETag");
  expect(etag, "get: an ETag");
  return etag;
}

/** Updates once with the current ETag, then again with that now stale one: 412. */
async function updateWithIfMatch(etag: string): Promise<void> {
  const path = "/api/{tenantId}/admin/apiKeys/{keyName}" as const;
  const header = { "If-Match": etag };
  const first = await admin.PUT(path, {
    params: { ...key.params, header },
    body: { enabled: true, description: "billing's reader" },
  });
  expect(first.response.status === 200 && first.data, `update: ${first.response.status}`);
  expect(first.data.description === "billing's reader", "update: the new description");
  expect(first.response.headers.get("ETag") !== etag, "update: a new ETag");

  const stale = await admin.PUT(path, {
    params: { ...key.params, header },
    body: { enabled: false },
  });
  expect(stale.response.status === 412, `stale update: ${stale.response.status}`);
  expect(stale.error?.code === "precondition_failed", `stale: ${stale.error?.code}`);
  const after = await admin.GET(path, key);
  expect(after.data?.enabled === true, "a refused update changed nothing");
}

/** Rotates without a body; answers the new token. */
async function rotate(oldToken: string): Promise<string> {
  const { data, response } = await admin.POST(
    "/api/{tenantId}/admin/apiKeys/{keyName}/rotate",
    key,
  );
  expect(response.status === 200 && data, `rotate: ${response.status}`);
  expect(!("code" in data), "rotate: token issued elsewhere");
  expect(data.token !== oldToken, "rotate: a new token");
  return data.token;
}

async function verify(presented: string) {
  const { data, response } = await anyone.POST("/api/{tenantId}/apiKeys/verify", {
    params: { path: { tenantId } },
    body: { key: presented, permissions: ["orders:read"] },
  });
  expect(response.status === 200 && data, `verify: ${response.status}`);
  return data;
}

async function checkVerdicts(newToken: string, oldToken: string): Promise<void> {
  const verdict = await verify(newToken);
  // `valid` tells the two answers apart: only a valid one has a name.
  if (verdict.valid) {
    expect(verdict.name === keyName, `verify names the key: ${verdict.name}`);
    expect(verdict.permissions.join() === "orders:read", `verify: ${verdict.permissions}`);
  } else {
    fail(`the new token is refused: ${verdict.code}`);
  }
  for (const presented of [oldToken, "not-a-key-of-this-tenant"]) {
    const refused = await verify(presented);
    if (refused.valid) fail(`accepted: ${refused.name}`);
    expect(refused.code === "not_found", `refused: ${refused.code}`);
  }
}

const token = await create(keyName);
for (const name of more) await create(name);
const { names, pages } = await listEveryName(2);
expect(names.join() === [keyName, ...more].sort().join(), `list: ${names}`);
expect(pages === 3, `list: 5 keys on 3 pages of 2, got ${pages}`);

await updateWithIfMatch(await etagOf());
const newToken = await rotate(token);
await checkVerdicts(newToken, token);

const deleted = await admin.DELETE("/api/{tenantId}/admin/apiKeys/{keyName}", key);
expect(deleted.response.status === 204, `delete: ${deleted.response.status}`);
const gone = await admin.GET("/api/{tenantId}/admin/apiKeys/{keyName}", key);
expect(gone.response.status === 404, `get after delete: ${gone.response.status}`);
expect(gone.error?.code === "key_not_found", `gone: ${gone.error?.code}`);
console.log("lifecycle.ts: every step as documented");
