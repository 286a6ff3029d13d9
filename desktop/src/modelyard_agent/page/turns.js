// The pieces a conversation is made of: a message, a reply being written, its footer.

import { h, fill, short } from "./dom.js";

/** The user's message, as text. */
export function userTurn(text) {
  return h("article", { class: "turn user" }, h("div", { class: "who" }, "you"), h("div", { class: "text" }, text));
}

/** A reply being written: `.text` fills as it streams; `data-state` is streaming, done, stopped or error. */
export function replyTurn(kind, who) {
  const text = h("div", { class: "text" });
  const meta = h("footer", { class: "meta" });
  const el = h("article", { class: ["turn", kind], dataset: { state: "streaming" }, "aria-busy": "true" },
    h("div", { class: "who" }, who), text, meta);
  return { el, text, meta };
}

/** Mark a reply finished in `state`, with its footer: which build answered, tokens, how it ended. */
export function finish(reply, state, { model = null, digest = null, tokens = null, reason = null, error = null } = {}) {
  reply.el.dataset.state = state;
  reply.el.removeAttribute("aria-busy");
  const parts = [];
  if (model) {
    parts.push(h("span", { class: "answered" }, "answered by ", h("span", { class: "ref" }, model),
      digest ? [" ", h("code", { class: "digest", title: digest }, short(digest))] : null));
  }
  if (tokens !== null && tokens !== undefined) parts.push(h("span", {}, `${tokens} token${tokens === 1 ? "" : "s"}`));
  if (state === "stopped") parts.push(h("span", { class: "ended" }, "stopped"));
  else if (reason === "length") parts.push(h("span", { class: "ended" }, "cut at max tokens"));
  else if (reason === "repetition") parts.push(h("span", { class: "ended" }, "cut: it began to repeat itself"));
  fill(reply.meta, parts.map((p, i) => (i ? [" · ", p] : p)));
  if (error) reply.el.append(h("p", { class: "error", role: "alert" }, error));
}
