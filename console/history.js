// The history tab (git mode): who changed the tenant's file, newest first.

import { adminPath, call } from "./api.js";
import { $, el, shortTime } from "./dom.js";

export async function showHistory(tenant) {
  const body = $("history-body");
  const note = $("history-note");
  note.hidden = true;
  let res;
  try {
    res = await call("GET", adminPath(tenant, "/history"));
  } catch (e) {
    body.replaceChildren();
    note.textContent = e.message;
    note.hidden = false;
    return;
  }
  const rows = (res.data || []).map((entry) => {
    const texts = [shortTime(entry.date), entry.action, entry.keyName || "", entry.author, entry.commit.slice(0, 10)];
    return el("tr", {}, ...texts.map((text) => el("td", { textContent: text })));
  });
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    note.textContent = "No commits touch this tenant's file yet.";
    note.hidden = false;
  } else if (res.headers.get("Keyward-History") === "shallow") {
    note.textContent = "The server's clone is shallow: older changes exist but are not shown.";
    note.hidden = false;
  }
}
