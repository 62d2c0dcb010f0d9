// The console's start: sign in, choose a tenant, then follow the URL's fragment to the view
// it names (router.js): the keys, one key, the file status and history.

import * as api from "./api.js";
import * as router from "./router.js";
import * as session from "./session.js";
import { KeysView } from "./keys.js";
import { showHistory } from "./history.js";
import { clearLookup, wireLookup } from "./lookup.js";
import { fillPicker, picked, showPicked } from "./tenants.js";
import { showToken } from "./tokendialog.js";
import { $ } from "./dom.js";

let config = { devMode: false, tenantClaim: "tenant_id", signIn: null };
let expiryTimer = null;
let signedIn = null;
let tenant = null;
/** The tenant opened when the URL names none: the first this principal may see. */
let defaultTenant = "";

const keys = new KeysView({ notify, showToken });

function notify(message) {
  $("notice").textContent = message;
  $("notice").hidden = !message;
}

// ---- signing in and out ----

/** Accepts a token if it reads as a JWT that has not expired; keyward judges the rest. */
function use(token) {
  const claims = session.claims(token);
  if (!claims) return "This is not a JWT: paste the whole token, three parts separated by dots.";
  if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
    return `This token expired at ${new Date(claims.exp * 1000).toLocaleString()}.`;
  }
  signedIn = { token, claims };
  session.keep(token);
  api.setToken(token);
  clearTimeout(expiryTimer);
  if (typeof claims.exp === "number") {
    const left = Math.min(claims.exp * 1000 - Date.now(), 2 ** 31 - 1);
    expiryTimer = setTimeout(() => signOut("Your sign-in expired. Sign in again."), left);
  }
  return null;
}

function signOut(message) {
  clearTimeout(expiryTimer);
  session.forget();
  api.setToken(null);
  signedIn = null;
  tenant = null;
  defaultTenant = "";
  for (const dialog of document.querySelectorAll("dialog")) dialog.close();
  $("new-token").value = "";
  $("tenant-page").hidden = true;
  $("tenant-form").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  history.replaceState(null, "", location.pathname);
  showSignIn();
  notify(message || "Signed out.");
}

function showSignIn() {
  $("sign-in").hidden = false;
  $("dev-hint").hidden = !config.devMode;
  $("oidc-block").hidden = !config.signIn;
  $("pasted-token").value = "";
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const problem = use($("pasted-token").value.trim());
  $("token-error").textContent = problem || "";
  $("token-error").hidden = !problem;
  if (!problem) {
    $("pasted-token").value = "";
    enter();
  }
});
$("oidc-sign-in").addEventListener("click", () => session.startSignIn(config.signIn));
$("sign-out").addEventListener("click", () => signOut());
api.onTokenRefused((e) => signOut(`keyward refused the token: ${e.message} Sign in again.`));

// ---- choosing a tenant ----

/** The tenants the token names; `["*"]` means any. */
function grantedTenants() {
  const value = signedIn.claims[config.tenantClaim];
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((t) => typeof t === "string") : [];
}

async function enter() {
  notify("");
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("who").textContent = signedIn.claims.sub ? `Signed in as ${signedIn.claims.sub}` : "Signed in";
  const claimed = grantedTenants();
  let offered;
  try {
    offered = await fillPicker(claimed);
  } catch {
    return; // keyward refused the token: signed out already, with its reason.
  }
  defaultTenant = offered.any ? "" : offered.names[0] || "";
  if (!router.parse().tenant && !defaultTenant) {
    if (claimed.length === 0) notify("This token names no tenant: keyward will refuse it.");
    else notify(offered.any ? "Type a tenant's name and choose Open." : "Choose a tenant and Open.");
    (offered.any ? $("tenant") : $("tenant-select")).focus();
    return;
  }
  await route();
}

/** Shows what the URL's fragment names; the tenant's status is read when the tenant changes. */
async function route() {
  if (!signedIn) return;
  const at = router.parse();
  const name = at.tenant || defaultTenant;
  if (!name) return;
  if (!at.tenant) history.replaceState(null, "", router.listUrl(name, at.params));
  if (name !== tenant && !(await openTenant(name))) return;
  selectTab("keys");
  if (at.key) await keys.showKey(name, at.key);
  else await keys.showList(name, at.params);
}

$("tenant-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = picked();
  if (!name) return;
  const target = router.listUrl(name);
  if (location.hash === target) route();
  else location.hash = target;
});

async function openTenant(name) {
  tenant = null;
  showPicked(name);
  notify("");
  clearLookup();
  let status;
  try {
    ({ data: status } = await api.call("GET", api.adminPath(name, "/status")));
  } catch (e) {
    if (e.status === 401) return false;
    $("tenant-page").hidden = true;
    notify(e.message);
    return false;
  }
  tenant = name;
  $("tenant-title").textContent = `Tenant ${name}`;
  showStatus(status);
  $("tenant-page").hidden = false;
  return true;
}

/** The file's health, told in a banner; keyward's `canWrite` decides what may be done here. */
function showStatus(status) {
  const banner = $("file-banner");
  if (!status.valid) {
    const e = status.error || {};
    const where = e.line ? `line ${e.line}${e.column ? `, column ${e.column}` : ""}: ` : "";
    const serving =
      status.keysFrom === "lastGood"
        ? "keyward serves the last valid version it kept."
        : "keyward keeps serving the keys it loaded before the file broke.";
    banner.textContent = `This tenant's security.yml is invalid (${where}${e.message || "unreadable"}). Changes are refused until it is fixed; ${serving}`;
  } else if (status.readOnly) {
    banner.textContent = "This tenant is read-only here: its keys are managed elsewhere (in git, or on another server).";
  }
  banner.hidden = status.valid && !status.readOnly;
  // Write controls exist in the page and in every row drawn later; CSS hides them all.
  document.body.classList.toggle("read-only", status.canWrite !== true);
  $("tab-history").hidden = !status.git;
}

// ---- tabs ----

function selectTab(which) {
  for (const [tab, panel] of [["tab-keys", "keys-panel"], ["tab-lookup", "lookup-panel"], ["tab-history", "history-panel"]]) {
    const selected = tab === `tab-${which}`;
    $(tab).setAttribute("aria-selected", String(selected));
    $(panel).hidden = !selected;
  }
  if (which === "history") showHistory(tenant);
}

$("tab-keys").addEventListener("click", () => selectTab("keys"));
$("tab-lookup").addEventListener("click", () => selectTab("lookup"));
$("tab-history").addEventListener("click", () => selectTab("history"));
wireLookup(() => tenant);

// A link, back or forward changes only the fragment; dev mode's link carries a token.
window.addEventListener("hashchange", () => {
  if (!location.hash.startsWith("#token=")) return route();
  const token = session.fromLink(config.devMode);
  if (!token) return;
  const problem = use(token);
  if (problem) return notify(problem);
  enter();
});

// ---- start ----

async function main() {
  try {
    const res = await fetch("/console/config.json", { cache: "no-store" });
    if (res.ok) config = await res.json();
  } catch {
    // Paste-a-token still works without it.
  }
  let token = session.fromLink(config.devMode);
  try {
    token = token || (await session.finishSignIn(config.signIn));
  } catch (e) {
    showSignIn();
    notify(e.message);
    return;
  }
  token = token || session.stored();
  const problem = token ? use(token) : "no token";
  if (problem) {
    session.forget();
    showSignIn();
    if (token) notify(problem);
    return;
  }
  enter();
}

main();
