// The keys list: search as you type, filters, sortable columns, the count and the pages.
// Its filters and sort live in the URL (`#/acme?q=...&sort=-createdAt`), so a reload or a
// shared link shows the same list.

import { adminPath, call, nextLink } from "./api.js";
import { $, el, shortTime } from "./dom.js";
import { badge, enabledBadge, expiryText, graceNote, isExpired } from "./keyinfo.js";
import { shortText as limitText } from "./ratelimit.js";
import { keyUrl, listUrl } from "./router.js";

const PAGE_SIZE = 50;
const TYPING_PAUSE_MS = 250;
const FILTERS = { q: "filter-q", enabled: "filter-enabled", expired: "filter-expired", sort: "filter-sort" };
const COLUMNS = ["Name", "Token", "Enabled", "Permissions", "Description", "Created", "Expires", "Last used", "Actions"];

function cell(className, ...children) {
  return el("td", { className }, ...children);
}

function line(text, className = "") {
  return el("div", { className, textContent: text });
}

/** A row's button: `data-action` names what it does, its row's `data-key` on which key. */
function actionButton(action, label, ariaLabel) {
  return el("button", { type: "button", className: "link", textContent: label, dataset: { action }, attrs: { "aria-label": ariaLabel } });
}

export class KeyList {
  /** `onAction(action, key)` runs a row's button; `onCreate()` opens the create dialog. */
  constructor({ onAction, onCreate }) {
    this.onAction = onAction;
    this.tenant = null;
    this.shown = new Map();
    this.pages = [];
    this.next = null;
    this.request = 0;
    this.typing = null;
    this.wire(onCreate);
  }

