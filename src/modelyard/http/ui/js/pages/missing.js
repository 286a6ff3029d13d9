// Not found: say what is missing and name what does exist instead.

import { h, nav } from "../dom.js";
import { paths } from "../paths.js";
import { aliasChips, versionLink } from "./common.js";

/** A not-found page: the closest model names, or the model's own versions and aliases. */
export function notFound(title, { suggestions = [], model = null } = {}) {
  const parts = [h("h1", {}, title)];
  if (model) {
    const numbers = model.versions.nodes.map((v) => v.number);
    parts.push(h("p", {}, `${model.name} has ${model.versions.totalCount} version${model.versions.totalCount === 1 ? "" : "s"}: `,
      numbers.length ? numbers.flatMap((n, i) => [i ? ", " : "", versionLink(model.name, n, `v${n}`)]) : "none yet",
      model.versions.totalCount > numbers.length ? " …" : ""));
    if (model.aliases.length) parts.push(h("p", {}, "Its aliases: ", aliasChips(model.name, model.aliases)));
    parts.push(h("p", {}, nav(paths.model(model.name), `All of ${model.name}`)));
  } else if (suggestions.length) {
    parts.push(h("p", {}, "Did you mean:"), h("ul", { class: "suggestions" }, suggestions.map((m) => h("li", {}, nav(paths.model(m.name), m.name)))));
  } else {
    parts.push(h("p", { class: "muted" }, "No model has a name close to it."));
  }
  parts.push(h("p", {}, nav(paths.home(), "All models")));
  return h("div", { class: "not-found" }, parts);
}

export async function render(where, frame) {
  frame.title("Not found");
  return notFound(`Nothing lives at ${where.path}`);
}
