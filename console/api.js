// keyward's admin API as the console calls it: the signed-in token on every call, and every
// refusal turned into an ApiError carrying the problem's `detail` and field errors.

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `keyward answered ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  /** `[{field, message}]` for a request keyward refused field by field. */
  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

let token = null;
let onRefused = () => {};

export function setToken(value) {
  token = value;
}

/** Called when keyward refuses the token itself (401): the session is over. */
export function onTokenRefused(handler) {
  onRefused = handler;
}

export function adminPath(tenant, rest = "") {
  return `/api/${encodeURIComponent(tenant)}/admin${rest}`;
}

export function keyPath(tenant, name, rest = "") {
  return adminPath(tenant, `/apiKeys/${encodeURIComponent(name)}${rest}`);
}

/** One call; resolves to `{data, headers}` on 2xx, rejects with an ApiError otherwise. */
export async function call(method, path, { body, ifMatch } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (ifMatch) headers["If-Match"] = ifMatch;
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      // Responses can carry a new key's token: never keep them.
      cache: "no-store",
      credentials: "omit",
    });
  } catch {
    throw new ApiError(0, { detail: "keyward cannot be reached. Check the connection and try again." });
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const error = new ApiError(res.status, data);
    if (res.status === 401) onRefused(error);
    throw error;
  }
  return { data, headers: res.headers };
}

/** The URL of `Link: <...>; rel="next"`, if the response has one. */
export function nextLink(headers) {
  const link = headers.get("Link") || "";
  const match = link.match(/<([^>]+)>\s*;\s*rel="next"/);
  return match ? match[1] : null;
}
