// Chat mode: the conversation lives in the page and goes whole to /v1/chat/completions each turn.

import { events } from "./api.js";
import { clear, h } from "./dom.js";
import { finish, replyTurn, userTurn } from "./turns.js";

export class Chat {
  constructor(app) {
    this.app = app;
    this.messages = [];  // what was said, as the API takes it (the system prompt is added per turn)
    this.epoch = 0;  // bumped by New chat: a reply still ending then belongs to the old conversation
    this.log = h("section", {
      class: "log", id: "chat-log", "aria-label": "conversation", "aria-live": "polite",
      "data-empty": "Chat with a pulled model. Replies stream in as they are written; Stop ends one, New chat starts over.",
    });
  }

  clear() {
    this.messages = [];
    this.epoch += 1;
    clear(this.log);
  }

  /** One turn: the message, then the reply streamed into the log. Resolves when it ended. */
  async send(text, model, settings, signal) {
    const epoch = this.epoch;
    this.log.append(userTurn(text));
    const reply = replyTurn("assistant", model.id);
    this.log.append(reply.el);
    this.app.follow(true);
    const said = [...this.messages, { role: "user", content: text }];
    const system = settings.system ? [{ role: "system", content: settings.system }] : [];
    const body = {
      model: model.id, messages: [...system, ...said], stream: true, stream_options: { include_usage: true },
      ...(settings.temperature !== null ? { temperature: settings.temperature } : {}),
      ...(settings.maxTokens !== null ? { max_tokens: settings.maxTokens } : {}),
    };
    const node = document.createTextNode("");
    let content = "";
    let answered = null;
    let reason = null;
    let usage = null;
    let state = "done";
    let error = null;
    try {
      for await (const chunk of events("/v1/chat/completions", body, signal)) {
        if (typeof chunk.model === "string") answered = chunk.model;
        if (chunk.usage) usage = chunk.usage;
        const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : null;
        if (!choice) continue;
        const delta = choice.delta && choice.delta.content;
        if (typeof delta === "string" && delta) {
          if (!content) reply.text.append(node);
          content += delta;
          node.data = content;  // text, never markup
          this.app.follow();
        }
        if (choice.finish_reason) reason = choice.finish_reason;
      }
    } catch (err) {
      state = err.name === "AbortError" ? "stopped" : "error";
      if (state === "error") error = err.message;
    }
    // A stopped reply keeps what was said (as the terminal chat does); a failed turn is left out.
    if (epoch === this.epoch && (state === "done" || (state === "stopped" && content))) {
      this.messages = [...said, { role: "assistant", content }];
    }
    finish(reply, state, {
      model: answered, digest: answered ? this.app.digestOf(answered) : null,
      tokens: usage ? usage.completion_tokens : null, reason, error,
    });
    this.app.follow();
    return state;
  }
}
