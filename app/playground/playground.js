// The playground: a chat over POST api/chat/stream (Server-Sent Events read from a fetch body).
// Vanilla JS, no dependency; model output only ever reaches the page through textContent.
"use strict";

const KEY_STORE = "llm-playground.api-key";
const $ = (id) => document.getElementById(id);
const ui = {
  model: $("model"), keyForm: $("key-form"), key: $("api-key"), notice: $("notice"),
  temperature: $("temperature"), maxTokens: $("max-tokens"), system: $("system"), clear: $("clear"),
  messages: $("messages"), composer: $("composer"), prompt: $("prompt"), send: $("send"), stop: $("stop"),
};

let conversation = []; // the turns sent so far: {role: "user" | "assistant", content}
let controller = null; // the AbortController of the generation in progress
let chat = 0; // counts "New chat" presses: a generation of an earlier chat is dropped

function notify(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = !text;
}

function keyNeeded(message) {
  notify(message || "An API key is needed: enter it in the API key field.");
  ui.key.setAttribute("aria-invalid", "true");
  ui.key.focus();
}

function headers() {
  const result = { "Content-Type": "application/json" };
  const key = ui.key.value.trim();
  if (key) result.Authorization = "Bearer " + key;
  return result;
}

// The message of a JSON error envelope {"error": {"status", "code", "message", ...}}.
async function errorOf(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON: fall back to the status line */ }
  return `${response.status} ${response.statusText}`.trim();
}

async function loadModels() {
  ui.model.disabled = true;
  let response;
  try {
    response = await fetch("api/llms", { headers: headers() });
  } catch (error) {
    notify("The server cannot be reached: " + error.message);
    return;
  }
  if (response.status === 401) {
    keyNeeded(ui.key.value.trim() ? "The API key is not valid: enter another." : undefined);
    return;
  }
  if (!response.ok) {
    notify("The models could not be listed: " + (await errorOf(response)));
    return;
  }
  const listing = await response.json();
  const models = (listing.models || []).filter((m) => m.kind !== "embedding");
  ui.model.replaceChildren();
  for (const m of models) {
    const option = new Option(m.state === "loaded" ? m.id : `${m.id} (${m.state})`, m.id);
    option.disabled = m.state === "failed";
    if (m.error) option.title = m.error;
    ui.model.append(option);
  }
  const preferred = models.find((m) => m.state === "loaded") || models.find((m) => m.state !== "failed");
  if (!preferred) {
    notify("No chat model is available on this server.");
    return;
  }
  ui.model.value = preferred.id;
  ui.model.disabled = false;
  ui.key.removeAttribute("aria-invalid");
  notify("");
}

