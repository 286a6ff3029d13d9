// The audit log: who did what to which object, when; filtered by model, actor, kind and time.
// What a caller sees is what the API gives it (token events: admins only).

import { graphiqlHref, run } from "../api.js";
import { h, nav, when } from "../dom.js";
import { go } from "../nav.js";
import { paths } from "../paths.js";
import { changeLines, problem, refLink } from "./common.js";

export const QUERY = `
query AuditPage($first: Int!, $after: String, $filter: AuditFilter) {
  auditLog(first: $first, after: $after, filter: $filter) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { id at actor kind model objectRef changes }
  }
}`;

const KINDS = ["MODEL_CREATED", "MODEL_UPDATED", "MODEL_DELETED", "VERSION_CREATED", "VERSION_UPDATED",
  "VERSION_STATUS_CHANGED", "METRICS_LOGGED", "ALIAS_SET", "ALIAS_DELETED", "LINEAGE_ADDED", "LINEAGE_REMOVED",
  "DATASET_REGISTERED", "TOKEN_CREATED", "TOKEN_REVOKED"];

function filterOf(query) {
  const filter = {};
  for (const key of ["model", "actor"]) if (query.get(key)) filter[key] = query.get(key);
  if (query.get("kind")) filter.kinds = [query.get("kind")];
  for (const key of ["since", "until"]) if (query.get(key)) filter[key] = new Date(`${query.get(key)}Z`).toISOString();
  return Object.keys(filter).length ? filter : null;
}

function objectLink(e) {
  if (/^.+:\d+$/.test(e.objectRef)) return refLink(e.objectRef);
  if (e.model && (e.objectRef === e.model || e.objectRef.startsWith(`${e.model}@`))) return nav(paths.model(e.model), e.objectRef);
  return e.objectRef;
}

export async function render(where, frame) {
  const query = where.query;
  const variables = { first: 50, after: query.get("after") || null, filter: filterOf(query) };
  frame.title("Audit log");
  frame.query(graphiqlHref(QUERY, variables));
  const { data, errors } = await run(QUERY, variables);
  const field = (name, attrs) => h("input", { name, value: query.get(name) || "", ...attrs });
  const form = h("form", { class: "row filters", onsubmit: (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    for (const el of e.currentTarget.elements) if (el.name && el.value) params.set(el.name, el.value);
    go(paths.audit(params));
  } },
  h("label", {}, "Model ", field("model", { placeholder: "demo/iris-classifier", size: 20 })),
  h("label", {}, "Actor ", field("actor", { placeholder: "token name", size: 12 })),
  h("label", {}, "Kind ", h("select", { name: "kind" }, h("option", { value: "" }, "any"),
    KINDS.map((k) => h("option", { value: k, selected: k === query.get("kind") }, k)))),
  h("label", {}, "Since ", field("since", { type: "datetime-local" })),
  h("label", {}, "Until ", field("until", { type: "datetime-local" })),
  h("button", { type: "submit" }, "Filter"));
  const parts = [h("h1", {}, "Audit log"), h("p", { class: "muted" }, "Every change, newest first, in UTC. Token events are shown to admin tokens only."), form];
  if (errors.length) parts.push(problem(errors));
  const log = data?.auditLog;
  if (log) {
    const next = log.pageInfo.hasNextPage ? new URLSearchParams(query) : null;
    if (next) next.set("after", log.pageInfo.endCursor);
    parts.push(h("p", {}, `${log.totalCount} event${log.totalCount === 1 ? "" : "s"}`),
      h("div", { class: "table-wrap" }, h("table", { class: "audit" },
        h("thead", {}, h("tr", {}, ["#", "when", "actor", "kind", "object", "changes"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, log.nodes.length ? log.nodes.map((e) => h("tr", {},
          h("td", { class: "num" }, e.id), h("td", {}, when(e.at)), h("td", {}, e.actor), h("td", {}, h("code", {}, e.kind)),
          h("td", {}, objectLink(e)),
          h("td", { class: "changes" }, changeLines(e.changes))))
          : h("tr", {}, h("td", { colspan: 6, class: "muted" }, "no events"))))),
      h("p", { class: "row" }, query.get("after") ? nav(paths.audit(new URLSearchParams([...query].filter(([k]) => k !== "after"))), "first page") : null,
        next ? nav(paths.audit(next), "next page →") : null));
  }
  return h("div", {}, parts);
}
