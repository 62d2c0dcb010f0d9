// The keys page: the table with its filter and pages, and the dialogs that create, edit,
// rotate and delete a key, and end the grace period of the tokens a rotation replaced.

import { ApiError, adminPath, call, keyPath, nextLink } from "./api.js";
import { $, el, shortTime } from "./dom.js";

const PAGE_SIZE = 50;

const COLUMNS = ["Name", "Enabled", "Permissions", "Description", "Expires", "Last used", "Created by", "Actions"];

function cell(text, className = "") {
  return el("td", { className, textContent: text });
}

function badge(text, className) {
  return el("span", { className: `badge ${className}`, textContent: text });
}

/** A row's button: its `data-action` names what the table's one listener does (ROW_ACTIONS). */
function actionButton(action, label, name) {
  return el("button", {
    type: "button",
    className: "link",
    textContent: label,
    dataset: { action },
    attrs: { "aria-label": name },
  });
}

/** What each row button opens, given the view and the key its row shows. */
const ROW_ACTIONS = {
  edit: (view, key) => view.openEdit(key.name),
  rotate: (view, key) => view.openRotate(key.name),
  delete: (view, key) => view.openDelete(key.name),
  "end-grace": (view, key) => view.openEndGrace(key.name, key.graceTokens),
};

/** `datetime-local` wants local time without a zone. */
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function fromLocalInput(value) {
  return value ? new Date(value).toISOString().replace(/\.\d{3}Z$/, "Z") : null;
}

