// "Which key is this?": a pasted token goes to keyward's lookup call and nowhere else (no
// URL, no storage), and the box is emptied as soon as keyward has answered.

import { adminPath, call } from "./api.js";
import { $, el, shortTime } from "./dom.js";
import { enabledBadge, isExpired, badge } from "./keyinfo.js";
import { keyUrl } from "./router.js";

function problemText(e, tenant) {
  if (e.status === 404) return `No key of ${tenant} holds this token (it may have been rotated without a grace period, or deleted).`;
  if (e.status === 400) return `This is not a keyward token: ${e.message}`;
  return e.message;
}

function found(tenant, { key, tokenIs }) {
  const grace = key.graceTokens || [];
  const which =
    tokenIs === "grace"
      ? `an old token of this key, kept working after a rotation${grace.length ? ` (the last until ${shortTime(grace[grace.length - 1].expiresAt)})` : ""}`
      : "this key's current token";
  const states = [enabledBadge(key)];
  if (isExpired(key)) states.push(" ", badge("expired", "expired"));
  return el(
    "div",
    { className: "lookup-found" },
    el("p", {}, "It is ", el("a", { href: keyUrl(tenant, key.name), textContent: key.name }), " ", ...states),
    el("p", { className: "token-is", textContent: `It is ${which}.` }),
  );
}

export function wireLookup(currentTenant) {
  $("lookup-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("lookup-token");
    const token = input.value.trim();
    const result = $("lookup-result");
    if (!token) return;
    const tenant = currentTenant();
    result.replaceChildren(el("p", { textContent: "Looking it up..." }));
    try {
      const { data } = await call("POST", adminPath(tenant, "/apiKeys/lookup"), { body: { token } });
      result.replaceChildren(found(tenant, data));
    } catch (err) {
      result.replaceChildren(el("p", { className: "form-error", textContent: problemText(err, tenant) }));
    } finally {
      input.value = "";
    }
  });
}

export function clearLookup() {
  $("lookup-token").value = "";
  $("lookup-result").replaceChildren();
}
