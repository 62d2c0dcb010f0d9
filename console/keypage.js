// One key's own page (`#/acme/keys/ci-deploy`): everything keyward tells about it, and every
// action on it, so a shared link or a phone reaches all of them.

import { call, keyPath } from "./api.js";
import { $, el, shortTime } from "./dom.js";
import { badge, enabledBadge, expiryText, graceText, isExpired } from "./keyinfo.js";
import { longText as limitText } from "./ratelimit.js";
import { listUrl } from "./router.js";

function fact(term, ...value) {
  return [el("dt", { textContent: term }), el("dd", {}, ...value)];
}

export class KeyPage {
  /** `onAction(action, key)` runs one of the page's buttons. */
  constructor({ onAction }) {
    this.key = null;
    $("key-view-actions").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-action]");
      if (button && this.key) onAction(button.dataset.action, this.key);
    });
  }

  async show(tenant, name, listParams) {
    this.key = null;
    $("back-to-list").href = listUrl(tenant, listParams);
    $("key-view-title").textContent = name;
    $("key-facts").replaceChildren();
    $("key-view-actions").hidden = true;
    $("key-view-error").hidden = true;
    let res;
    try {
      res = await call("GET", keyPath(tenant, name));
    } catch (e) {
      $("key-view-error").textContent = e.status === 404 ? `${tenant} has no key named ${name}.` : e.message;
      $("key-view-error").hidden = false;
      return;
    }
    this.render(res.data);
  }

  render(key) {
    this.key = key;
    const grace = key.graceTokens || [];
    const expires = [expiryText(key)];
    if (isExpired(key)) expires.push(" ", badge("expired", "expired"));
    const rotation = grace.length
      ? [graceText(grace), el("ul", {}, ...grace.map((g) => el("li", { textContent: `until ${shortTime(g.expiresAt)}` })))]
      : ["no old token works"];
    $("key-facts").replaceChildren(
      ...fact("Enabled", enabledBadge(key)),
      ...fact("Token", key.hint || "(no hint: imported or older key)"),
      ...fact("Permissions", key.permissions.length ? key.permissions.join(" ") : "(none)"),
      ...fact("Description", key.description || ""),
      ...fact("Created", [shortTime(key.createdAt), key.createdBy ? ` by ${key.createdBy}` : ""].join("") || "unknown"),
      ...fact("Expires", ...expires),
      ...fact("Rate limit", limitText(key.rateLimit)),
      ...fact("Last used", key.lastUsedAt ? shortTime(key.lastUsedAt) : "never"),
      ...fact("Rotated at", key.rotatedAt ? shortTime(key.rotatedAt) : "never"),
      ...fact("Old tokens", ...rotation),
    );
    $("key-view-end-grace").hidden = grace.length === 0;
    $("key-view-actions").hidden = false;
  }
}
