// A model: card, tags, aliases with their history, and its versions with chosen columns.

import { graphiqlHref, mutate, run } from "../api.js";
import { h, markdown, nav, num, show, sortableTable, when } from "../dom.js";
import { busy, go, idle } from "../nav.js";
import { paths } from "../paths.js";
import { aliasChips, editForm, inlineError, problem, section, status, tags, versionLink } from "./common.js";
import { notFound } from "./missing.js";

export const QUERY = `
query ModelPage($name: String!, $first: Int!, $after: String, $archived: Boolean!, $params: [String!], $metrics: [String!]) {
  model(name: $name) {
    name namespace description task createdAt updatedAt createdBy
    tags { key value }
    aliases { name updatedAt updatedBy version { number } }
    paramKeys { key versions }
    metricKeys { key versions }
    versions(first: $first, after: $after, includeArchived: $archived) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes {
        number ref status createdAt createdBy
        params(keys: $params) { key value number }
        metrics(keys: $metrics) { key value }
        aliases { name }
      }
    }
  }
  aliasMoves: auditLog(first: 100, filter: {model: $name, kinds: [ALIAS_SET, ALIAS_DELETED]}) {
    nodes { at actor kind objectRef changes }
  }
  suggestModels(name: $name, first: 5) { name }
}`;

const PAGES = [25, 50, 100];  // rows per page the page offers (100 is the server's largest)
const SET_ALIAS = "mutation($m: String!, $a: String!, $v: String!) { setAlias(input: {model: $m, alias: $a, version: $v}) { name } }";
const UPDATE = "mutation($n: String!, $d: String, $t: [TagInput!]) { updateModel(input: {name: $n, description: $d, tags: $t}) { name } }";

/** The columns chosen in the URL (`cols=p.lr,m.accuracy`), or null: then the page reads every
 * param and metric and shows the three most common of each. */
function chosenColumns(query) {
  const chosen = (query.get("cols") || "").split(",").filter((c) => /^[pm]\./.test(c));
  return chosen.length ? chosen.map((c) => ({ kind: c[0], key: c.slice(2) })) : null;
}

function columns(query, model) {
  const top = (uses, kind) => uses.slice(0, 3).map((u) => ({ kind, key: u.key }));
  return chosenColumns(query) || [...top(model.paramKeys, "p"), ...top(model.metricKeys, "m")];
}

function columnPicker(model, query, shown) {
  const keys = (uses, kind) => uses.map((u) => ({ kind, key: u.key, versions: u.versions }));
  const all = [...keys(model.paramKeys, "p"), ...keys(model.metricKeys, "m")];
  const isShown = (c) => shown.some((s) => s.kind === c.kind && s.key === c.key);
  const boxes = all.map((c) => h("label", {}, h("input", { type: "checkbox", name: `${c.kind}.${c.key}`, checked: isShown(c) }),
    `${c.kind === "p" ? "param" : "metric"} ${c.key}`, h("span", { class: "muted" }, ` (${c.versions})`)));
  return h("details", { class: "columns" }, h("summary", {}, "Columns"),
    h("form", { onsubmit: (e) => {
      e.preventDefault();
      const params = new URLSearchParams(query);
      params.set("cols", boxes.filter((b) => b.firstChild.checked).map((b) => b.firstChild.name).join(","));
      params.delete("after");
      go(`${paths.model(model.name)}?${params}`);
    } }, h("div", { class: "checks" }, boxes), h("button", { type: "submit" }, "Show these columns")));
}

function perPage(query) {
  const per = Number(query.get("per"));
  return PAGES.includes(per) ? per : PAGES[0];
}

/** The page's variables: only the chosen columns' values are read when columns are chosen. */
export function variablesOf(where) {
  const chosen = chosenColumns(where.query);
  const keys = (kind) => (chosen ? chosen.filter((c) => c.kind === kind).map((c) => c.key) : null);
  return {
    name: where.name, first: perPage(where.query), after: where.query.get("after") || null,
    archived: where.query.get("archived") === "1", params: keys("p"), metrics: keys("m"),
  };
}

function versionsTable(model, versions, shown) {
  const value = (v, c) => (c.kind === "p" ? v.params : v.metrics).find((x) => x.key === c.key);
  return sortableTable([
    { label: "version", value: (v) => v.number, numeric: true, render: (v) => versionLink(model, v.number, `v${v.number}`) },
    { label: "status", value: (v) => v.status, render: (v) => status(v.status) },
    { label: "aliases", value: (v) => v.aliases.map((a) => a.name).join(" "), render: (v) => aliasChips(model, v.aliases.map((a) => ({ ...a, number: v.number }))) },
    ...shown.map((c) => ({
      label: c.key, numeric: true,
      value: (v) => { const x = value(v, c); return x ? (c.kind === "m" ? x.value : (x.number ?? show(x.value))) : null; },
      render: (v) => { const x = value(v, c); return x ? (c.kind === "m" ? num(x.value) : show(x.value)) : ""; },
    })),
    { label: "created", value: (v) => v.createdAt, render: (v) => h("time", { datetime: v.createdAt }, when(v.createdAt)) },
    { label: "by", value: (v) => v.createdBy || "" },
  ], versions, { empty: "no versions to show", className: "versions" });
}

