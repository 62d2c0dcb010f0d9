// The dialog that shows a new token, once. Until the token was copied, closing it (Escape,
// the close button, a click outside) first asks: the token cannot be shown again.

import { $ } from "./dom.js";

let copied = false;

export function showToken(name, token) {
  copied = false;
  $("token-key-name").textContent = name;
  $("new-token").value = token;
  $("copy-status").textContent = "";
  $("token-confirm").hidden = true;
  $("token-dialog").showModal();
  $("new-token").focus();
  $("new-token").select();
}

function markCopied() {
  copied = true;
  $("copy-status").textContent = "Copied.";
  $("token-confirm").hidden = true;
}

/** Closes at once once copied; otherwise asks first. */
function requestClose() {
  if (copied) return $("token-dialog").close();
  $("token-confirm").hidden = false;
  $("token-keep").focus();
}

$("copy-token").addEventListener("click", async () => {
  const input = $("new-token");
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    document.execCommand("copy");
  }
  markCopied();
});
// Copied by hand (select and Ctrl+C) counts too.
$("new-token").addEventListener("copy", markCopied);
$("token-done").addEventListener("click", () => $("token-dialog").close());
$("token-close").addEventListener("click", requestClose);
$("token-keep").addEventListener("click", () => {
  $("token-confirm").hidden = true;
  $("new-token").focus();
});
$("token-discard").addEventListener("click", () => $("token-dialog").close());
// Escape.
$("token-dialog").addEventListener("cancel", (e) => {
  if (copied) return;
  e.preventDefault();
  requestClose();
});
// A click on the backdrop lands on the dialog element itself, outside its box.
$("token-dialog").addEventListener("click", (e) => {
  if (e.target !== $("token-dialog")) return;
  const box = $("token-dialog").getBoundingClientRect();
  const inside = e.clientX >= box.left && e.clientX <= box.right && e.clientY >= box.top && e.clientY <= box.bottom;
  if (!inside) requestClose();
});
$("token-dialog").addEventListener("close", () => {
  $("new-token").value = "";
  $("copy-status").textContent = "";
  $("token-confirm").hidden = true;
  copied = false;
});