  wire(onCreate) {
    $("filter-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.apply();
    });
    $("filter-q").addEventListener("input", () => {
      clearTimeout(this.typing);
      this.typing = setTimeout(() => this.apply(), TYPING_PAUSE_MS);
    });
    for (const id of ["filter-enabled", "filter-expired", "filter-sort"]) {
      $(id).addEventListener("change", () => this.apply());
    }
    $("filters-toggle").addEventListener("click", () => {
      const open = $("filter-form").classList.toggle("open");
      $("filters-toggle").setAttribute("aria-expanded", String(open));
    });
    for (const th of document.querySelectorAll("#keys-table th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => this.sortBy(th.dataset.sort));
    }
    $("clear-filters").addEventListener("click", () => {
      for (const id of ["filter-q", "filter-enabled", "filter-expired"]) $(id).value = "";
      this.apply();
    });
    $("new-key").addEventListener("click", onCreate);
    $("empty-create").addEventListener("click", onCreate);
    $("next-page").addEventListener("click", () => this.next && this.load(this.next));
    $("prev-page").addEventListener("click", () => {
      if (this.pages.length < 2) return;
      this.pages.pop();
      this.load(this.pages.pop());
    });
    $("keys-body").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-action]");
      const key = this.shown.get(button?.closest("tr[data-key]")?.dataset.key);
      if (key) this.onAction(button.dataset.action, key);
    });
  }

  /** Shows `tenant`'s keys as `params` (from the URL) filter and sort them. */
  show(tenant, params) {
    this.tenant = tenant;
    for (const [name, id] of Object.entries(FILTERS)) $(id).value = params.get(name) || "";
    this.pages = [];
    return this.load(this.firstPage());
  }

  params() {
    const params = new URLSearchParams();
    for (const [name, id] of Object.entries(FILTERS)) {
      const value = $(id).value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  filtered() {
    const p = this.params();
    return p.has("q") || p.has("enabled") || p.has("expired");
  }

  /** The filters as they are now: into the URL (replacing, not adding, a history entry), then the first page. */
  apply() {
    clearTimeout(this.typing);
    history.replaceState(null, "", listUrl(this.tenant, this.params()));
    this.pages = [];
    return this.load(this.firstPage());
  }

  /** A column header's click: ascending first, then the other way. The sort select (shown on
   * phones) holds the order, every one of the eight as an option. */
  sortBy(field) {
    const current = $("filter-sort").value || "name";
    $("filter-sort").value = current === field ? `-${field}` : field;
    if ($("filter-sort").value === "name") $("filter-sort").value = "";
    this.apply();
  }

  firstPage() {
    const query = this.params();
    query.set("limit", String(PAGE_SIZE));
    return `${adminPath(this.tenant, "/apiKeys")}?${query}`;
  }

  reload() {
    return this.load(this.pages.pop() || this.firstPage());
  }

  async load(url) {
    // Typing fires many loads: only the newest one's answer is drawn.
    const request = ++this.request;
    $("keys-body").setAttribute("aria-busy", "true");
    try {
      const { data, headers } = await call("GET", url);
      if (request !== this.request) return;
      this.pages.push(url);
      this.next = nextLink(headers);
      this.render(data || [], headers.get("X-Total-Count"));
    } catch (e) {
      if (request === this.request) this.renderEmpty(e.message, false);
    } finally {
      if (request === this.request) $("keys-body").removeAttribute("aria-busy");
    }
  }

  showSort() {
    const sort = $("filter-sort").value || "name";
    const field = sort.replace(/^-/, "");
    for (const th of document.querySelectorAll("#keys-table th[data-sort]")) {
      if (th.dataset.sort === field) th.setAttribute("aria-sort", sort.startsWith("-") ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    }
  }

  showCount(total) {
    const n = total === null ? null : Number(total);
    $("key-count").textContent = n === null || Number.isNaN(n) ? "" : `${n} ${n === 1 ? "key" : "keys"}`;
  }

  /** No rows: an error, an empty tenant (offer to create one) or a filter that matches none. */
  renderEmpty(text, offer) {
    this.shown = new Map();
    $("keys-body").replaceChildren();
    $("keys-wrap").hidden = true;
    $("keys-empty").hidden = false;
    $("keys-empty-text").textContent = text;
    $("empty-create").hidden = offer !== "create";
    $("clear-filters").hidden = offer !== "clear";
    $("page-label").textContent = "";
    $("prev-page").disabled = this.pages.length < 2;
    $("next-page").disabled = true;
  }

  render(keys, total) {
    this.showSort();
    this.showCount(total);
    if (keys.length === 0) {
      if (this.filtered()) return this.renderEmpty("No keys match.", "clear");
      if (this.pages.length > 1) return this.renderEmpty("No more keys.", false);
      return this.renderEmpty("This tenant has no keys yet.", "create");
    }
    $("keys-empty").hidden = true;
    $("keys-wrap").hidden = false;
    this.shown = new Map(keys.map((key) => [key.name, key]));
    $("keys-body").replaceChildren(...keys.map((key) => this.row(key)));
    $("page-label").textContent = `Page ${this.pages.length}`;
    $("prev-page").disabled = this.pages.length < 2;
    $("next-page").disabled = !this.next;
  }

  /** Enabled or not, and the rate limit under it when the key has one. */
  enabledCell(key) {
    const enabled = cell("enabled", enabledBadge(key));
    if (key.rateLimit) {
      const limit = line(limitText(key.rateLimit), "rate-limit muted");
      limit.title = `Rate limit: ${limitText(key.rateLimit)}`;
      enabled.append(limit);
    }
    return enabled;
  }

  row(key) {
    const grace = key.graceTokens || [];
    const name = cell("name", el("a", { href: keyUrl(this.tenant, key.name), textContent: key.name }));
    const token = cell("token");
    if (key.hint) token.append(line(key.hint, "hint"));
    if (key.rotatedAt) token.append(line(`rotated ${shortTime(key.rotatedAt)}`, "rotated"));
    if (grace.length) token.append(graceNote(grace));
    const expires = cell("expires", expiryText(key));
    if (isExpired(key)) expires.append(" ", badge("expired", "expired"));
    const actions = cell("actions-cell write");
    actions.append(
      actionButton("edit", "Edit", `Edit ${key.name}`),
      actionButton("rotate", "Rotate", `Rotate ${key.name}`),
      actionButton("delete", "Delete", `Delete ${key.name}`),
    );
    if (grace.length) actions.append(actionButton("end-grace", "End grace now", `End grace now for ${key.name}`));
    const created = cell("created", shortTime(key.createdAt));
    if (key.createdBy) created.append(line(`by ${key.createdBy}`, "muted"));
    const row = el(
      "tr",
      { dataset: { key: key.name } },
      name,
      token,
      this.enabledCell(key),
      cell("perm", key.permissions.length ? key.permissions.join(" ") : "(none)"),
      cell("description", key.description || ""),
      created,
      expires,
      cell("last-used", key.lastUsedAt ? shortTime(key.lastUsedAt) : "never"),
      actions,
    );
    row.querySelectorAll("td").forEach((td, i) => (td.dataset.label = COLUMNS[i]));
    return row;
  }
}
