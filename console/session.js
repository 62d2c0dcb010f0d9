// Who is signed in: a bearer token kept in this tab only (memory and sessionStorage, never
// a cookie or localStorage), from a pasted token, dev mode's link, or an OpenID Connect
// sign-in (authorization code + PKCE with S256).

const TOKEN = "keyward.token";
const PENDING = "keyward.signIn";

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText() {
  return base64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** A JWT's claims, read without checking the signature (keyward checks it on every call). */
export function claims(token) {
  const parts = (token || "").split(".");
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
    const value = JSON.parse(new TextDecoder().decode(bytes));
    return value && typeof value === "object" ? value : null;
  } catch {
    return null;
  }
}

export function stored() {
  return sessionStorage.getItem(TOKEN);
}

export function keep(token) {
  sessionStorage.setItem(TOKEN, token);
}

export function forget() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(PENDING);
}

/**
 * Dev mode's printed link carries the token after `#token=`. Only a server in dev mode (as
 * its own /console/config.json says, which no link can change) hands out such links: on
 * any other, a `#token=` is someone else's session pushed on this tab, and is dropped.
 */
export function fromLink(devMode) {
  if (!location.hash.startsWith("#token=")) return null;
  const token = decodeURIComponent(location.hash.slice("#token=".length));
  history.replaceState(null, "", location.pathname);
  return devMode === true ? token || null : null;
}

/**
 * What an OAuth 2.0 provider's `?error=` code means (RFC 6749 4.1.2.1, OpenID Connect
 * 3.1.2.6), in the console's own words: the URL's free text (`error_description`) is
 * anyone's text, since anyone can make a link to this page.
 */
const SIGN_IN_ERRORS = {
  access_denied: "the sign-in was cancelled or refused.",
  invalid_request: "the provider found the sign-in request invalid.",
  invalid_scope: "the provider does not grant the scopes the console asks for.",
  unauthorized_client: "the provider does not let the console sign in this way.",
  unsupported_response_type: "the provider does not support the authorization code flow.",
  server_error: "the provider had an internal error.",
  temporarily_unavailable: "the provider is temporarily unavailable.",
  login_required: "you need to sign in at the provider first.",
  interaction_required: "the provider needs you to interact with it.",
  consent_required: "the provider needs your consent.",
  account_selection_required: "the provider needs you to choose an account.",
};

function signInError(code) {
  return `Sign-in failed: ${SIGN_IN_ERRORS[code] || "the provider refused it."} Try again.`;
}

function redirectUri() {
  return `${location.origin}/`;
}

/** Sends the browser to the provider to sign in. */
export async function startSignIn(signIn) {
  const verifier = randomText();
  const state = randomText();
  const nonce = randomText();
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce }));
  const url = new URL(signIn.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: signIn.clientId,
    redirect_uri: redirectUri(),
    scope: signIn.scope,
    state,
    nonce,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

/**
 * Back from the provider (`?code=...&state=...`, or `?error=...`): trades the code for a
 * token. Resolves to null when this page load is not a return from sign-in.
 */
export async function finishSignIn(signIn) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return null;
  history.replaceState(null, "", location.pathname);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  if (params.has("error")) {
    throw new Error(signInError(params.get("error")));
  }
  if (!signIn || !pending || params.get("state") !== pending.state) {
    throw new Error("Sign-in failed: this answer does not belong to a sign-in started here. Try again.");
  }
  let res;
  try {
    res = await fetch(signIn.tokenEndpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: params.get("code"),
        redirect_uri: redirectUri(),
        client_id: signIn.clientId,
        code_verifier: pending.verifier,
      }),
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new Error("Sign-in failed: the identity provider cannot be reached.");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok || !body.access_token) {
    throw new Error(`Sign-in failed: ${body.error_description || body.error || `the provider answered ${res.status}`}`);
  }
  const id = claims(body.id_token);
  if (id && id.nonce !== pending.nonce) {
    throw new Error("Sign-in failed: the provider's answer does not match this sign-in. Try again.");
  }
  return body.access_token;
}
