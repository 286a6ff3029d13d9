// The chat page of `modelyard-agent serve`: pick a pulled chat model, then chat or ask your files.

import { listModels } from "./api.js";
import { Ask } from "./ask.js";
import { Chat } from "./chat.js";
import { fill, h } from "./dom.js";

const CHAT_TASK = "text-generation";
const REMEMBERED = "modelyard-agent.model";

function remembered() {
  try {
    return localStorage.getItem(REMEMBERED);
  } catch {
    return null;  // storage off: pick the first model
  }
}

function remember(id) {
  try {
    localStorage.setItem(REMEMBERED, id);
  } catch {
    // storage off: nothing to keep
  }
}

/** The field's number, or null for the server's default; a value out of range goes as is (the
 * server's 400 names it, in the reply). */
function numberOrNull(input) {
  const value = input.value.trim();
  return value === "" ? null : Number(value);
}

class App {
  constructor(root) {
    this.models = [];
    this.controller = null;  // the AbortController of the reply being written
    this.select = h("select", { id: "model", name: "model", onchange: () => this.picked() });
    this.build = h("p", { class: "build", id: "build", "aria-live": "polite" });
    this.modeButtons = {
      chat: h("button", { type: "button", class: "mode", "aria-pressed": "true", onclick: () => this.mode("chat") }, "Chat"),
      ask: h("button", { type: "button", class: "mode", "aria-pressed": "false", onclick: () => this.mode("ask") }, "Ask my files"),
    };
    this.newChat = h("button", { type: "button", class: "new", onclick: () => this.restart() }, "New chat");
    this.notice = h("p", { class: "notice", role: "status", hidden: true });
    this.chat = new Chat(this);
    this.ask = new Ask(this);
    this.current = this.chat;
    this.input = h("textarea", {
      id: "input", name: "message", rows: "2", "aria-label": "message", placeholder: "Message… (Enter sends, Shift+Enter for a new line)",
      onkeydown: (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.form.requestSubmit();
        } else if (e.key === "Escape" && this.controller) {
          this.stop();
        }
      },
    });
    this.sendButton = h("button", { type: "submit", class: "send" }, "Send");
    this.stopButton = h("button", { type: "button", class: "stop", disabled: true, onclick: () => this.stop() }, "Stop");
    this.temperature = h("input", { type: "number", name: "temperature", min: "0", max: "2", step: "0.1", placeholder: "default", inputmode: "decimal" });
    this.maxTokens = h("input", { type: "number", name: "max_tokens", min: "1", step: "1", placeholder: "default", inputmode: "numeric" });
    this.system = h("textarea", { name: "system", rows: "2", placeholder: "none" });
    this.settings = h("details", { class: "settings" }, h("summary", {}, "Settings"),
      h("label", {}, "temperature", this.temperature),
      h("label", {}, "max tokens", this.maxTokens),
      this.systemLabel = h("label", { class: "wide" }, "system prompt", this.system));
    // novalidate: a setting out of range goes to the server, whose 400 names it in the reply.
    this.form = h("form", { class: "composer", novalidate: true, onsubmit: (e) => { e.preventDefault(); this.send(); } },
      this.input, h("div", { class: "buttons" }, this.sendButton, this.stopButton), this.settings);
    this.main = h("main", {}, this.notice, this.chat.log, this.ask.log);
    fill(root,
      h("header", { class: "top" },
        h("span", { class: "brand" }, "modelyard-agent"),
        h("label", { class: "picker" }, "model", this.select),
        h("nav", { class: "modes", "aria-label": "mode" }, this.modeButtons.chat, this.modeButtons.ask),
        this.newChat,
        this.build),
      this.main, this.form);
    this.mode(location.hash === "#ask" ? "ask" : "chat");
  }

  async load() {
    try {
      this.models = (await listModels()).filter((m) => (m.modelyard ? m.modelyard.task : m.task) === CHAT_TASK);
    } catch (err) {
      this.say(`Could not list the models: ${err.message}`);
      this.ready();
      return;
    }
    if (!this.models.length) {
      this.say("No chat model is pulled yet. Pull a text-generation version, then reload: modelyard-agent pull NAME@ALIAS");
    }
    fill(this.select, this.models.map((m) => h("option", { value: m.id }, m.id)));
    const keep = remembered();
    if (this.models.some((m) => m.id === keep)) this.select.value = keep;
    this.picked(false);
  }

  model() {
    return this.models.find((m) => m.id === this.select.value) || null;
  }

  /** The manifest digest of a version (`name:N`) on the model list, if it is there. */
  digestOf(ref) {
    const entry = this.models.find((m) => m.modelyard && m.modelyard.ref === ref);
    return entry ? entry.modelyard.manifest_digest : null;
  }

  picked(save = true) {
    const model = this.model();
    if (save && model) remember(model.id);
    const info = model && model.modelyard;
    fill(this.build, info ? [
      h("span", { class: "ref" }, info.ref), " ",
      h("span", { class: "version" }, `v${info.version}`), " ",
      h("code", { class: "digest", title: "manifest digest" }, info.manifest_digest),
    ] : model ? h("span", { class: "ref" }, model.id) : null);
    this.ready();
  }

  mode(name) {
    this.current = name === "ask" ? this.ask : this.chat;
    for (const [key, button] of Object.entries(this.modeButtons)) button.setAttribute("aria-pressed", String(key === name));
    this.chat.log.hidden = name !== "chat";
    this.ask.log.hidden = name !== "ask";
    this.systemLabel.hidden = name !== "chat";  // /v1/ask writes its own prompt around the sources
    this.newChat.textContent = name === "ask" ? "Clear" : "New chat";
    this.input.placeholder = name === "ask" ? "Ask about your files…" : "Message… (Enter sends, Shift+Enter for a new line)";
    history.replaceState(null, "", name === "ask" ? "#ask" : location.pathname);
    document.body.dataset.mode = name;
  }

  say(text) {
    this.notice.hidden = !text;
    fill(this.notice, text || "");
  }

  ready() {
    const idle = !this.controller;
    this.sendButton.disabled = !idle || !this.model();
    this.stopButton.disabled = idle;
    for (const button of Object.values(this.modeButtons)) button.disabled = !idle;
    document.body.dataset.busy = String(!idle);
    document.body.dataset.ready = "true";
  }

  /** Keep the newest text in view while the reader is at the bottom (or when `force`d). */
  follow(force = false) {
    const el = document.scrollingElement;
    if (force || el.scrollHeight - el.scrollTop - el.clientHeight < 120) el.scrollTop = el.scrollHeight;
  }

  async send() {
    const text = this.input.value.trim();
    const model = this.model();
    if (!text || !model || this.controller) return;
    this.input.value = "";
    const controller = (this.controller = new AbortController());
    this.ready();
    const settings = { temperature: numberOrNull(this.temperature), maxTokens: numberOrNull(this.maxTokens), system: this.system.value.trim() };
    let state = "error";
    try {
      state = await this.current.send(text, model, settings, controller.signal);
    } finally {
      if (this.controller === controller) this.controller = null;
      if (state === "error" && !this.input.value) this.input.value = text;  // to send again
      this.ready();
      this.input.focus();
    }
  }

  stop() {
    if (this.controller) this.controller.abort();
  }

  restart() {
    this.stop();
    this.current.clear();
    this.input.value = "";
    this.input.focus();
  }
}

new App(document.getElementById("app")).load();