function splitPermissions(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

function tokenCount(n) {
  return n === 1 ? "1 old token" : `${n} old tokens`;
}

/** How many replaced tokens still work, and until when (keyward sorts them, soonest end first). */
function graceNote(grace) {
  const last = grace[grace.length - 1].expiresAt;
  return el("div", {
    className: "grace-note",
    textContent: `${tokenCount(grace.length)} ${grace.length === 1 ? "works" : "work"} until ${shortTime(last)}`,
    title: grace.map((g) => shortTime(g.expiresAt)).join(", "),
  });
}

/** Which input a field error from keyward belongs to. */
const FIELD_INPUTS = {
  name: "key-name",
  permissions: "key-permissions",
  description: "key-description",
  expiresAt: "key-expires",
};

export class KeysView {
  /** `notify(message)` reports success; `showToken(name, token)` shows a new token once. */
  constructor({ notify, showToken }) {
    this.notify = notify;
    this.showToken = showToken;
    this.tenant = null;
    /** The keys the table shows now, by name: what a row's buttons act on. */
    this.shown = new Map();
    this.pages = [];
    this.next = null;
    this.editing = null;
    this.target = null;
    this.wire();
  }

  wire() {
    $("filter-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.pages = [];
      this.load(this.firstPage());
    });
    $("next-page").addEventListener("click", () => this.next && this.load(this.next));
    $("prev-page").addEventListener("click", () => {
      if (this.pages.length < 2) return;
      this.pages.pop();
      this.load(this.pages.pop());
    });
    $("new-key").addEventListener("click", () => this.openCreate());
    // One listener for every row, drawn now or later: a button says what it does in
    // `data-action`, its row which key in `data-key`.
    $("keys-body").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-action]");
      const key = this.shown.get(button?.closest("tr[data-key]")?.dataset.key);
      if (key) ROW_ACTIONS[button.dataset.action]?.(this, key);
    });
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submitKey();
    });
    $("key-reload").addEventListener("click", () => this.openEdit(this.editing.name));
    $("rotate-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submitRotate();
    });
    $("delete-confirm").addEventListener("input", () => {
      $("delete-submit").disabled = $("delete-confirm").value !== this.target;
    });
    $("delete-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submitDelete();
    });
    $("grace-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submitEndGrace();
    });
    for (const dialog of document.querySelectorAll("dialog")) {
      for (const cancel of dialog.querySelectorAll("button.cancel")) {
        cancel.addEventListener("click", () => dialog.close());
      }
    }
  }

  open(tenant) {
    this.tenant = tenant;
    this.pages = [];
    for (const id of ["filter-q", "filter-enabled", "filter-expired"]) $(id).value = "";
    return this.load(this.firstPage());
  }

  firstPage() {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    const q = $("filter-q").value.trim();
    if (q) query.set("q", q);
    if ($("filter-enabled").value) query.set("enabled", $("filter-enabled").value);
    if ($("filter-expired").value) query.set("expired", $("filter-expired").value);
    return `${adminPath(this.tenant, "/apiKeys")}?${query}`;
  }

  async load(url) {
    const body = $("keys-body");
    body.setAttribute("aria-busy", "true");
    try {
      const { data, headers } = await call("GET", url);
      this.pages.push(url);
      this.next = nextLink(headers);
      this.render(data || []);
    } catch (e) {
      this.renderMessage(e.message);
    } finally {
      body.removeAttribute("aria-busy");
    }
  }

  reload() {
    const current = this.pages.pop() || this.firstPage();
    return this.load(current);
  }

  renderMessage(text) {
    this.shown = new Map();
    $("keys-body").replaceChildren(el("tr", {}, el("td", { className: "empty", textContent: text, colSpan: 8 })));
    $("page-label").textContent = "";
    $("prev-page").disabled = true;
    $("next-page").disabled = true;
  }

  render(keys) {
    if (keys.length === 0) {
      this.renderMessage("No keys match.");
      $("prev-page").disabled = this.pages.length < 2;
      $("page-label").textContent = `Page ${this.pages.length}`;
      return;
    }
    const now = Date.now();
    this.shown = new Map(keys.map((key) => [key.name, key]));
    const rows = keys.map((key) => {
      const row = el("tr", { dataset: { key: key.name } });
      const enabled = cell("");
      enabled.append(key.enabled ? badge("enabled", "on") : badge("disabled", "off"));
      const perms = cell("", "perm");
      perms.textContent = key.permissions.length ? key.permissions.join(" ") : "(none)";
      const expires = cell(key.expiresAt ? shortTime(key.expiresAt) : "never");
      if (key.expiresAt && Date.parse(key.expiresAt) <= now) {
        expires.append(" ", badge("expired", "expired"));
      }
      const grace = key.graceTokens || [];
      if (grace.length) expires.append(graceNote(grace));
      const actions = cell("", "actions-cell write");
      actions.append(
        actionButton("edit", "Edit", `Edit ${key.name}`),
        actionButton("rotate", "Rotate", `Rotate ${key.name}`),
        actionButton("delete", "Delete", `Delete ${key.name}`),
      );
      if (grace.length) actions.append(actionButton("end-grace", "End grace", `End grace of ${key.name}`));
      row.append(
        cell(key.name, "name"),
        enabled,
        perms,
        cell(key.description || "", "description"),
        expires,
        cell(key.lastUsedAt ? shortTime(key.lastUsedAt) : "never"),
        cell(key.createdBy || ""),
        actions,
      );
      // On narrow screens each row is a card, and each value says what it is.
      row.querySelectorAll("td").forEach((td, i) => (td.dataset.label = COLUMNS[i]));
      return row;
    });
    $("keys-body").replaceChildren(...rows);
    $("page-label").textContent = `Page ${this.pages.length}`;
    $("prev-page").disabled = this.pages.length < 2;
    $("next-page").disabled = !this.next;
  }

  // ---- create and edit share one dialog ----

  resetKeyForm() {
    $("key-form").reset();
    this.clearErrors();
  }

  clearErrors() {
    $("key-form-error").hidden = true;
    $("key-reload").hidden = true;
    for (const id of Object.values(FIELD_INPUTS)) {
      $(id).removeAttribute("aria-invalid");
      $(`${id}-error`).textContent = "";
    }
  }

  openCreate() {
    this.editing = null;
    this.resetKeyForm();
    $("key-dialog-title").textContent = "New key";
    $("key-submit").textContent = "Create";
    $("key-name").readOnly = false;
    $("key-enabled").checked = true;
    $("key-dialog").showModal();
    $("key-name").focus();
  }

  async openEdit(name) {
    let res;
    try {
      res = await call("GET", keyPath(this.tenant, name));
    } catch (e) {
      if (!$("key-dialog").open) return this.notify(e.message);
      return this.formError(e.message);
    }
    const key = res.data;
    this.editing = { name, etag: res.headers.get("ETag"), key };
    this.resetKeyForm();
    $("key-dialog-title").textContent = `Edit ${name}`;
    $("key-submit").textContent = "Save";
    $("key-name").value = name;
    $("key-name").readOnly = true;
    $("key-enabled").checked = key.enabled;
    $("key-permissions").value = key.permissions.join(" ");
    $("key-description").value = key.description || "";
    $("key-expires").value = toLocalInput(key.expiresAt);
    if (!$("key-dialog").open) $("key-dialog").showModal();
    $("key-enabled").focus();
  }

  formError(message) {
    $("key-form-error").textContent = message;
    $("key-form-error").hidden = false;
  }

  showFieldErrors(error) {
    let shown = false;
    for (const { field, message } of error.fieldErrors) {
      const id = FIELD_INPUTS[field.replace(/\[\d+\]$/, "")];
      if (!id) continue;
      $(id).setAttribute("aria-invalid", "true");
      $(`${id}-error`).textContent = message;
      shown = true;
    }
    this.formError(shown ? "Check the fields marked below." : error.message);
  }

  async submitKey() {
    this.clearErrors();
    const form = {
      enabled: $("key-enabled").checked,
      permissions: splitPermissions($("key-permissions").value),
      // As typed: an edit sends it back only when it differs from what the key holds.
      description: $("key-description").value,
      expires: $("key-expires").value,
    };
    try {
      if (this.editing) {
        await this.saveEdit(form);
      } else {
        await this.create(form);
      }
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (e.status === 412) {
        this.formError("Someone changed this key since you opened it. Reload it to see their change, then make yours again.");
        $("key-reload").hidden = false;
        $("key-reload").focus();
      } else {
        this.showFieldErrors(e);
      }
    }
  }

  async create(form) {
    const name = $("key-name").value.trim();
    const body = { name, enabled: form.enabled, permissions: form.permissions };
    const description = form.description.trim();
    if (description) body.description = description;
    if (form.expires) body.expiresAt = fromLocalInput(form.expires);
    const { data } = await call("POST", adminPath(this.tenant, "/apiKeys"), { body });
    $("key-dialog").close();
    this.showToken(name, data.token);
    await this.reload();
  }

  /**
   * Sends only what changed (PUT leaves an absent field as it is), so an untouched field is
   * never rewritten: not a past expiry, not a description's line breaks or spaces.
   */
  async saveEdit(form) {
    const { key, etag, name } = this.editing;
    const body = { enabled: form.enabled };
    if (form.permissions.join(" ") !== key.permissions.join(" ")) body.permissions = form.permissions;
    if (form.description !== (key.description || "")) body.description = form.description || null;
    if (form.expires !== toLocalInput(key.expiresAt)) body.expiresAt = fromLocalInput(form.expires);
    await call("PUT", keyPath(this.tenant, name), { body, ifMatch: etag });
    $("key-dialog").close();
    this.notify(`Saved ${name}.`);
    await this.reload();
  }

  // ---- rotate and delete ----

  openTarget(dialogId, name) {
    this.target = name;
    const dialog = $(dialogId);
    for (const span of dialog.querySelectorAll(".target-name")) span.textContent = name;
    dialog.querySelector(".form-error").hidden = true;
    dialog.showModal();
  }

  openRotate(name) {
    this.openTarget("rotate-dialog", name);
    $("grace").focus();
  }

  async submitRotate() {
    const name = this.target;
    try {
      const { data } = await call("POST", keyPath(this.tenant, name, "/rotate"), {
        body: { gracePeriodSeconds: Number($("grace").value) },
      });
      $("rotate-dialog").close();
      this.showToken(name, data.token);
      await this.reload();
    } catch (e) {
      $("rotate-error").textContent = e.message;
      $("rotate-error").hidden = false;
    }
  }

  openDelete(name) {
    $("delete-confirm").value = "";
    $("delete-submit").disabled = true;
    this.openTarget("delete-dialog", name);
    $("delete-confirm").focus();
  }

  openEndGrace(name, grace) {
    const last = grace[grace.length - 1].expiresAt;
    $("grace-summary").textContent =
      `${tokenCount(grace.length)} of ${name} still ${grace.length === 1 ? "works" : "work"}, ` +
      `the last until ${shortTime(last)}. The current token keeps working.`;
    this.openTarget("grace-dialog", name);
    $("grace-dialog").querySelector("button.danger").focus();
  }

  async submitEndGrace() {
    const name = this.target;
    try {
      await call("DELETE", keyPath(this.tenant, name, "/graceTokens"));
      $("grace-dialog").close();
      this.notify(`The old tokens of ${name} no longer work.`);
      await this.reload();
    } catch (e) {
      $("grace-error").textContent = e.message;
      $("grace-error").hidden = false;
    }
  }

  async submitDelete() {
    const name = this.target;
    if ($("delete-confirm").value !== name) return;
    try {
      await call("DELETE", keyPath(this.tenant, name));
      $("delete-dialog").close();
      this.notify(`Deleted ${name}.`);
      await this.reload();
    } catch (e) {
      $("delete-error").textContent = e.message;
      $("delete-error").hidden = false;
    }
  }
}
