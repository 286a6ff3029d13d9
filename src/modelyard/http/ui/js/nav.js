// Navigation inside the UI without reloading: pages call `go`; the shell renders.

let render = () => {};

/** Called once by the shell with its render function. */
export function onNavigate(fn) {
  render = fn;
}

/** Mark the page as busy (a write is on its way): tests and scripts wait for `data-ready`. */
export function busy() {
  document.body.dataset.ready = "false";
}

/** The write is over (it failed and the page stays). */
export function idle() {
  document.body.dataset.ready = "true";
}

/** Show another UI path (pushed on the history, or replacing the current entry). */
export function go(path, { replace = false } = {}) {
  document.body.dataset.ready = "false";
  if (replace) history.replaceState(null, "", path); else history.pushState(null, "", path);
  render();
}
