// Building the page with DOM calls only: every string becomes a text node or an attribute
// value, never markup, so a catalog string holding `<script>` shows as those characters.

const SVG_NS = "http://www.w3.org/2000/svg";

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function setAttrs(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "href") {
      el.setAttribute("href", safeHref(value));
    } else if (name === "class") {
      el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
}

/** An HTML element: h("a", {href: "/x"}, "text", child, [more]). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, children);
}

/** An SVG element, the same way. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (name === "href") el.setAttribute("href", safeHref(value));
    else el.setAttribute(name, String(value));
  }
  return append(el, children);
}

/** Links go to this site's paths or to http(s) URLs; anything else (javascript:, data:) is dropped. */
export function safeHref(value) {
  const text = String(value);
  if (text.startsWith("/") && !text.startsWith("//")) return text;
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : "#";
  } catch {
    return "#";
  }
}

/** A link inside the UI: followed without reloading the page. */
export function nav(path, ...children) {
  return h("a", { href: path, "data-nav": "" }, ...children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// --- formatting -------------------------------------------------------------------------------

export function num(value) {
  if (typeof value !== "number") return value === null || value === undefined ? "" : String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(3);
  return String(Number(value.toPrecision(6)));
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toISOString().replace("T", " ").slice(0, 16) + "Z";
}

export function ago(iso) {
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  const steps = [[60, "s", 1], [3600, "min", 60], [86400, "h", 3600], [2592000, "d", 86400]];
  for (const [limit, unit, size] of steps) if (seconds < limit) return `${Math.max(0, Math.floor(seconds / size))} ${unit} ago`;
  return when(iso).slice(0, 10);
}

/** A JSON value as compact text for a table cell. */
export function show(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return num(value);
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A table whose header cells sort it: columns [{label, value(row), render?(row), numeric?}]. */
export function sortableTable(columns, rows, { empty = "nothing to show", className = "" } = {}) {
  let order = { index: -1, descending: false };
  const body = h("tbody");
  const heads = columns.map((col, index) => h("th", {
    class: col.numeric ? "num" : "",
    scope: "col",
    tabindex: "0",
    title: "sort",
    onclick: () => sortBy(index),
    onkeydown: (e) => { if (e.key === "Enter") sortBy(index); },
  }, col.label));

  function sortBy(index) {
    order = { index, descending: order.index === index ? !order.descending : false };
    heads.forEach((th, i) => th.setAttribute("aria-sort", i === index ? (order.descending ? "descending" : "ascending") : "none"));
    fill();
  }

  function key(row) {
    const v = columns[order.index].value(row);
    return v === null || v === undefined || v === "" ? null : v;
  }

  function fill() {
    clear(body);
    let sorted = rows;
    if (order.index >= 0) {
      sorted = [...rows].sort((a, b) => {
        const x = key(a), y = key(b);
        if (x === null && y === null) return 0;
        if (x === null) return 1;  // missing values last, either way
        if (y === null) return -1;
        const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y), "en", { numeric: true });
        return order.descending ? -c : c;
      });
    }
    if (!sorted.length) body.append(h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, empty)));
    for (const row of sorted) {
      body.append(h("tr", {}, columns.map((col) => h("td", { class: col.numeric ? "num" : "" },
        col.render ? col.render(row) : show(col.value(row))))));
    }
  }

  fill();
  return h("div", { class: "table-wrap" }, h("table", { class: className }, h("thead", {}, h("tr", {}, heads)), body));
}

/** A copy-ready code block with a Copy button. */
export function snippet(text) {
  const code = h("code", {}, text);
  const button = h("button", { type: "button", class: "copy", onclick: async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = "Selected";
    }
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  } }, "Copy");
  return h("div", { class: "snippet" }, h("pre", {}, code), button);
}

/** A tiny Markdown subset (headings, paragraphs, lists, code), built as text nodes. */
export function markdown(text) {
  const out = h("div", { class: "markdown" });
  const lines = String(text || "").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.startsWith("```")) {
      const code = [];
      i += 1;
      while (i < lines.length && !lines[i].startsWith("```")) { code.push(lines[i]); i += 1; }
      out.append(h("pre", {}, h("code", {}, code.join("\n"))));
      i += 1;
    } else if (/^#{1,6}\s/.test(line)) {
      const level = Math.min(line.indexOf(" "), 4) + 2;
      out.append(h(`h${Math.min(level, 6)}`, {}, inline(line.replace(/^#+\s*/, ""))));
      i += 1;
    } else if (/^\s*[-*]\s/.test(line)) {
      const items = [];
      while (i < lines.length && /^\s*[-*]\s/.test(lines[i])) { items.push(h("li", {}, inline(lines[i].replace(/^\s*[-*]\s/, "")))); i += 1; }
      out.append(h("ul", {}, items));
    } else if (line.trim() === "") {
      i += 1;
    } else {
      const para = [];
      while (i < lines.length && lines[i].trim() !== "" && !/^(#{1,6}\s|```|\s*[-*]\s)/.test(lines[i])) { para.push(lines[i]); i += 1; }
      out.append(h("p", {}, inline(para.join(" "))));
    }
  }
  return out;
}

function inline(text) {
  // `code` spans only; everything else stays text.
  return text.split(/(`[^`]+`)/).map((part) => (part.startsWith("`") && part.endsWith("`") && part.length > 1
    ? h("code", {}, part.slice(1, -1)) : part));
}
