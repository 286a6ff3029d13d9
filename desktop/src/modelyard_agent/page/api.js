// The local API as the page uses it: the model list, and POSTs answered with server-sent events.

/** An error answer, in OpenAI's shape ({"error": {"message", "type", "code"}}) or OIP's. */
export class ApiError extends Error {
  constructor(status, message, code = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

async function failure(response) {
  let message = `HTTP ${response.status} ${response.statusText}`.trim();
  let code = null;
  try {
    const error = (await response.json()).error;
    if (typeof error === "string") {
      message = error;
    } else if (error && typeof error.message === "string") {
      message = error.message;
      code = typeof error.code === "string" ? error.code : null;
    }
  } catch {
    // not JSON: the status line says what there is to say
  }
  return new ApiError(response.status, message, code);
}

/** Every entry of GET /v1/models. */
export async function listModels() {
  const response = await fetch("/v1/models", { headers: { accept: "application/json" } });
  if (!response.ok) throw await failure(response);
  const body = await response.json();
  return Array.isArray(body.data) ? body.data : [];
}

/**
 * POST `body` as JSON to `path` and yield the data of each server-sent event, parsed, until
 * `data: [DONE]`. Aborting `signal` closes the connection (the server then stops generating);
 * the pending read rejects with an AbortError. A stream that ends before [DONE] is an error.
 */
export async function* events(path, body, signal) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  let data = [];
  let finished = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      const lines = pending.split("\n");
      pending = lines.pop();
      for (const raw of lines) {
        const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
        if (line.startsWith("data:")) {
          data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
          continue;
        }
        if (line !== "" || !data.length) continue;  // comments, event: and id: lines carry nothing here
        const text = data.join("\n");
        data = [];
        if (text === "[DONE]") {
          finished = true;
          return;
        }
        const event = JSON.parse(text);
        if (event && event.error) {
          throw new ApiError(response.status, event.error.message || String(event.error), event.error.code || null);
        }
        yield event;
      }
    }
    throw new ApiError(response.status, "the reply was cut off: the server closed the stream before it ended");
  } finally {
    if (!finished) await reader.cancel().catch(() => {});
  }
}
