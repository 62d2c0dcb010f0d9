// keyward's API reference: reads this server's OpenAPI document and shows every operation
// (method, path, summary, description, parameters, request body, responses with their
// headers) with its schemas as JSON. Everything taken from the document is set as text,
// never parsed as HTML, so nothing a document says can run in this page.

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== undefined && child !== null && child !== "") node.append(child);
  }
  return node;
}

const json = (value) => JSON.stringify(value, null, 2);

/** Every `$ref` inside a value, once each, in the order they appear. */
function refsIn(value, found = new Set()) {
  if (Array.isArray(value)) {
    value.forEach((v) => refsIn(v, found));
  } else if (value && typeof value === "object") {
    for (const [key, v] of Object.entries(value)) {
      if (key === "$ref" && typeof v === "string") found.add(v);
      else refsIn(v, found);
    }
  }
  return found;
}

/** A schema as JSON, with links to the components it refers to. */
function schemaBlock(schema) {
  const block = el("div", { class: "schema-block" }, el("pre", { class: "schema" }, json(schema)));
  const refs = [...refsIn(schema)].filter((r) => r.startsWith("#/components/schemas/"));
  if (refs.length) {
    const links = el("p", { class: "refs" }, "Uses: ");
    refs.forEach((ref, i) => {
      const name = ref.slice("#/components/schemas/".length);
      if (i) links.append(", ");
      links.append(el("a", { href: `#schema-${name}` }, name));
    });
    block.append(links);
  }
  return block;
}

function table(headings, rows) {
  const head = el("tr", {}, ...headings.map((h) => el("th", { scope: "col" }, h)));
  const body = rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

/** A component a `$ref` points at, or the value itself. */
function resolve(doc, value) {
  const ref = value && value.$ref;
  if (typeof ref !== "string" || !ref.startsWith("#/")) return value;
  return ref.slice(2).split("/").reduce((at, key) => (at ? at[key] : undefined), doc) || value;
}

function contentBlocks(content) {
  return Object.entries(content || {}).map(([type, media]) =>
    el("div", {}, el("p", {}, el("code", {}, type)), media.schema ? schemaBlock(media.schema) : null),
  );
}

function parametersPart(doc, params) {
  if (!params.length) return null;
  const rows = params.map((p) => {
    const param = resolve(doc, p);
    return [
      el("code", {}, param.name),
      param.in,
      param.required ? "yes" : "no",
      el("span", { class: "description" }, param.description || ""),
      param.schema ? schemaBlock(param.schema) : "",
    ];
  });
  return el("div", {}, el("h4", {}, "Parameters"), table(["Name", "In", "Required", "Description", "Schema"], rows));
}

function requestBodyPart(doc, body) {
  if (!body) return null;
  const request = resolve(doc, body);
  return el(
    "div",
    {},
    el("h4", {}, request.required ? "Request body (required)" : "Request body (optional)"),
    el("p", { class: "description" }, request.description || ""),
    ...contentBlocks(request.content),
  );
}

function headersTable(doc, headers) {
  const rows = Object.entries(headers || {}).map(([name, h]) => {
    const header = resolve(doc, h);
    return [el("code", {}, name), el("span", { class: "description" }, header.description || ""), header.schema ? schemaBlock(header.schema) : ""];
  });
  return rows.length ? table(["Header", "Description", "Schema"], rows) : null;
}

function responsesPart(doc, responses) {
  const items = Object.entries(responses || {}).map(([status, r]) => {
    const response = resolve(doc, r);
    return el(
      "div",
      { class: "response" },
      el("p", {}, el("span", { class: "status" }, status), " ", el("span", { class: "description" }, response.description || "")),
      headersTable(doc, response.headers),
      ...contentBlocks(response.content),
    );
  });
  return el("div", {}, el("h4", {}, "Responses"), ...items);
}

function securityPart(doc, op) {
  const requirements = op.security || doc.security;
  if (!requirements) return null;
  const names = requirements.map((r) => Object.keys(r).join(" + ") || "none");
  return el("p", {}, el("strong", {}, "Security: "), names.length ? names.join(" or ") : "none");
}

function anchor(op, method, path) {
  return `op-${op.operationId || `${method}-${path}`}`;
}

function operationArticle(doc, path, item, method) {
  const op = item[method];
  const params = [...(item.parameters || []), ...(op.parameters || [])];
  return el(
    "article",
    { class: "operation", id: anchor(op, method, path) },
    el("h3", {}, el("span", { class: `method ${method}` }, method), el("span", { class: "path" }, path)),
    el("p", { class: "summary" }, op.summary || ""),
    op.operationId ? el("p", { class: "operation-id" }, op.operationId) : null,
    el("p", { class: "description" }, op.description || ""),
    securityPart(doc, op),
    parametersPart(doc, params),
    requestBodyPart(doc, op.requestBody),
    responsesPart(doc, op.responses),
  );
}

/** Operations grouped by their first tag, in the document's tag order. */
function groupedOperations(doc) {
  const groups = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS.filter((m) => item[m])) {
      const name = (item[method].tags || [])[0] || "other";
      if (!groups.has(name)) groups.set(name, { tag: { name }, ops: [] });
      groups.get(name).ops.push({ path, item, method });
    }
  }
  return [...groups.values()].filter((g) => g.ops.length);
}

