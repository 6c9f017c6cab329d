// Renders /openapi.json as a readable page (no external assets: the page works offline).

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// Text with `code` spans, as the descriptions write it.
function prose(tag, text, attrs = {}) {
  const node = el(tag, attrs);
  text.split("`").forEach((part, i) => node.append(i % 2 ? el("code", { text: part }) : part));
  return node;
}

function typeOf(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map(typeOf).join(" | ");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.type === "array") return `${typeOf(schema.items)}[]`;
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type || "any";
  return schema.format ? `${type} (${schema.format})` : type;
}

function table(headings, rows) {
  const head = el("tr", {}, ...headings.map((h) => el("th", { text: h })));
  const body = rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c))));
  const grid = el("table", { class: "table" }, el("thead", {}, head), el("tbody", {}, ...body));
  return el("div", { class: "table-scroll" }, grid);
}

function operation(spec, path, method, op) {
  const secured = (op.security || spec.security || []).length > 0;
  const summary = el(
    "summary",
    {},
    el("span", { class: `method ${method}`, text: method }),
    el("span", { class: "path", text: path }),
    prose("span", op.summary || "", { class: "summary" }),
    el("span", { class: "lock", text: secured ? "bearer token" : "public" }),
  );
  const body = el("div", { class: "body" }, prose("p", op.summary || ""));
  if (op.parameters && op.parameters.length) {
    body.append(el("h3", { text: "Parameters" }));
    body.append(table(["Name", "In", "Type", "Required"], op.parameters.map((p) => [
      el("code", { text: p.name }), p.in, el("span", { class: "type", text: typeOf(p.schema) }),
      p.required ? "yes" : "no",
    ])));
  }
  if (op.requestBody) {
    const content = op.requestBody.content || {};
    body.append(el("h3", { text: "Request body" }));
    for (const [type, media] of Object.entries(content)) {
      body.append(el("p", {}, el("code", { text: type }), " ", el("span", { class: "type", text: typeOf(media.schema) })));
    }
  }
  body.append(el("h3", { text: "Responses" }));
  body.append(table(["Status", "Description", "Body"], Object.entries(op.responses).map(([code, r]) => {
    const media = Object.values(r.content || {})[0];
    return [el("span", { class: "status", text: code }), r.description || "", el("span", { class: "type", text: media ? typeOf(media.schema) : "" })];
  })));
  return el("details", { class: "panel op" }, summary, body);
}

function schemaBlock(name, schema) {
  if (schema.enum) {
    return el("div", { class: "schema", id: `schema-${name}` }, el("h3", { text: name }), el("p", {}, el("span", { class: "type", text: typeOf(schema) })));
  }
  const required = new Set(schema.required || []);
  const rows = Object.entries(schema.properties || {}).map(([prop, s]) => [
    el("code", { text: prop }), el("span", { class: "type", text: typeOf(s) }), required.has(prop) ? "yes" : "no",
  ]);
  return el("div", { class: "schema", id: `schema-${name}` }, el("h3", { text: name }), table(["Field", "Type", "Required"], rows));
}

async function main() {
  const spec = await (await fetch("/openapi.json")).json();
  $("intro").append(el("h1", { text: `${spec.info.title} ${spec.info.version}` }), prose("p", spec.info.description, { class: "muted" }));
  // API endpoints first, then the service's own pages and probes.
  const paths = Object.entries(spec.paths).sort(([a], [b]) => a.startsWith("/api/") === b.startsWith("/api/") ? 0 : a.startsWith("/api/") ? -1 : 1);
  for (const [path, methods] of paths) {
    for (const [method, op] of Object.entries(methods)) $("operations").append(operation(spec, path, method, op));
  }
  for (const [name, schema] of Object.entries(spec.components.schemas)) $("schemas").append(schemaBlock(name, schema));
}

main();
