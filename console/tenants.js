// Which tenants the tenant picker offers: those keyward says this principal may see
// (`GET /api/tenants`), so a `*` administrator picks from a list rather than guessing names.

import { call } from "./api.js";
import { $, el } from "./dom.js";

/** The tenants keyward lists, or null when it cannot say (then the token's claim decides). */
async function listed() {
  try {
    const { data } = await call("GET", "/api/tenants");
    return Array.isArray(data) ? data.map((t) => t && t.id).filter((id) => typeof id === "string") : null;
  } catch (e) {
    if (e.status === 401) throw e;
    return null;
  }
}

/**
 * Fills the picker; resolves to `{names, any}`: the tenants offered, and whether a name
 * must be typed (a `*` token on a server that lists none).
 */
export async function fillPicker(claimed) {
  const fromServer = await listed();
  const names = fromServer ?? claimed.filter((t) => t !== "*");
  const any = fromServer === null && claimed.includes("*");
  const select = $("tenant-select");
  select.replaceChildren(...names.map((t) => el("option", { value: t, textContent: t })));
  select.hidden = any || names.length < 2;
  $("tenant").hidden = !select.hidden;
  $("tenant-form").querySelector("label").htmlFor = select.hidden ? "tenant" : "tenant-select";
  $("tenant-form").hidden = false;
  return { names, any };
}

/** The tenant the picker names now. */
export function picked() {
  return ($("tenant-select").hidden ? $("tenant").value : $("tenant-select").value).trim();
}

export function showPicked(name) {
  $("tenant").value = name;
  if ([...$("tenant-select").options].some((o) => o.value === name)) $("tenant-select").value = name;
}
