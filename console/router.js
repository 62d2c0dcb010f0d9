// The console's addresses, all in the URL's fragment so the server only ever serves `/`:
// `#/acme` (the keys, `?q=&enabled=&expired=&sort=` when filtered or sorted) and
// `#/acme/keys/ci-deploy` (one key's page). A fragment never leaves the browser.

/** The parts of a fragment; a malformed escape reads as no tenant rather than an error. */
export function parse(hash = location.hash) {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  let parts;
  try {
    parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = [];
  }
  return {
    tenant: parts[0] || "",
    key: parts[1] === "keys" ? parts[2] || "" : "",
    params: new URLSearchParams(query),
  };
}

/** The keys of `tenant`, with the filters and sort in `params` that are set. */
export function listUrl(tenant, params = new URLSearchParams()) {
  const kept = new URLSearchParams([...params].filter(([, value]) => value));
  const query = kept.toString();
  return `#/${encodeURIComponent(tenant)}${query ? `?${query}` : ""}`;
}

/** The page of one key. */
export function keyUrl(tenant, name) {
  return `#/${encodeURIComponent(tenant)}/keys/${encodeURIComponent(name)}`;
}
