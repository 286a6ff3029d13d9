// Home: the models, and the typed version search (`versions(filter:)`) with the compared params
// and metrics as sortable columns. The whole search lives in the URL, so it can be shared:
//   /?q=iris&c=param.C<1&c=metric.accuracy>0.9&c=alias=production&mode=and

import { graphiqlHref, run } from "../api.js";
import { ago, h, nav, num, show, sortableTable, when } from "../dom.js";
import { go } from "../nav.js";
import { paths } from "../paths.js";
import { aliasChips, problem, section, status, versionLink } from "./common.js";

export const QUERY = `
query Home($nameContains: String, $filter: VersionFilter, $search: Boolean!) {
  models(first: 100, filter: {nameContains: $nameContains}) {
    totalCount
    nodes {
      name namespace task updatedAt
      latestVersion { number }
      aliases { name version { number } }
    }
  }
  versions(first: 100, filter: $filter) @include(if: $search) {
    totalCount
    nodes {
      ref number status createdAt
      model { name }
      params { key value number }
      metrics { key value }
      aliases { name }
    }
  }
}`;

const KINDS = ["param", "metric", "tag", "alias", "derivedFrom", "trainedOn"];
const OPS = { "<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "=": "eq", "!=": "ne" };
const COMPARE = /^(param|metric)\.([^<>=!]+?)(<=|>=|!=|<|>|=)(.*)$/;
const TAG = /^tag\.([^=]+)=(.*)$/;
const REF = /^(alias|derivedFrom|trainedOn)=(.+)$/;

/** One condition of the URL (`param.lr<0.001`) as {kind, key, op, value}; null when unreadable. */
export function parseCondition(text) {
  let m = COMPARE.exec(text);
  if (m) return { kind: m[1], key: m[2], op: m[3], value: m[4] };
  m = TAG.exec(text);
  if (m) return { kind: "tag", key: m[1], op: "=", value: m[2] };
  m = REF.exec(text);
  if (m) return { kind: m[1], key: "", op: "=", value: m[2] };
  return null;
}

function conditionText(c) {
  if (c.kind === "param" || c.kind === "metric") return `${c.kind}.${c.key}${c.op}${c.value}`;
  if (c.kind === "tag") return `tag.${c.key}=${c.value}`;
  return `${c.kind}=${c.value}`;
}

function typed(text) {
  if (/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text.trim())) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  return text;
}

/** The VersionFilter the conditions stand for: each one a filter, joined by AND or OR. */
export function toFilter(conditions, mode) {
  const parts = conditions.map((c) => {
    if (c.kind === "param" || c.kind === "metric") {
      const value = c.op === "=" || c.op === "!=" ? typed(c.value) : Number(c.value);
      return { [`${c.kind}s`]: [{ key: c.key, [OPS[c.op]]: value }] };
    }
    if (c.kind === "tag") return { tags: [{ key: c.key, value: c.value }] };
    return { [c.kind]: c.value };
  });
  if (!parts.length) return null;
  return parts.length === 1 ? parts[0] : { [mode === "or" ? "or" : "and"]: parts };
}

function conditionRow(c, onRemove) {
  const kind = h("select", { name: "kind", "aria-label": "what to compare" }, KINDS.map((k) => h("option", { value: k, selected: k === c.kind }, k)));
  const key = h("input", { name: "key", placeholder: "key", value: c.key, size: 12, "aria-label": "key" });
  const op = h("select", { name: "op", "aria-label": "operator" }, Object.keys(OPS).map((o) => h("option", { value: o, selected: o === c.op }, o)));
  const value = h("input", { name: "value", placeholder: "value", value: c.value, size: 16, "aria-label": "value" });
  const row = h("div", { class: "condition" }, kind, key, op, value,
    h("button", { type: "button", class: "link", onclick: () => { row.remove(); onRemove(); }, "aria-label": "remove condition" }, "×"));
  const sync = () => {
    const compares = kind.value === "param" || kind.value === "metric";
    key.hidden = !(compares || kind.value === "tag");
    op.hidden = !compares;
  };
  kind.addEventListener("change", sync);
  sync();
  row.read = () => ({ kind: kind.value, key: key.value.trim(), op: op.hidden ? "=" : op.value, value: value.value.trim() });
  return row;
}

