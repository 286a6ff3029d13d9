// Metric history as a line chart (uPlot, served from /ui/vendor): x is the step when every
// point has one, else the time it was logged.

import { h } from "./dom.js";

export function metricChart(series) {
  const box = h("figure", { class: "chart", "data-metric": series.key },
    h("figcaption", {}, series.key, h("span", { class: "muted" }, ` · ${series.points.length} points`)));
  const stepped = series.points.every((p) => p.step !== null && p.step !== undefined);
  const points = [...series.points].sort((a, b) => (stepped ? a.step - b.step : a.loggedAt.localeCompare(b.loggedAt)));
  const xs = points.map((p) => (stepped ? Number(p.step) : new Date(p.loggedAt).getTime() / 1000));
  const ys = points.map((p) => p.value);
  box.dataset.axis = stepped ? "step" : "time";
  requestAnimationFrame(() => {
    if (typeof uPlot === "undefined") {
      box.append(h("p", { class: "muted" }, "(chart library missing: run scripts/fetch_assets.py)"));
      return;
    }
    const width = Math.max(260, Math.min(560, box.clientWidth || 480));
    // eslint-disable-next-line no-undef
    new uPlot({
      width, height: 180,
      scales: { x: { time: !stepped } },
      axes: [{ label: stepped ? "step" : "" }, {}],
      series: [{ label: stepped ? "step" : "time" }, { label: series.key, stroke: "#2563eb", width: 2, points: { show: points.length < 60 } }],
      legend: { show: true },
    }, [xs, ys], box);
  });
  return box;
}
