// The history tab (git mode): who changed the tenant's file, newest first.

import { adminPath, call } from "./api.js";

const $ = (id) => document.getElementById(id);

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
    const row = document.createElement("tr");
    const when = new Date(entry.date).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    for (const text of [when, entry.action, entry.keyName || "", entry.author, entry.commit.slice(0, 10)]) {
      const td = document.createElement("td");
      td.textContent = text;
      row.append(td);
    }
    return row;
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