function searchForm(query, conditions, mode) {
  const rows = h("div", { class: "conditions" });
  const add = (c) => rows.append(conditionRow(c, () => {}));
  conditions.forEach(add);
  const nameBox = h("input", { type: "search", name: "q", placeholder: "model name contains…", value: query.get("q") || "", "aria-label": "model name" });
  const modeBox = h("select", { name: "mode", "aria-label": "join conditions with" },
    h("option", { value: "and", selected: mode !== "or" }, "all of (AND)"), h("option", { value: "or", selected: mode === "or" }, "any of (OR)"));
  return h("form", { class: "search", onsubmit: (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    if (nameBox.value.trim()) params.set("q", nameBox.value.trim());
    for (const row of rows.children) {
      const c = row.read();
      if (c.value || c.key) params.append("c", conditionText(c));
    }
    if (modeBox.value === "or") params.set("mode", "or");
    go(paths.home(params));
  } },
  h("div", { class: "row" }, nameBox, h("button", { type: "submit" }, "Search")),
  h("details", { open: conditions.length > 0 }, h("summary", {}, "Search versions by params, metrics, tags, alias and lineage"),
    h("div", { class: "row" }, "Versions matching ", modeBox),
    rows,
    h("div", { class: "row" },
      h("button", { type: "button", onclick: () => add({ kind: "metric", key: "", op: ">", value: "" }) }, "+ condition"),
      h("button", { type: "submit" }, "Find versions"))));
}

function modelsTable(nodes) {
  return sortableTable([
    { label: "model", value: (m) => m.name, render: (m) => nav(paths.model(m.name), m.name) },
    { label: "task", value: (m) => m.task.toLowerCase().replaceAll("_", "-") },
    { label: "latest", value: (m) => m.latestVersion?.number ?? null, numeric: true,
      render: (m) => (m.latestVersion ? versionLink(m.name, m.latestVersion.number, `v${m.latestVersion.number}`) : "") },
    { label: "aliases", value: (m) => m.aliases.map((a) => a.name).join(" "), render: (m) => aliasChips(m.name, m.aliases) },
    { label: "updated", value: (m) => m.updatedAt, render: (m) => h("time", { datetime: m.updatedAt, title: when(m.updatedAt) }, ago(m.updatedAt)) },
  ], nodes, { empty: "no models match", className: "models" });
}

function resultsTable(nodes, conditions) {
  const paramKeys = [...new Set(conditions.filter((c) => c.kind === "param").map((c) => c.key))];
  const metricKeys = [...new Set(conditions.filter((c) => c.kind === "metric").map((c) => c.key))];
  const param = (v, k) => v.params.find((p) => p.key === k);
  const metric = (v, k) => v.metrics.find((m) => m.key === k);
  return sortableTable([
    { label: "version", value: (v) => v.ref, render: (v) => versionLink(v.model.name, v.number, v.ref) },
    { label: "status", value: (v) => v.status, render: (v) => status(v.status) },
    ...paramKeys.map((k) => ({ label: k, numeric: true, value: (v) => { const p = param(v, k); return p ? (p.number ?? show(p.value)) : null; },
      render: (v) => show(param(v, k)?.value) })),
    ...metricKeys.map((k) => ({ label: k, numeric: true, value: (v) => metric(v, k)?.value ?? null, render: (v) => num(metric(v, k)?.value) })),
    { label: "aliases", value: (v) => v.aliases.map((a) => a.name).join(" "), render: (v) => aliasChips(v.model.name, v.aliases.map((a) => ({ ...a, number: v.number }))) },
    { label: "created", value: (v) => v.createdAt, render: (v) => when(v.createdAt) },
  ], nodes, { empty: "no version matches", className: "results" });
}

export async function render(where, frame) {
  const query = where.query;
  const conditions = query.getAll("c").map(parseCondition).filter(Boolean);
  const mode = query.get("mode") === "or" ? "or" : "and";
  const filter = toFilter(conditions, mode);
  const variables = { nameContains: query.get("q") || null, filter, search: Boolean(filter) };
  frame.title("Models");
  frame.query(graphiqlHref(QUERY, variables));
  const { data, errors } = await run(QUERY, variables);
  const parts = [h("h1", {}, "Models"), searchForm(query, conditions, mode)];
  if (errors.length) parts.push(problem(errors));
  if (data?.versions) {
    parts.push(section(`Versions (${data.versions.totalCount}${data.versions.totalCount > 100 ? ", first 100" : ""})`,
      resultsTable(data.versions.nodes, conditions)));
  }
  if (data?.models) parts.push(section(`${data.models.totalCount} model${data.models.totalCount === 1 ? "" : "s"}`, modelsTable(data.models.nodes)));
  return h("div", {}, parts);
}
