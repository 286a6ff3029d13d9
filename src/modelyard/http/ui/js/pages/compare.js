// Two versions side by side (of one model or two), from the `compare(a, b)` field: params with
// changes marked and numeric deltas, metric deltas, artifacts by digest, differing parents.

import { graphiqlHref, run } from "../api.js";
import { bytes, h, nav, num, show } from "../dom.js";
import { go } from "../nav.js";
import { paths } from "../paths.js";
import { problem, refLink, section, status, splitRef } from "./common.js";

export const QUERY = `
query ComparePage($a: String!, $b: String!) {
  compare(a: $a, b: $b) {
    a { ref number status createdAt createdBy model { name } aliases { name } }
    b { ref number status createdAt createdBy model { name } aliases { name } }
    params { key change delta a { type value } b { type value } }
    metrics { key change delta a { value } b { value } }
    artifacts { path change sizeDelta a { digest size } b { digest size } }
    parents { relation side parent { __typename ... on ModelVersion { ref } ... on DatasetVersion { ref } } }
  }
}`;

function picker(a, b) {
  const boxA = h("input", { name: "a", value: a, placeholder: "name:3 or name@alias", required: true, size: 26, "aria-label": "version a" });
  const boxB = h("input", { name: "b", value: b, placeholder: "name:4 or name@production", required: true, size: 26, "aria-label": "version b" });
  return h("form", { class: "row", onsubmit: (e) => {
    e.preventDefault();
    go(paths.compare(boxA.value.trim(), boxB.value.trim()));
  } }, "Compare ", boxA, " with ", boxB, h("button", { type: "submit" }, "Compare"),
  h("button", { type: "button", class: "link", title: "swap", onclick: () => { [boxA.value, boxB.value] = [boxB.value, boxA.value]; } }, "⇄"));
}

function delta(value) {
  if (value === null || value === undefined) return "";
  return h("span", { class: "delta" }, `${value > 0 ? "+" : ""}${num(value)}`);
}

function diffTable(head, rows) {
  return h("div", { class: "table-wrap" }, h("table", { class: "diff" },
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: head.length, class: "muted" }, "none")))));
}

const rowClass = (change) => (change === "SAME" ? "" : `diff-${change.toLowerCase()}`);

function heads(c) {
  const card = (v, side) => h("div", { "data-side": side },
    h("strong", {}, side, " "), nav(paths.version(v.model.name, v.number), v.ref), " ", status(v.status), " ",
    v.aliases.map((x) => h("span", { class: "alias" }, `@${x.name}`)),
    h("div", { class: "muted" }, `created ${v.createdAt.slice(0, 16).replace("T", " ")}Z`, v.createdBy ? ` by ${v.createdBy}` : ""));
  return h("div", { class: "compare-heads" }, card(c.a, "a"), card(c.b, "b"));
}

export async function render(where, frame) {
  const a = where.query.get("a") || "";
  const b = where.query.get("b") || "";
  frame.title(a && b ? `${a} vs ${b}` : "Compare");
  const parts = [h("h1", {}, "Compare versions"), picker(a, b)];
  if (!a || !b) {
    parts.push(h("p", { class: "muted" }, "Name two versions: by number (", h("code", {}, "demo/iris-classifier:2"),
      "), alias (", h("code", {}, "demo/iris-classifier@production"), ") or digest; they may belong to two models."));
    return h("div", {}, parts);
  }
  const variables = { a, b };
  frame.query(graphiqlHref(QUERY, variables));
  const { data, errors } = await run(QUERY, variables);
  if (errors.length) parts.push(problem(errors));
  const c = data?.compare;
  if (!c) return h("div", {}, parts);
  const changed = (list) => list.filter((x) => x.change !== "SAME").length;
  parts.push(heads(c),
    section(`Params (${changed(c.params)} of ${c.params.length} differ)`, diffTable(["key", "a", "b", "change", "b − a"],
      c.params.map((p) => h("tr", { class: rowClass(p.change), "data-key": p.key, "data-change": p.change },
        h("td", {}, p.key), h("td", {}, show(p.a?.value)), h("td", {}, show(p.b?.value)),
        h("td", {}, p.change.toLowerCase()), h("td", { class: "num" }, delta(p.delta)))))),
    section(`Metrics (${changed(c.metrics)} of ${c.metrics.length} differ)`, diffTable(["key", "a", "b", "change", "b − a"],
      c.metrics.map((m) => h("tr", { class: rowClass(m.change), "data-key": m.key, "data-change": m.change },
        h("td", {}, m.key), h("td", { class: "num" }, num(m.a?.value)), h("td", { class: "num" }, num(m.b?.value)),
        h("td", {}, m.change.toLowerCase()), h("td", { class: "num" }, delta(m.delta)))))),
    section(`Artifacts (${changed(c.artifacts)} of ${c.artifacts.length} differ)`, diffTable(["path", "a", "b", "change", "size b − a"],
      c.artifacts.map((f) => h("tr", { class: rowClass(f.change), "data-path": f.path, "data-change": f.change },
        h("td", {}, f.path),
        h("td", {}, f.a ? [h("code", { title: f.a.digest }, f.a.digest.slice(7, 19)), " ", bytes(f.a.size)] : ""),
        h("td", {}, f.b ? [h("code", { title: f.b.digest }, f.b.digest.slice(7, 19)), " ", bytes(f.b.size)] : ""),
        h("td", {}, f.change.toLowerCase()), h("td", { class: "num" }, f.sizeDelta ? `${f.sizeDelta > 0 ? "+" : "−"}${bytes(Math.abs(f.sizeDelta))}` : ""))))),
    section("Lineage parents", diffTable(["relation", "parent", "in"],
      c.parents.map((p) => h("tr", { class: p.side === "BOTH" ? "" : p.side === "A_ONLY" ? "diff-removed" : "diff-added", "data-side": p.side },
        h("td", {}, h("span", { class: "relation" }, p.relation)), h("td", {}, refLink(p.parent.ref)),
        h("td", {}, p.side === "BOTH" ? "both" : p.side === "A_ONLY" ? "a only" : "b only"))))));
  const versionA = splitRef(c.a.ref);
  if (versionA) parts.push(h("p", {}, nav(paths.lineage(versionA.name, versionA.number), `Lineage of ${c.a.ref}`)));
  return h("div", {}, parts);
}
