/* The AsyncAPI document of the Redis inbox, shown as a page: it is fetched from
 * /asyncapi.json with the token the reader enters (kept in this tab's sessionStorage) and
 * drawn with the DOM alone; nothing is loaded from another host. */
"use strict";

const TOKEN_KEY = "ledger-asyncapi-token";
const main = document.getElementById("document");
const status = document.getElementById("status");

function el(tag, text, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const child of children) node.appendChild(child);
  return node;
}

function resolve(doc, value) {
  let found = value;
  while (found && typeof found.$ref === "string" && found.$ref.startsWith("#/")) {
    found = found.$ref.slice(2).split("/").reduce((at, key) => (at ? at[key] : undefined), doc);
  }
  return found;
}

function schemaBlock(title, schema) {
  const details = el("details", null, [el("summary", title)]);
  details.appendChild(el("pre", JSON.stringify(schema, null, 2)));
  return details;
}

function message(doc, name, ref) {
  const msg = resolve(doc, ref) || {};
  const section = el("section", null, [el("h4", `${msg.title || name} (${msg.name || name})`)]);
  if (msg.summary) section.appendChild(el("p", msg.summary, []));
  const payload = resolve(doc, msg.payload) || {};
  for (const [field, spec] of Object.entries(payload.properties || {})) {
    section.appendChild(el("p", null, [el("code", field), el("span", ` ${spec.description || ""}`)]));
  }
  section.appendChild(schemaBlock("payload schema", payload));
  return section;
}

function render(doc) {
  main.replaceChildren();
  main.appendChild(el("h2", `${doc.info.title} ${doc.info.version} (AsyncAPI ${doc.asyncapi})`));
  main.appendChild(el("p", doc.info.description));
  for (const [name, channel] of Object.entries(doc.channels || {})) {
    const section = el("section", null, [el("h3", `${channel.title || name}: ${channel.address}`)]);
    if (channel.description) section.appendChild(el("p", channel.description));
    for (const [param, spec] of Object.entries(channel.parameters || {})) {
      section.appendChild(el("p", null, [el("code", `{${param}}`), el("span", ` ${spec.description || ""}`)]));
    }
    for (const [msgName, ref] of Object.entries(channel.messages || {})) {
      section.appendChild(message(doc, msgName, ref));
    }
    main.appendChild(section);
  }
  const schemas = (doc.components && doc.components.schemas) || {};
  main.appendChild(el("h3", "Schemas"));
  for (const [name, schema] of Object.entries(schemas)) main.appendChild(schemaBlock(name, schema));
}

async function show(token) {
  status.textContent = "Loading…";
  const answer = await fetch("/asyncapi.json", { headers: { Authorization: `Bearer ${token}` } });
  if (!answer.ok) {
    main.replaceChildren(el("p", `The document could not be read: HTTP ${answer.status}.`));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  render(await answer.json());
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  show(document.getElementById("token-input").value.trim());
});
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) show(saved);
