// "Ask my files": one question at a time to /v1/ask, answered from the passages of the folder the
// server was started with (`serve --docs DIR`). The answer's [n] markers become buttons that open
// and scroll to source n: its file:line and the passage itself, both shown as text.

import { events } from "./api.js";
import { clear, fill, h } from "./dom.js";
import { finish, replyTurn, userTurn } from "./turns.js";

const TOP = 4;
const MARKER = /\[(\d+(?:\s*,\s*\d+)*)\]/g;

/** How to turn the mode on, for a server started without --docs (or too old to have /v1/ask). */
function enableHelp(code) {
  if (code === "no_docs") {
    return h("div", { class: "help" },
      h("p", {}, "Ask my files answers from a folder of .txt and .md files, which the agent indexes when it starts. "
        + "Start it with the folder:"),
      h("pre", {}, h("code", {}, "modelyard-agent serve --docs DIR")),
      h("p", { class: "muted" }, "Add --embedder REF to choose the pulled embedding model that indexes it."));
  }
  return h("div", { class: "help" },
    h("p", {}, "This agent has no /v1/ask: update modelyard-agent, then start it with "),
    h("pre", {}, h("code", {}, "modelyard-agent serve --docs DIR")));
}

/** The answer's text with each [n] (or [n, m]) naming a known source turned into buttons. */
export function cited(text, sources, reveal) {
  const out = [];
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    const numbers = match[1].split(",").map((n) => Number(n.trim()));
    if (!numbers.every((n) => sources.has(n))) continue;
    out.push(text.slice(last, match.index), "[");
    const separators = match[1].match(/\s*,\s*/g) || [];  // kept as written: the text reads the same
    numbers.forEach((n, i) => {
      const source = sources.get(n);
      if (i) out.push(separators[i - 1]);
      out.push(h("button", {
        type: "button", class: "cite", dataset: { n: String(n) }, title: `${source.file}:${source.line}`,
        "aria-label": `source ${n}, ${source.file} line ${source.line}`, onclick: () => reveal(n),
      }, String(n)));
    });
    out.push("]");
    last = match.index + match[0].length;
  }
  out.push(text.slice(last));
  return out.filter((part) => part !== "");
}

function sourceItem(source) {
  return h("li", { class: "source", tabindex: "-1", dataset: { n: String(source.n) } },
    h("div", { class: "where" },
      h("span", { class: "n" }, `[${source.n}]`), " ",
      h("span", { class: "file" }, `${source.file}:${source.line}`),
      typeof source.score === "number" ? h("span", { class: "score muted" }, ` score ${source.score.toFixed(2)}`) : null),
    h("blockquote", { class: "passage" }, source.text));
}

export class Ask {
  constructor(app) {
    this.app = app;
    this.log = h("section", {
      class: "log", id: "ask-log", "aria-label": "answers from your files", "aria-live": "polite",
      "data-empty": "Ask a question about the files the agent was started with (serve --docs DIR). "
        + "Answers cite the passages they use: click a [n] to see it.",
    });
  }

  clear() {
    clear(this.log);
  }

  /** One question: its sources, then the answer streamed with citations. Resolves when it ended. */
  async send(question, model, settings, signal) {
    this.log.append(userTurn(question));
    const reply = replyTurn("answer", model.id);
    const list = h("ol", { class: "sources" });
    const summary = h("summary", {}, "sources");
    const box = h("details", { class: "sources", hidden: true }, summary, list);
    reply.el.append(box);
    this.log.append(reply.el);
    this.app.follow(true);

    const sources = new Map();
    let content = "";
    let done = null;
    let state = "done";
    let error = null;
    let code = null;
    let named = null;  // the version the server says answers (`name:N`)
    const reveal = (n) => {
      box.open = true;
      for (const item of list.children) item.classList.toggle("shown", item.dataset.n === String(n));
      const item = list.querySelector(`li[data-n="${n}"]`);
      if (item) {
        item.scrollIntoView({ block: "center" });  // clear of the sticky header and composer
        item.focus({ preventScroll: true });
      }
    };
    try {
      const body = {
        model: model.id, question, top: TOP, stream: true,
        ...(settings.temperature !== null ? { temperature: settings.temperature } : {}),
        ...(settings.maxTokens !== null ? { max_tokens: settings.maxTokens } : {}),
      };
      for await (const event of events("/v1/ask", body, signal)) {
        if (typeof event.model === "string") named = event.model;
        if (event.type === "sources" && Array.isArray(event.sources)) {
          for (const s of event.sources) sources.set(Number(s.n), { ...s, n: Number(s.n), file: String(s.file), text: String(s.text ?? "") });
          fill(list, [...sources.values()].map(sourceItem));
          fill(summary, `${sources.size} passage${sources.size === 1 ? "" : "s"} from your files`);
          box.hidden = sources.size === 0;
        } else if (event.type === "delta" && typeof event.content === "string") {
          content += event.content;
          fill(reply.text, cited(content, sources, reveal));
          this.app.follow();
        } else if (event.type === "done") {
          done = event;
        }
      }
    } catch (err) {
      state = err.name === "AbortError" ? "stopped" : "error";
      if (state === "error") {
        error = err.message;
        code = err.code;
      }
    }
    const used = new Set(done && Array.isArray(done.cited) ? done.cited.map(Number) : []);
    for (const item of list.children) {
      if (used.has(Number(item.dataset.n))) {
        item.classList.add("cited");
        item.querySelector(".where").append(h("span", { class: "badge" }, "cited"));
      }
    }
    // No model runs for an error or when nothing in the files matched; else the events name the
    // version (older servers did not: the id meant this one when the list was read).
    const ran = content && state !== "error" && !(done && done.grounded === false);
    const answered = ran ? named || (model.modelyard && model.modelyard.ref) || null : null;
    finish(reply, state, { model: answered, digest: answered ? this.app.digestOf(answered) : null,
      reason: done ? done.finish_reason : null, error });
    if (done && done.attributed && used.size) {
      // The model cited nothing itself: the server matched its sentences to sources by content.
      reply.el.insertBefore(h("p", { class: "attributed" }, "Drawn from ",
        cited([...used].map((n) => `[${n}]`).join(" "), sources, reveal), " (matched by content: the model cited none)"), reply.meta);
    }
    if (done && done.grounded === false) {
      reply.el.insertBefore(h("p", { class: "ungrounded", role: "note" },
        "Not grounded: no passage of your files was close enough to the question, so no model answered."), reply.meta);
    }
    if (code === "no_docs" || code === "unknown_url") reply.el.append(enableHelp(code));
    this.app.follow();
    return state;
  }
}