function bubble(role, text) {
  const item = document.createElement("li");
  item.className = "message " + role;
  const who = document.createElement("span");
  who.className = "role";
  who.textContent = role === "user" ? "You" : "Assistant";
  const content = document.createElement("div");
  content.className = "content";
  content.textContent = text;
  item.append(who, content);
  ui.messages.append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

function number(input) {
  const value = input.valueAsNumber;
  return Number.isFinite(value) && input.checkValidity() ? value : undefined;
}

function requestBody() {
  const messages = [];
  const system = ui.system.value.trim();
  if (system) messages.push({ role: "system", content: system });
  return {
    model: ui.model.value || undefined,
    messages: messages.concat(conversation),
    temperature: number(ui.temperature),
    max_tokens: number(ui.maxTokens),
  };
}

// Frames of an SSE body: yields {event, data} with data parsed as JSON.
async function* frames(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

function seconds(s) {
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
}

// The line under an answer: first-token time and speed as the browser saw them (server figures
// when the stream finished), plus the outcome.
function stats(item, run) {
  const line = document.createElement("p");
  line.className = "stats";
  const parts = [];
  if (run.stopped) parts.push("Stopped");
  if (run.firstAt !== null) {
    parts.push("First token " + seconds((run.firstAt - run.start) / 1000));
    const t = run.done && run.done.timings;
    const u = run.done && run.done.usage;
    const decode = (run.end - run.firstAt) / 1000;
    const served = t && typeof t.completion_tokens_per_second === "number";
    const rate = served ? t.completion_tokens_per_second : decode > 0 ? (run.tokens - 1) / decode : 0;
    parts.push(`${rate.toFixed(1)} tokens/s`);
    parts.push(`${u ? u.completion_tokens : run.tokens} tokens`);
    if (served) {
      line.title = `Server: queue ${seconds(t.queue_seconds)}, first token ` +
        `${seconds(t.time_to_first_token_seconds)}, total ${seconds(t.total_seconds)}`;
    }
  }
  if (run.done && run.done.finish_reason) parts.push("finish: " + run.done.finish_reason);
  line.textContent = parts.join(" · ");
  item.append(line);
}

function generating(on) {
  ui.send.hidden = on;
  ui.stop.hidden = !on;
  ui.prompt.disabled = on;
  ui.messages.setAttribute("aria-busy", String(on));
  if (on) ui.stop.focus();
  else ui.prompt.focus();
}

async function send(text) {
  const epoch = chat;
  conversation.push({ role: "user", content: text });
  const asked = bubble("user", text);
  const item = bubble("assistant", "");
  item.classList.add("streaming");
  const content = item.querySelector(".content");
  const body = requestBody();
  const run = { start: performance.now(), firstAt: null, end: null, tokens: 0, done: null, stopped: false };
  let answer = "";
  let failure = null;
  controller = new AbortController();
  generating(true);
  try {
    const response = await fetch("api/chat/stream", {
      method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal,
    });
    if (response.status === 401) keyNeeded();
    if (!response.ok) failure = await errorOf(response);
    else {
      for await (const frame of frames(response.body)) {
        if (frame.event === "token") {
          if (run.firstAt === null) run.firstAt = performance.now();
          run.tokens += 1;
          answer += frame.data.delta;
          content.textContent = answer;
          item.scrollIntoView({ block: "end" });
        } else if (frame.event === "done") {
          run.done = frame.data;
        } else if (frame.event === "error") {
          failure = (frame.data.error && frame.data.error.message) || "The generation failed.";
        }
      }
    }
  } catch (error) {
    if (error.name === "AbortError") run.stopped = true;
    else failure = error.message;
  }
  run.end = performance.now();
  controller = null;
  item.classList.remove("streaming");
  if (run.stopped) item.classList.add("stopped");
  if (failure) {
    item.classList.add("error");
    const line = document.createElement("p");
    line.className = "failure";
    line.textContent = failure;
    item.append(line);
  }
  if (epoch !== chat) return generating(false); // "New chat" was pressed meanwhile
  if (answer) conversation.push({ role: "assistant", content: answer });
  else { // nothing came back: the question leaves the conversation, and can be asked again
    conversation.pop();
    asked.classList.add("unsent");
    if (!run.stopped) ui.prompt.value = text;
  }
  if (answer || run.stopped) stats(item, run);
  generating(false);
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.prompt.value.trim();
  if (!text || controller) return;
  if (!ui.model.value) {
    notify(ui.notice.textContent || "No model is selected.");
    return;
  }
  ui.prompt.value = "";
  send(text);
});

ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.stop.addEventListener("click", () => controller && controller.abort());

ui.clear.addEventListener("click", () => {
  if (controller) controller.abort();
  chat += 1;
  conversation = [];
  ui.messages.replaceChildren();
  ui.prompt.focus();
});

ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.key.value.trim();
  if (key) sessionStorage.setItem(KEY_STORE, key);
  else sessionStorage.removeItem(KEY_STORE);
  loadModels();
});

ui.key.value = sessionStorage.getItem(KEY_STORE) || "";
loadModels();
