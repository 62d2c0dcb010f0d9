// The few DOM helpers every console script shares: find an element by id, build one (its
// text always set as text, never parsed as HTML), and show a moment as people read it.

/** The page's element with this id. */
export const $ = (id) => document.getElementById(id);

/**
 * A new `tag` element. `props` are set as its properties (`className`, `textContent`,
 * `type`, ...), except `dataset` and `attrs`, whose entries become `data-*` and plain
 * attributes; `children` (nodes or strings) are appended in order.
 */
export function el(tag, props = {}, ...children) {
  const { dataset = {}, attrs = {}, ...properties } = props;
  const node = Object.assign(document.createElement(tag), properties);
  Object.assign(node.dataset, dataset);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** A moment (an RFC 3339 string) as a medium date and a short time, in the reader's locale. */
export function shortTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
