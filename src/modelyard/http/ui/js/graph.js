// The lineage picture: nodes and edges from `lineage(...)`, laid out by dagre (served from
// /ui/vendor), drawn as SVG. Parents above children; model versions are boxes, datasets are
// rounded pills; the current version is highlighted; each node links to its page.

import { h, s } from "./dom.js";
import { paths } from "./paths.js";

const CHAR = 7.4;  // px per character of the 12px monospace label
const PAD = 14;

/** The picture's look for a downloaded SVG (which has no page stylesheet): the page's own
 * `.node` and `.edge` rules from app.css, so the two never differ. */
function svgStyle() {
  return [...document.styleSheets].flatMap((sheet) => [...sheet.cssRules])
    .filter((rule) => /^\.(node|edge)\b/.test(rule.selectorText || "")).map((rule) => rule.cssText).join("\n");
}

function label(node) {
  return node.__typename === "DatasetVersion" ? node.ref : node.ref;
}

/** Lay out and draw; returns {svg, count}. */
export function lineageSvg(graph) {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: "TB", nodesep: 28, ranksep: 56, edgesep: 14, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  const rootRef = graph.root.ref;
  for (const node of graph.nodes) {
    const text = label(node);
    g.setNode(node.ref, { node, width: Math.max(90, text.length * CHAR + 2 * PAD), height: 40 });
  }
  for (const edge of graph.edges) {
    const text = edge.relation.toLowerCase().replaceAll("_", " ");
    g.setEdge(edge.parent.ref, edge.child.ref, { edge, label: text, width: text.length * 5.6 + 8, height: 14, labelpos: "c" },
      `${edge.relation}|${edge.parent.ref}|${edge.child.ref}`);
  }
  performance.mark("lineage-layout-start");
  dagre.layout(g);
  performance.measure("lineage-layout", "lineage-layout-start");  // read by scripts/bench/ui.py
  const { width, height } = g.graph();
  const svg = s("svg", { xmlns: "http://www.w3.org/2000/svg", class: "lineage", viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
    width: Math.ceil(width), height: Math.ceil(height), role: "img", "aria-label": `lineage of ${rootRef}` },
  s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    s("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#6b7280" }))));
  for (const id of g.edges()) {
    const e = g.edge(id);
    const d = e.points.map((p, i) => `${i ? "L" : "M"} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(" ");
    svg.append(s("g", { class: "edge", "data-parent": e.edge.parent.ref, "data-child": e.edge.child.ref, "data-relation": e.edge.relation },
      s("path", { d, "marker-end": "url(#arrow)" }),
      s("rect", { x: (e.x - e.width / 2).toFixed(1), y: (e.y - e.height / 2).toFixed(1), width: e.width.toFixed(1), height: e.height, rx: 3 }),
      s("text", { x: e.x.toFixed(1), y: (e.y + 3.5).toFixed(1), "text-anchor": "middle" }, e.label)));
  }
  for (const id of g.nodes()) {
    const n = g.node(id);
    const node = n.node;
    const dataset = node.__typename === "DatasetVersion";
    const classes = ["node", dataset ? "dataset" : "version", node.ref === rootRef ? "current" : "",
      node.status === "ARCHIVED" ? "archived" : ""].filter(Boolean).join(" ");
    const x = n.x - n.width / 2, y = n.y - n.height / 2;
    svg.append(s("a", { href: dataset ? paths.ref(node.ref) : paths.version(node.model.name, node.number), "data-nav": "" },
      s("g", { class: classes, "data-ref": node.ref, "data-kind": dataset ? "dataset" : "version" },
        s("title", {}, dataset ? `dataset ${node.ref}${node.uri ? ` (${node.uri})` : ""}` : `${node.ref} (${node.status})`),
        s("rect", { x: x.toFixed(1), y: y.toFixed(1), width: n.width.toFixed(1), height: n.height, rx: dataset ? 20 : 4 }),
        s("text", { class: "kind", x: n.x.toFixed(1), y: (y + 13).toFixed(1), "text-anchor": "middle" }, dataset ? "dataset" : "model version"),
        s("text", { x: n.x.toFixed(1), y: (y + 29).toFixed(1), "text-anchor": "middle" }, label(node)))));
  }
  return svg;
}

/** A link that saves the picture as a standalone SVG file. */
export function downloadLink(svg, name) {
  return h("a", { href: "#", class: "button", download: `${name}.svg`, onclick: (e) => {
    const copy = svg.cloneNode(true);
    const style = document.createElementNS("http://www.w3.org/2000/svg", "style");
    style.textContent = svgStyle();
    copy.insertBefore(style, copy.firstChild);
    const text = `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(copy)}`;
    e.currentTarget.href = URL.createObjectURL(new Blob([text], { type: "image/svg+xml" }));
  } }, "Download SVG");
}