function timeline(model, moves) {
  if (!moves.length) return h("p", { class: "muted" }, "No alias has moved yet.");
  return h("ol", { class: "timeline" }, moves.map((e) => {
    const alias = e.objectRef.slice(e.objectRef.indexOf("@"));
    const change = e.changes.version || {};
    const to = change.after === null || change.after === undefined ? h("em", {}, "deleted")
      : versionLink(model, change.after, `v${change.after}`);
    const from = change.before === null || change.before === undefined ? "new" : versionLink(model, change.before, `v${change.before}`);
    return h("li", {}, h("time", { datetime: e.at }, when(e.at)), " ", h("span", { class: "alias" }, alias), " ", from, " → ", to,
      " ", h("span", { class: "muted" }, `by ${e.actor}`));
  }));
}

function writes(model) {
  const out = h("div", { class: "result" });
  const alias = h("input", { name: "alias", placeholder: "alias, e.g. production", required: true, size: 16 });
  const version = h("input", { name: "version", placeholder: "version number", required: true, size: 8, inputmode: "numeric" });
  const promote = h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    try {
      busy(); await mutate(SET_ALIAS, { m: model.name, a: alias.value.trim(), v: version.value.trim() });
      go(paths.model(model.name), { replace: true });
    } catch (err) {
      out.replaceChildren(inlineError(err));
      idle();
    }
  } }, h("strong", {}, "Move an alias "), alias, " to ", version, h("button", { type: "submit" }, "Move"));
  const edit = editForm(model, 6, async (description, list) => {
    try {
      busy(); await mutate(UPDATE, { n: model.name, d: description, t: list });
      go(paths.model(model.name), { replace: true });
    } catch (err) {
      out.replaceChildren(inlineError(err));
      idle();
    }
  });
  return h("details", { class: "writes" }, h("summary", {}, "Change this model (needs a write token)"), promote, edit, out);
}

export async function render(where, frame) {
  const variables = variablesOf(where);
  frame.title(where.name);
  frame.query(graphiqlHref(QUERY, variables));
  const { data, errors } = await run(QUERY, variables);
  const model = data?.model;
  if (!model) {
    if (errors.length && !errors.every((e) => e.extensions?.code === "NOT_FOUND")) return problem(errors);
    return notFound(`No model named ${where.name}`, { suggestions: data?.suggestModels || [] });
  }
  const versions = model.versions.nodes;
  const shown = columns(where.query, model);
  const withQuery = (change) => {
    const params = new URLSearchParams(where.query);
    change(params);
    return `${paths.model(model.name)}${params.size ? `?${params}` : ""}`;
  };
  const archivedToggle = withQuery((q) => { q.delete("after"); if (variables.archived) q.delete("archived"); else q.set("archived", "1"); });
  const next = model.versions.pageInfo.hasNextPage ? withQuery((q) => q.set("after", model.versions.pageInfo.endCursor)) : null;
  const sizes = PAGES.map((n) => (n === variables.first ? h("strong", {}, String(n))
    : nav(withQuery((q) => { q.delete("after"); q.set("per", String(n)); }), String(n))));
  const moves = (data.aliasMoves?.nodes || []);
  return h("div", {},
    h("p", { class: "crumbs" }, nav(paths.home(), "Models"), " / ", model.namespace ? `${model.namespace} / ` : ""),
    h("h1", {}, model.name, " ", h("span", { class: "badge" }, model.task.toLowerCase().replaceAll("_", "-"))),
    errors.length ? problem(errors, "Some of this page could not be read") : null,
    h("div", { class: "facts" },
      h("span", {}, `created ${when(model.createdAt)}`, model.createdBy ? ` by ${model.createdBy}` : ""),
      h("span", {}, `updated ${when(model.updatedAt)}`),
      h("span", {}, tags(model.tags))),
    section("Aliases", model.aliases.length
      ? h("ul", { class: "aliases" }, model.aliases.map((a) => h("li", {}, h("span", { class: "alias" }, `@${a.name}`), " → ",
        versionLink(model.name, a.version.number, `v${a.version.number}`), " ", h("span", { class: "muted" }, `since ${when(a.updatedAt)}${a.updatedBy ? ` by ${a.updatedBy}` : ""}`))))
      : h("p", { class: "muted" }, "No aliases."),
    h("h3", {}, "History"), timeline(model.name, moves)),
    section(`Versions (${model.versions.totalCount}${variables.archived ? "" : " not archived"})`,
      h("div", { class: "row" }, columnPicker(model, where.query, shown),
        nav(archivedToggle, variables.archived ? "hide archived" : "show archived"),
        h("span", { class: "muted" }, "per page ", ...sizes.flatMap((x) => [x, " "])),
        where.query.get("after") ? nav(withQuery((q) => q.delete("after")), "first page") : null,
        next ? nav(next, "next page →") : null),
      versionsTable(model.name, versions, shown)),
    section("Model card", model.description ? markdown(model.description) : h("p", { class: "muted" }, "No description.")),
    writes(model));
}
