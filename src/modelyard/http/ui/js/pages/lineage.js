// The lineage picture around a version: ancestors and descendants to a chosen depth.

import { graphiqlHref, run } from "../api.js";
import { h, nav } from "../dom.js";
import { downloadLink, lineageSvg } from "../graph.js";
import { go } from "../nav.js";
import { paths } from "../paths.js";
import { problem } from "./common.js";

export const QUERY = `
query LineagePage($ref: String!, $direction: LineageDirection!, $depth: Int!) {
  lineage(ref: $ref, direction: $direction, depth: $depth) {
    root { ref }
    nodes {
      __typename
      ... on ModelVersion { ref number status model { name } }
      ... on DatasetVersion { ref uri }
    }
    edges {
      relation depth
      child { ref }
      parent { __typename ... on ModelVersion { ref } ... on DatasetVersion { ref } }
    }
  }
}`;

const DEPTHS = [1, 2, 3, 5, 10, 20, 50, 100];

export async function render(where, frame) {
  const ref = `${where.name}:${where.number}`;
  const direction = ["UP", "DOWN", "BOTH"].includes(where.query.get("direction")) ? where.query.get("direction") : "BOTH";
  const depth = DEPTHS.includes(Number(where.query.get("depth"))) ? Number(where.query.get("depth")) : 3;
  const variables = { ref, direction, depth };
  frame.title(`Lineage of ${ref}`);
  frame.query(graphiqlHref(QUERY, variables));
  const { data, errors } = await run(QUERY, variables);
  const controls = h("form", { class: "row", onchange: (e) => {
    const form = e.currentTarget;
    go(paths.lineage(where.name, where.number, new URLSearchParams({ direction: form.direction.value, depth: form.depth.value })));
  } },
  h("label", {}, "Direction ", h("select", { name: "direction" }, [["BOTH", "ancestors and descendants"], ["UP", "ancestors"], ["DOWN", "descendants"]]
    .map(([v, t]) => h("option", { value: v, selected: v === direction }, t)))),
  h("label", {}, "Depth ", h("select", { name: "depth" }, DEPTHS.map((d) => h("option", { value: d, selected: d === depth }, String(d))))));
  const head = [h("p", { class: "crumbs" }, nav(paths.home(), "Models"), " / ", nav(paths.model(where.name), where.name), " / ",
    nav(paths.version(where.name, where.number), `v${where.number}`), " / "), h("h1", {}, `Lineage of ${ref}`), controls];
  if (!data?.lineage) return h("div", {}, head, problem(errors));
  const svg = lineageSvg(data.lineage);
  const graph = data.lineage;
  return h("div", {}, head,
    errors.length ? problem(errors, "Some of this page could not be read") : null,
    h("p", { class: "row" }, `${graph.nodes.length} nodes, ${graph.edges.length} edges`, downloadLink(svg, `lineage-${ref.replaceAll("/", "_").replace(":", "-")}`),
      h("span", { class: "legend" }, h("span", { class: "key version" }, "model version"), h("span", { class: "key dataset" }, "dataset"),
        h("span", { class: "key current" }, "this version"))),
    h("div", { class: "graph" }, svg));
}
