// The create and edit dialog: field errors beside their fields, suggestions drawn from the
// permissions the tenant's keys already use, and expiry presets beside the custom date.

import { ApiError, adminPath, call, keyPath } from "./api.js";
import { $, el } from "./dom.js";
import * as rateLimit from "./ratelimit.js";

const DAY_MS = 24 * 60 * 60 * 1000;

/** Which input a field error from keyward belongs to. */
const FIELD_INPUTS = {
  name: "key-name",
  permissions: "key-permissions",
  description: "key-description",
  expiresAt: "key-expires",
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

export class KeyForm {
  /** `done(message, token?, name)` runs after a save: a notice, or a new key's token to show once. */
  constructor({ done }) {
    this.done = done;
    this.tenant = null;
    this.editing = null;
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.submit();
    });
    $("key-reload").addEventListener("click", () => this.openEdit(this.editing.name));
    $("permission-suggestions").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-permission]");
      if (button) this.togglePermission(button.dataset.permission);
    });
    $("key-permissions").addEventListener("input", () => this.markSuggestions());
    for (const preset of document.querySelectorAll("#key-form button[data-days]")) {
      preset.addEventListener("click", () => {
        const days = preset.dataset.days;
        $("key-expires").value = days ? toLocalInput(new Date(Date.now() + Number(days) * DAY_MS).toISOString()) : "";
      });
    }
  }

  clearErrors() {
    $("key-form-error").hidden = true;
    $("key-reload").hidden = true;
    for (const id of [...Object.values(FIELD_INPUTS), ...rateLimit.INPUTS]) {
      $(id).removeAttribute("aria-invalid");
      $(`${id}-error`).textContent = "";
    }
  }

  reset(title, submit) {
    $("key-form").reset();
    this.clearErrors();
    $("key-dialog-title").textContent = title;
    $("key-submit").textContent = submit;
  }

  openCreate(tenant) {
    this.tenant = tenant;
    this.editing = null;
    this.reset("New key", "Create");
    $("key-name").readOnly = false;
    $("key-enabled").checked = true;
    $("key-dialog").showModal();
    $("key-name").focus();
    this.suggest();
  }

  async openEdit(name, tenant = this.tenant) {
    this.tenant = tenant;
    let res;
    try {
      res = await call("GET", keyPath(tenant, name));
    } catch (e) {
      if (!$("key-dialog").open) return this.done(e.message);
      return this.formError(e.message);
    }
    const key = res.data;
    this.editing = { name, etag: res.headers.get("ETag"), key };
    this.reset(`Edit ${name}`, "Save");
    $("key-name").value = name;
    $("key-name").readOnly = true;
    $("key-enabled").checked = key.enabled;
    $("key-permissions").value = key.permissions.join(" ");
    $("key-description").value = key.description || "";
    $("key-expires").value = toLocalInput(key.expiresAt);
    rateLimit.fill(key.rateLimit);
    if (!$("key-dialog").open) $("key-dialog").showModal();
    $("key-enabled").focus();
    this.suggest();
  }

  /** Every permission the tenant's keys use, as buttons that add or remove one. */
  async suggest() {
    const box = $("permission-suggestions");
    let keys;
    try {
      ({ data: keys } = await call("GET", adminPath(this.tenant, "/apiKeys")));
    } catch {
      box.hidden = true;
      return;
    }
    const used = [...new Set((keys || []).flatMap((k) => k.permissions))].sort();
    box.replaceChildren(
      el("span", { className: "muted", textContent: "Used here:" }),
      ...used.map((p) => el("button", { type: "button", textContent: p, dataset: { permission: p } })),
    );
    box.hidden = used.length === 0;
    this.markSuggestions();
  }

  togglePermission(permission) {
    const current = splitPermissions($("key-permissions").value);
    const next = current.includes(permission) ? current.filter((p) => p !== permission) : [...current, permission];
    $("key-permissions").value = next.join(" ");
    this.markSuggestions();
  }

  markSuggestions() {
    const current = splitPermissions($("key-permissions").value);
    for (const button of $("permission-suggestions").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(current.includes(button.dataset.permission)));
    }
  }

  formError(message) {
    $("key-form-error").textContent = message;
    $("key-form-error").hidden = false;
  }

  /** Marks `ids` invalid and puts `message` beside the first of them. */
  fieldError(ids, message) {
    for (const id of ids) $(id).setAttribute("aria-invalid", "true");
    $(`${ids[0]}-error`).textContent = message;
  }

  showFieldErrors(error) {
    let shown = false;
    for (const { field, message } of error.fieldErrors) {
      const own = FIELD_INPUTS[field.replace(/\[\d+\]$/, "")];
      const ids = own ? [own] : rateLimit.inputsFor(field);
      if (ids.length === 0) continue;
      this.fieldError(ids, message);
      shown = true;
    }
    this.formError(shown ? "Check the fields marked below." : error.message);
  }

  /** The rate limit as the form holds it, or null after marking what keyward would refuse. */
  readLimit() {
    const { limit, errors } = rateLimit.read();
    if (!errors) return { limit };
    for (const [id, message] of Object.entries(errors)) this.fieldError([id], message);
    this.formError("Check the fields marked below.");
    $(Object.keys(errors)[0]).focus();
    return null;
  }

  async submit() {
    this.clearErrors();
    const form = {
      enabled: $("key-enabled").checked,
      permissions: splitPermissions($("key-permissions").value),
      // As typed: an edit sends it back only when it differs from what the key holds.
      description: $("key-description").value,
      expires: $("key-expires").value,
    };
    const rate = this.readLimit();
    if (!rate) return;
    form.rateLimit = rate.limit;
    try {
      if (this.editing) await this.saveEdit(form);
      else await this.create(form);
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
    if (form.rateLimit) body.rateLimit = form.rateLimit;
    if (form.expires) body.expiresAt = fromLocalInput(form.expires);
    const { data } = await call("POST", adminPath(this.tenant, "/apiKeys"), { body });
    $("key-dialog").close();
    await this.done(null, data.token, name);
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
    // null removes the limit; an unchanged one is not sent at all.
    if (!rateLimit.same(form.rateLimit, key.rateLimit)) body.rateLimit = form.rateLimit;
    await call("PUT", keyPath(this.tenant, name), { body, ifMatch: etag });
    $("key-dialog").close();
    await this.done(`Saved ${name}.`);
  }
}
