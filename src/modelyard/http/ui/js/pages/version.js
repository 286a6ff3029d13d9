// A version: params, metrics and their charts, tags, run, artifacts, signature, lineage
// parents, the audit trail, snippets to pull and call it, and the writes a person expects.

import { graphiqlHref, mutate, run } from "../api.js";
import { bytes, h, markdown, nav, num, show, snippet, sortableTable, when } from "../dom.js";
import { metricChart } from "../chart.js";
import { busy, go, idle } from "../nav.js";
import { paths } from "../paths.js";
import { changeLines, editForm, inlineError, problem, refLink, section, status, tags } from "./common.js";
import { notFound } from "./missing.js";

export const QUERY = `
query VersionPage($ref: String!, $name: String!) {
  version(ref: $ref) {
    ref number status description createdAt createdBy updatedAt manifestDigest totalSize
    model { name task }
    params { key type value }
    metrics { key value step loggedAt }
    metricSeries { key points { value step loggedAt } }
    tags { key value }
    aliases { name }
    run { runId uri codeRepository commit startedAt endedAt }
    artifacts { path digest size mediaType }
    signature { inputs { name datatype shape } outputs { name datatype shape } }
    modelInfo { file irVersion opset producerName producerVersion parameterCount externalDataFiles }
    parents { relation parent { __typename ... on ModelVersion { ref } ... on DatasetVersion { ref uri } } }
    children { relation child { ref } }
  }
  model(name: $name) {
    name
    versions(first: 20) { totalCount nodes { number } }
    aliases { name version { number } }
  }
  trail: auditLog(first: 100, filter: {model: $name}) {
    nodes { id at actor kind objectRef changes }
  }
  suggestModels(name: $name, first: 5) { name }
}`;

const SET_ALIAS = "mutation($m: String!, $a: String!, $v: String!) { setAlias(input: {model: $m, alias: $a, version: $v}) { name } }";
const ARCHIVE = "mutation($r: String!) { archiveVersion(ref: $r) { status } }";
const RESTORE = "mutation($r: String!) { restoreVersion(ref: $r) { status } }";
const UPDATE = "mutation($r: String!, $d: String, $t: [TagInput!]) { updateVersion(input: {ref: $r, description: $d, tags: $t}) { ref } }";

/** Events about this version: its own, and alias moves to or from it. */
function trailOf(version, events) {
  return events.filter((e) => {
    if (e.objectRef === version.ref) return true;
    if (e.kind !== "ALIAS_SET" && e.kind !== "ALIAS_DELETED") return false;
    const c = e.changes.version || {};
    return c.before === version.number || c.after === version.number;
  });
}

function example(datatype, shape) {
  const dims = shape.map((d) => (d < 0 ? 1 : d));
  const count = dims.reduce((a, b) => a * b, 1);
  const value = datatype === "BYTES" ? "text" : datatype === "BOOL" ? false : 0;
  return { shape: dims, data: Array.from({ length: Math.min(count, 100000) }, () => value) };
}

function snippets(version) {
  const name = version.model.name;
  const pull = `modelyard-agent pull ${version.ref}\nmodelyard-agent serve --port 8080`;
  const parts = [h("h3", {}, "Pull it with the agent"), snippet(pull)];
  if (version.signature) {
    const inputs = version.signature.inputs.map((t) => ({ name: t.name, datatype: t.datatype, ...example(t.datatype, t.shape) }));
    const body = JSON.stringify({ inputs });
    const url = `http://127.0.0.1:8080/v2/models/${name}/versions/${version.number}/infer`;
    parts.push(h("h3", {}, "Call it over the Open Inference Protocol (V2)"),
      snippet(`curl -s ${url} \\\n  -H 'Content-Type: application/json' \\\n  -d '${body.replaceAll("'", "'\\''")}'`));
  }
  return parts;
}

function writes(version) {
  const out = h("div", { class: "result" });
  const fail = (err) => { out.replaceChildren(inlineError(err)); idle(); };
  const reload = () => go(paths.version(version.model.name, version.number), { replace: true });
  const alias = h("input", { name: "alias", placeholder: "alias, e.g. production", required: true, size: 16 });
  const promote = h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    try { busy(); await mutate(SET_ALIAS, { m: version.model.name, a: alias.value.trim(), v: String(version.number) }); reload(); } catch (err) { fail(err); }
  } }, h("strong", {}, "Point an alias here "), alias, h("button", { type: "submit" }, "Promote"));
  const archived = version.status === "ARCHIVED";
  const toggle = h("button", { type: "button", onclick: async () => {
    try { busy(); await mutate(archived ? RESTORE : ARCHIVE, { r: version.ref }); reload(); } catch (err) { fail(err); }
  } }, archived ? "Restore this version" : "Archive this version");
  const edit = editForm(version, 4, async (description, list) => {
    try { busy(); await mutate(UPDATE, { r: version.ref, d: description, t: list }); reload(); } catch (err) { fail(err); }
  });
  return h("details", { class: "writes" }, h("summary", {}, "Change this version (needs a write token)"),
    promote, h("div", { class: "row" }, toggle), edit, out);
}

