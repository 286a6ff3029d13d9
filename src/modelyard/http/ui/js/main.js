// The shell: header, token box, and the router that renders one page per location.

import { clear, h, nav } from "./dom.js";
import { token } from "./api.js";
import { go, onNavigate } from "./nav.js";
import { paths, route } from "./paths.js";
import * as home from "./pages/home.js";
import * as model from "./pages/model.js";
import * as version from "./pages/version.js";
import * as lineage from "./pages/lineage.js";
import * as compare from "./pages/compare.js";
import * as audit from "./pages/audit.js";
import * as missing from "./pages/missing.js";

const PAGES = { home, model, version, lineage, compare, audit, missing };
const app = document.getElementById("app");
let rendering = 0;

function tokenBox() {
  const input = h("input", { type: "password", name: "token", placeholder: "myd_… token", autocomplete: "off",
    "aria-label": "bearer token" });
  const state = h("span", { class: "muted" });
  const form = h("form", { class: "token", onsubmit: (e) => {
    e.preventDefault();
    if (input.value.trim()) token.set(input.value);
    input.value = "";
    show();
    render();
  } }, input, h("button", { type: "submit" }, "Use token"),
  h("button", { type: "button", onclick: () => { token.clear(); show(); render(); } }, "Forget"), state);

  function show() {
    const set = Boolean(token.get());
    state.textContent = set ? "token in use (this tab only)" : "anonymous";
    form.classList.toggle("signed-in", set);
  }
  show();
  return form;
}

function header() {
  return h("header", { class: "top" },
    h("a", { href: "/", "data-nav": "", class: "brand" }, "modelyard"),
    h("nav", {}, nav(paths.home(), "Models"), nav(paths.compare("", ""), "Compare"), nav(paths.audit(), "Audit"),
      h("a", { href: "/graphql" }, "GraphiQL")),
    tokenBox());
}

/** What a page gets to place its parts: a title and the GraphiQL link of its one document. */
function frame(main, queryLink) {
  return {
    title(text) { document.title = `${text} · modelyard`; },
    query(href) { queryLink.setAttribute("href", href); queryLink.hidden = false; },
    main,
  };
}

async function render() {
  const ticket = ++rendering;
  document.body.dataset.ready = "false";
  const where = route(window.location);
  const queryLink = h("a", { class: "query-link", hidden: true, title: "this page's GraphQL document, in GraphiQL" }, "query");
  const main = h("main", { "aria-busy": "true" }, h("p", { class: "muted" }, "Loading…"));
  const page = PAGES[where.page];
  const content = await page.render(where, frame(main, queryLink)).catch((e) =>
    h("div", { class: "problem" }, h("h1", {}, "This page failed"), h("p", {}, String(e && e.message || e))));
  if (ticket !== rendering) return;  // a newer navigation won
  clear(main).append(queryLink, content);
  main.setAttribute("aria-busy", "false");
  const existing = app.querySelector("main");
  if (existing) existing.replaceWith(main); else app.append(main);
  document.body.dataset.page = where.page;
  document.body.dataset.ready = "true";
}

document.addEventListener("click", (e) => {
  const a = e.target instanceof Element ? e.target.closest("a[data-nav]") : null;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  go(a.getAttribute("href"));
});
window.addEventListener("popstate", render);


onNavigate(render);
app.append(header());
render();
