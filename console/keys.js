// The Keys tab: the list or one key's page, and the dialogs both open. Every change ends the
// same way: a notice (or a new token shown once), then the view shown is read again.

import { $ } from "./dom.js";
import { KeyActions } from "./actions.js";
import { KeyForm } from "./keyform.js";
import { KeyList } from "./list.js";
import { KeyPage } from "./keypage.js";
import { listUrl } from "./router.js";

export class KeysView {
  /** `notify(message)` reports success; `showToken(name, token)` shows a new token once. */
  constructor({ notify, showToken }) {
    this.notify = notify;
    this.showToken = showToken;
    this.tenant = null;
    this.listParams = new URLSearchParams();
    this.keyName = null;
    const act = (action, key) => this.act(action, key.name);
    const done = (message, token, name, what) => this.after(message, token, name, what);
    this.list = new KeyList({ onAction: act, onCreate: () => this.form.openCreate(this.tenant) });
    this.page = new KeyPage({ onAction: act });
    this.form = new KeyForm({ done });
    this.actions = new KeyActions({ done });
  }

  showList(tenant, params) {
    this.tenant = tenant;
    this.keyName = null;
    this.listParams = params;
    $("key-view").hidden = true;
    $("list-view").hidden = false;
    return this.list.show(tenant, params);
  }

  showKey(tenant, name) {
    this.tenant = tenant;
    this.keyName = name;
    $("list-view").hidden = true;
    $("key-view").hidden = false;
    return this.page.show(tenant, name, this.listParams);
  }

  act(action, name) {
    const open = {
      edit: () => this.form.openEdit(name, this.tenant),
      rotate: () => this.actions.openRotate(this.tenant, name),
      delete: () => this.actions.openDelete(this.tenant, name),
      "end-grace": () => this.actions.openEndGrace(this.tenant, name),
    }[action];
    if (open) open();
  }

  async after(message, token, name, what) {
    if (token) this.showToken(name, token);
    else if (message) this.notify(message);
    if (this.keyName === null) return this.list.reload();
    // A deleted key's page has nothing left to show: back to the list.
    if (what === "deleted") {
      location.hash = listUrl(this.tenant, this.listParams);
      return;
    }
    return this.page.show(this.tenant, this.keyName, this.listParams);
  }
}
