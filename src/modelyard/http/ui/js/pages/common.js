// Pieces several pages share: the API's errors shown as they are, refs, status badges.

import { h, nav, show } from "../dom.js";
import { paths } from "../paths.js";

/** The API's errors, each with its code; a hint for the ones a token would change. */
export function problem(errors, what = "The registry refused this page") {
  const codes = new Set(errors.map((e) => e.extensions?.code));
  const hint = codes.has("UNAUTHENTICATED") || codes.has("FORBIDDEN") || codes.has("TOKEN_EXPIRED")
    ? h("p", { class: "hint" }, "Reads may need a token: paste one above (it stays in this tab only).") : null;
  return h("div", { class: "problem", role: "alert" }, h("h1", {}, what),
    h("ul", {}, errors.map((e) => h("li", {}, h("code", {}, e.extensions?.code || "ERROR"), " ", e.message))), hint);
}

/** An error shown inline beside a form, as the API gave it. */
export function inlineError(error) {
  const errors = error.errors || [{ message: String(error.message || error) }];
  return h("div", { class: "problem small", role: "alert" },
    errors.map((e) => h("p", {}, h("code", {}, e.extensions?.code || "ERROR"), " ", e.message)));
}

export function status(value) {
  return h("span", { class: ["badge", `status-${String(value).toLowerCase()}`] }, value);
}

export function versionLink(model, number, text) {
  return nav(paths.version(model, number), text || `${model}:${number}`);
}

export function refLink(ref) {
  return nav(paths.ref(ref), ref);
}

export function aliasChips(model, aliases) {
  return aliases.map((a) => nav(paths.version(model, a.version ? a.version.number : a.number), h("span", { class: "alias" }, `@${a.name}`)));
}

export function section(title, ...children) {
  return h("section", {}, h("h2", {}, title), ...children);
}

export function tags(list) {
  return list.length ? h("ul", { class: "tags" }, list.map((t) => h("li", {}, h("span", { class: "k" }, t.key), "=", h("span", { class: "v" }, t.value))))
    : h("span", { class: "muted" }, "none");
}

/** The model name and number of a `name:N` ref. */
export function splitRef(ref) {
  const m = /^(.+):(\d+)$/.exec(ref || "");
  return m ? { name: m[1], number: Number(m[2]) } : null;
}

/** One field of an audit event's changes as text: `before → after`, and logged metric points
 * summed up per key (`train_loss ×32`) instead of spelled out. */
export function changeText(field, change) {
  const before = change && typeof change === "object" && "after" in change ? change.before : undefined;
  const after = change && typeof change === "object" && "after" in change ? change.after : change;
  const text = (value) => (isPoints(value) ? points(value) : show(value));
  return `${before === null || before === undefined ? "" : `${text(before)} → `}${text(after)}`;
}

function isPoints(value) {
  return Array.isArray(value) && value.length > 0 && value.every((p) => p && typeof p === "object" && "key" in p && "value" in p);
}

function points(list) {
  const counts = new Map();
  for (const p of list) counts.set(p.key, (counts.get(p.key) || 0) + 1);
  return `${list.length} point${list.length === 1 ? "" : "s"}: ${[...counts].map(([k, n]) => (n > 1 ? `${k} ×${n}` : k)).join(", ")}`;
}

/** An event's changes, one line per field, each cut to `limit` characters (the whole in a tooltip). */
export function changeLines(changes, limit = 160) {
  return Object.entries(changes).map(([field, change]) => {
    const text = changeText(field, change);
    return h("div", { title: text.length > limit ? text : null }, h("strong", {}, field), ": ",
      text.length > limit ? `${text.slice(0, limit - 1)}…` : text);
  });
}

/** The description and tags editor of a model or a version; `save(description, tags)` runs the mutation. */
export function editForm(item, rows, save) {
  const description = h("textarea", { name: "description", rows }, item.description);
  const tagText = h("input", { name: "tags", size: 40, value: item.tags.map((t) => `${t.key}=${t.value}`).join(", "),
    "aria-label": "tags as key=value, comma separated" });
  return h("form", { class: "edit", onsubmit: (e) => {
    e.preventDefault();
    const list = tagText.value.split(",").map((t) => t.trim()).filter(Boolean).map((t) => {
      const at = t.indexOf("=");
      return at < 0 ? { key: t, value: "" } : { key: t.slice(0, at).trim(), value: t.slice(at + 1).trim() };
    });
    save(description.value, list);
  } }, h("label", {}, "Description (Markdown)", description), h("label", {}, "Tags ", tagText),
  h("button", { type: "submit" }, "Save"));
}
