// Rotate, delete and end grace: each dialog first reads the key, shows it, and sends its
// ETag in `If-Match`, so a key another admin changed meanwhile is left alone (412) and shown
// as it now is.

import { ApiError, call, keyPath } from "./api.js";
import { $ } from "./dom.js";
import { lastEnd, summary, tokenCount } from "./keyinfo.js";

const CHANGED = "Another admin changed this key first, so nothing was changed. Here it is as it is now; check it, then try again.";

export class KeyActions {
  /** `done(message, token?, name)` runs after a change: a notice, or a rotated key's token. */
  constructor({ done }) {
    this.done = done;
    this.tenant = null;
    this.target = null;
    for (const [form, submit] of [
      ["rotate-form", () => this.rotate()],
      ["delete-form", () => this.delete()],
      ["grace-form", () => this.endGrace()],
    ]) {
      $(form).addEventListener("submit", (e) => {
        e.preventDefault();
        submit();
      });
    }
    $("delete-confirm").addEventListener("input", () => {
      $("delete-submit").disabled = $("delete-confirm").value !== this.target?.name;
    });
    for (const dialog of document.querySelectorAll("dialog")) {
      for (const cancel of dialog.querySelectorAll("button.cancel")) cancel.addEventListener("click", () => dialog.close());
    }
  }

  /** Reads the key (its ETag with it) and fills `dialogId` with it; false if it is gone. */
  async read(dialogId, tenant, name) {
    this.tenant = tenant;
    let res;
    try {
      res = await call("GET", keyPath(tenant, name));
    } catch (e) {
      if (!$(dialogId).open) this.done(e.message);
      else this.error(dialogId, e.message);
      return false;
    }
    this.target = { name, key: res.data, etag: res.headers.get("ETag") };
    const dialog = $(dialogId);
    for (const span of dialog.querySelectorAll(".target-name")) span.textContent = name;
    dialog.querySelector(".target-summary").textContent = summary(res.data);
    return true;
  }

  async open(dialogId, tenant, name) {
    $(dialogId).querySelector(".form-error").hidden = true;
    if (!(await this.read(dialogId, tenant, name))) return false;
    $(dialogId).showModal();
    return true;
  }

  error(dialogId, message) {
    const p = $(dialogId).querySelector(".form-error");
    p.textContent = message;
    p.hidden = false;
  }

  /** A refused change: on 412, the key as it is now, and nothing sent again. */
  async refused(dialogId, e) {
    if (!(e instanceof ApiError) || e.status !== 412) return this.error(dialogId, e.message);
    await this.read(dialogId, this.tenant, this.target.name);
    this.error(dialogId, CHANGED);
    if (dialogId === "grace-dialog") this.fillGrace();
  }

  async openRotate(tenant, name) {
    if (await this.open("rotate-dialog", tenant, name)) $("grace").focus();
  }

  async openDelete(tenant, name) {
    $("delete-confirm").value = "";
    $("delete-submit").disabled = true;
    if (await this.open("delete-dialog", tenant, name)) $("delete-confirm").focus();
  }

  async openEndGrace(tenant, name) {
    if (!(await this.open("grace-dialog", tenant, name))) return;
    this.fillGrace();
    $("grace-dialog").querySelector("button.danger").focus();
  }

  fillGrace() {
    const grace = this.target.key.graceTokens || [];
    const { name } = this.target;
    $("grace-summary").textContent = grace.length
      ? `${tokenCount(grace.length)} of ${name} still ${grace.length === 1 ? "works" : "work"}, the last until ${lastEnd(grace)}. The current token keeps working.`
      : `No old token of ${name} works any more.`;
  }

  async rotate() {
    const { name, etag } = this.target;
    try {
      const { data } = await call("POST", keyPath(this.tenant, name, "/rotate"), {
        body: { gracePeriodSeconds: Number($("grace").value) },
        ifMatch: etag,
      });
      $("rotate-dialog").close();
      await this.done(null, data.token, name);
    } catch (e) {
      await this.refused("rotate-dialog", e);
    }
  }

  async delete() {
    const { name, etag } = this.target;
    if ($("delete-confirm").value !== name) return;
    try {
      await call("DELETE", keyPath(this.tenant, name), { ifMatch: etag });
      $("delete-dialog").close();
      await this.done(`Deleted ${name}.`, null, name, "deleted");
    } catch (e) {
      await this.refused("delete-dialog", e);
    }
  }

  async endGrace() {
    const { name, etag } = this.target;
    try {
      await call("DELETE", keyPath(this.tenant, name, "/graceTokens"), { ifMatch: etag });
      $("grace-dialog").close();
      await this.done(`The old tokens of ${name} no longer work.`);
    } catch (e) {
      await this.refused("grace-dialog", e);
    }
  }
}