function tocEntry(op, method, path) {
  const link = el("a", { href: `#${anchor(op, method, path)}` }, el("span", { class: `method ${method}` }, method), " ", op.summary || path);
  return el("li", {}, link);
}

function componentsSection(doc) {
  const schemas = Object.entries((doc.components && doc.components.schemas) || {});
  const schemes = Object.entries((doc.components && doc.components.securitySchemes) || {});
  return el(
    "section",
    { class: "tag", id: "components" },
    el("h2", {}, "Schemas"),
    ...schemas.map(([name, schema]) => el("div", { id: `schema-${name}` }, el("h3", {}, name), schemaBlock(schema))),
    schemes.length ? el("h2", {}, "Security schemes") : null,
    ...schemes.map(([name, scheme]) => el("div", { id: `security-${name}` }, el("h3", {}, name), schemaBlock(scheme))),
  );
}

function render(doc) {
  const info = doc.info || {};
  document.title = `${info.title || "API"} reference`;
  document.getElementById("title").textContent = info.title || "API";
  document.getElementById("api-version").textContent = info.version ? `version ${info.version}` : "";

  const toc = document.getElementById("toc");
  const main = document.getElementById("reference");
  main.replaceChildren(el("p", { class: "intro" }, info.description || ""));
  for (const { tag, ops } of groupedOperations(doc)) {
    toc.append(el("h2", {}, tag.name), el("ul", {}, ...ops.map(({ path, item, method }) => tocEntry(item[method], method, path))));
    main.append(
      el(
        "section",
        { class: "tag", id: `tag-${tag.name}` },
        el("h2", {}, tag.name),
        el("p", { class: "description" }, tag.description || ""),
        ...ops.map(({ path, item, method }) => operationArticle(doc, path, item, method)),
      ),
    );
  }
  toc.append(el("h2", {}, el("a", { href: "#components" }, "Schemas")));
  main.append(componentsSection(doc));
  // The page was built after the browser looked for the address's #fragment.
  if (location.hash) document.getElementById(decodeURIComponent(location.hash.slice(1)))?.scrollIntoView();
}

async function main() {
  const reference = document.getElementById("reference");
  try {
    const res = await fetch(reference.dataset.document, { headers: { Accept: "application/json" } });
    if (!res.ok) throw new Error(`the server answered ${res.status}`);
    render(await res.json());
  } catch (e) {
    const alert = el("p", { class: "error", role: "alert" }, `Could not load the API document: ${e.message}`);
    reference.replaceChildren(alert);
  }
}

main();