function tensorTable(list) {
  return sortableTable([
    { label: "name", value: (t) => t.name },
    { label: "datatype", value: (t) => t.datatype },
    { label: "shape", value: (t) => JSON.stringify(t.shape) },
  ], list);
}

export async function render(where, frame) {
  const ref = `${where.name}:${where.number}`;
  const variables = { ref, name: where.name };
  frame.title(ref);
  frame.query(graphiqlHref(QUERY, variables));
  const { data, errors } = await run(QUERY, variables);
  const v = data?.version;
  if (!v) {
    if (errors.length && !errors.every((e) => e.extensions?.code === "NOT_FOUND")) return problem(errors);
    if (data?.model) return notFound(`${data.model.name} has no version ${where.number}`, { model: data.model });
    return notFound(`No model named ${where.name}`, { suggestions: data?.suggestModels || [] });
  }
  const name = v.model.name;
  const series = v.metricSeries.filter((s) => s.points.length > 1);
  const trail = trailOf(v, data.trail?.nodes || []);
  return h("div", {},
    h("p", { class: "crumbs" }, nav(paths.home(), "Models"), " / ", nav(paths.model(name), name), " / "),
    h("h1", {}, v.ref, " ", status(v.status), " ", v.aliases.map((a) => h("span", { class: "alias" }, `@${a.name}`))),
    errors.length ? problem(errors, "Some of this page could not be read") : null,
    h("div", { class: "facts" },
      h("span", {}, `created ${when(v.createdAt)}`, v.createdBy ? ` by ${v.createdBy}` : ""),
      h("span", {}, `${bytes(v.totalSize)} in ${v.artifacts.length} file${v.artifacts.length === 1 ? "" : "s"}`),
      h("span", {}, h("code", { title: "manifest digest: pins this version" }, v.manifestDigest.slice(0, 19), "…")),
      h("span", {}, tags(v.tags))),
    h("div", { class: "row actions" },
      nav(paths.lineage(name, v.number), "Lineage picture"),
      nav(paths.compare(v.ref, ""), "Compare with…")),
    v.description ? markdown(v.description) : null,
    section("Params", sortableTable([
      { label: "key", value: (p) => p.key },
      { label: "type", value: (p) => p.type.toLowerCase() },
      { label: "value", value: (p) => (typeof p.value === "number" ? p.value : show(p.value)), numeric: true, render: (p) => show(p.value) },
    ], v.params, { empty: "no params" })),
    section("Metrics", sortableTable([
      { label: "key", value: (m) => m.key },
      { label: "value", value: (m) => m.value, numeric: true, render: (m) => num(m.value) },
      { label: "step", value: (m) => m.step, numeric: true },
      { label: "logged", value: (m) => m.loggedAt, render: (m) => when(m.loggedAt) },
    ], v.metrics, { empty: "no metrics" }),
    series.length ? h("div", { class: "charts" }, series.map(metricChart)) : null),
    section("Lineage",
      v.parents.length ? h("ul", {}, v.parents.map((e) => h("li", {}, h("span", { class: "relation" }, e.relation), " ",
        refLink(e.parent.ref), e.parent.uri ? h("span", { class: "muted" }, ` (${e.parent.uri})`) : null))) : h("p", { class: "muted" }, "No parents."),
      v.children.length ? h("p", {}, "Children: ", v.children.flatMap((e, i) => [i ? ", " : "", refLink(e.child.ref), ` (${e.relation})`])) : null),
    v.run ? section("Run", h("dl", { class: "kv" }, Object.entries(v.run).filter(([, x]) => x).flatMap(([k, x]) => [
      h("dt", {}, k), h("dd", {}, k.endsWith("At") ? when(x) : show(x))]))) : null,
    section("Artifacts", sortableTable([
      { label: "path", value: (a) => a.path },
      { label: "size", value: (a) => a.size, numeric: true, render: (a) => bytes(a.size) },
      { label: "digest", value: (a) => a.digest, render: (a) => h("code", { title: a.digest }, `${a.digest.slice(0, 19)}…`) },
      { label: "", value: () => "", render: (a) => h("a", { href: `/api/blobs/${a.digest}`, download: a.path.split("/").pop() }, "download") },
    ], v.artifacts, { empty: "no artifacts" })),
    v.signature ? section("Signature", h("h3", {}, "Inputs"), tensorTable(v.signature.inputs), h("h3", {}, "Outputs"), tensorTable(v.signature.outputs)) : null,
    v.modelInfo ? section("Model info", h("dl", { class: "kv" },
      ["file", "irVersion", "producerName", "producerVersion", "parameterCount"].flatMap((k) => [h("dt", {}, k), h("dd", {}, show(v.modelInfo[k]))]),
      h("dt", {}, "opset"), h("dd", {}, JSON.stringify(v.modelInfo.opset)))) : null,
    section("Use it", ...snippets(v)),
    section("Audit trail", trail.length ? h("ol", { class: "timeline" }, trail.map((e) => h("li", {},
      h("time", { datetime: e.at }, when(e.at)), " ", h("code", {}, e.kind), " ", e.objectRef, " ",
      h("span", { class: "muted" }, `by ${e.actor}`), " ", h("div", { class: "changes" }, changeLines(e.changes)))))
      : h("p", { class: "muted" }, "No events you may read.")),
    writes(v));
}

