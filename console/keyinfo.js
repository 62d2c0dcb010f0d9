// A key's state told in words, the same in its row and on its own page: expiry, rotation and
// the old tokens a rotation left working.

import { el, shortTime } from "./dom.js";

export function tokenCount(n) {
  return n === 1 ? "1 old token" : `${n} old tokens`;
}

/** When the last old token stops (keyward sorts them, soonest end first). */
export function lastEnd(grace) {
  return shortTime(grace[grace.length - 1].expiresAt);
}

/** "2 old tokens work until ...". */
export function graceText(grace) {
  return `${tokenCount(grace.length)} ${grace.length === 1 ? "works" : "work"} until ${lastEnd(grace)}`;
}

export function graceNote(grace) {
  return el("div", {
    className: "grace-note",
    textContent: graceText(grace),
    title: grace.map((g) => shortTime(g.expiresAt)).join(", "),
  });
}

export function isExpired(key, now = Date.now()) {
  return Boolean(key.expiresAt) && Date.parse(key.expiresAt) <= now;
}

export function badge(text, className) {
  return el("span", { className: `badge ${className}`, textContent: text });
}

export function enabledBadge(key) {
  return key.enabled ? badge("enabled", "on") : badge("disabled", "off");
}

export function expiryText(key) {
  return key.expiresAt ? shortTime(key.expiresAt) : "never";
}

/** One line naming the key, for the dialogs that act on it: what the If-Match stands for. */
export function summary(key) {
  const parts = [key.enabled ? "enabled" : "disabled", `expires ${expiryText(key)}`];
  if (key.permissions.length) parts.push(`permissions ${key.permissions.join(" ")}`);
  if (key.description) parts.push(`"${key.description}"`);
  if (key.rotatedAt) parts.push(`rotated ${shortTime(key.rotatedAt)}`);
  return parts.join("; ");
}
