// The dashboard playground: a conversation kept in the page, each turn one chat
// completion over /ws/v1/chat/completions with a stream token minted by the
// dashboard (protocol: docs/realtime.md). With "Compare with", each message goes
// to two models at once, each column keeping its own history.
"use strict";

(() => {
  const form = document.getElementById("playground");
  if (!form) return;
  const send = document.getElementById("playground-send");
  const cancel = document.getElementById("playground-cancel");
  const copied = document.getElementById("playground-copied");
  const template = document.getElementById("playground-turn");
  const CANCELLED = 499;

  const sides = ["a", "b"].map((name) => ({
    name,
    column: document.getElementById(`playground-column-${name}`),
    title: document.getElementById(`playground-title-${name}`),
    status: document.getElementById(`playground-status-${name}`),
    turns: document.getElementById(`playground-turns-${name}`),
    history: [],
    socket: null,
    running: false,
  }));

  function modelOf(side) {
    return side.name === "a" ? form.elements.model.value : form.elements.compare.value;
  }

  function activeSides() {
    return sides.filter((side) => modelOf(side));
  }

  function optionsOf() {
    const options = {};
    const temperature = form.elements.temperature.value;
    const maxTokens = form.elements.max_tokens.value;
    if (temperature !== "") options.temperature = Number(temperature);
    if (maxTokens !== "") options.max_tokens = Number(maxTokens);
    return options;
  }

  function bodyFor(model, history) {
    const system = form.elements.system.value.trim();
    const messages = system ? [{ role: "system", content: system }, ...history] : [...history];
    return { model, messages, ...optionsOf() };
  }

  function showColumns() {
    const comparing = Boolean(form.elements.compare.value);
    sides[1].column.hidden = !comparing;
    document.getElementById("playground-columns").classList.toggle("comparing", comparing);
    for (const side of activeSides()) side.title.textContent = comparing ? modelOf(side) : "Conversation";
  }

  function addTurn(side, role, text) {
    const turn = template.content.firstElementChild.cloneNode(true);
    turn.querySelector(".playground-role").textContent = role;
    turn.querySelector(".playground-text").textContent = text;
    side.turns.append(turn);
    return turn;
  }

  function fact(turn, name, text) {
    turn.querySelector(`[data-fact="${name}"]`).textContent = text;
  }

  function milliseconds(value) {
    return `${Math.round(value).toLocaleString("en-US")} ms`;
  }

  function settle(side, text) {
    side.running = false;
    side.socket = null;
    side.status.textContent = text;
    if (!sides.some((each) => each.running)) {
      send.disabled = false;
      cancel.hidden = true;
    }
  }

  async function mintToken() {
    const body = new FormData();
    body.append("key", form.elements.key.value);
    body.append("csrfmiddlewaretoken", form.elements.csrfmiddlewaretoken.value);
    const response = await fetch(form.dataset.tokenUrl, { method: "POST", body, credentials: "same-origin" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error ? data.error.message : `HTTP ${response.status}`);
    return data.token;
  }

  function finished(side, turn, message, timing) {
    const answer = turn.querySelector(".playground-text").textContent;
    side.history.push({ role: "assistant", content: answer });
    const usage = message.usage || {};
    fact(turn, "model", `${message.model} (tier ${message.tier})`);
    fact(turn, "route", message.route_reason || "named model");
    fact(turn, "latency", milliseconds(performance.now() - timing.sent));
    fact(turn, "ttft", timing.first === null ? "no tokens" : milliseconds(timing.first - timing.sent));
    fact(turn, "tokens", `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion`);
    fact(turn, "cost", `$${message.cost_usd}`);
    fact(turn, "request", message.request_id);
    turn.querySelector(".playground-facts").hidden = false;
    settle(side, "Done.");
  }

  function failed(side, turn, message) {
    const answer = turn.querySelector(".playground-text").textContent;
    if (message.status === CANCELLED) {
      // What arrived before Stop stays in the conversation, as the model said it.
      if (answer) side.history.push({ role: "assistant", content: answer });
      turn.classList.add("playground-stopped");
      settle(side, "Stopped.");
      return;
    }
    side.history.pop(); // the question was not answered: it is not sent again
    turn.querySelector(".playground-text").textContent = message.error.message;
    turn.classList.add("playground-error");
    settle(side, `Error ${message.status}: ${message.error.message}`);
  }

  async function ask(side, model) {
    const turn = addTurn(side, "assistant", "");
    side.running = true;
    side.status.textContent = "Connecting…";
    let token;
    try {
      token = await mintToken();
    } catch (error) {
      side.history.pop();
      turn.remove();
      settle(side, `Could not start: ${error.message}`);
      return;
    }
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}/ws/v1/chat/completions?token=${encodeURIComponent(token)}`);
    const timing = { sent: 0, first: null };
    side.socket = socket;
    socket.addEventListener("open", () => {
      side.status.textContent = "Streaming…";
      cancel.hidden = false;
      timing.sent = performance.now();
      socket.send(JSON.stringify(bodyFor(model, side.history)));
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "chunk") {
        if (timing.first === null) timing.first = performance.now();
        turn.querySelector(".playground-text").textContent += message.delta;
      } else if (message.type === "done") {
        finished(side, turn, message, timing);
      } else if (message.type === "error") {
        failed(side, turn, message);
      }
    });
    socket.addEventListener("close", (closed) => {
      if (side.running && side.socket === socket) settle(side, `Connection closed (${closed.code}).`);
    });
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const prompt = form.elements.prompt.value.trim();
    if (!prompt || sides.some((side) => side.running)) return;
    showColumns();
    send.disabled = true;
    for (const side of activeSides()) {
      side.history.push({ role: "user", content: prompt });
      addTurn(side, "user", prompt);
      ask(side, modelOf(side));
    }
    form.elements.prompt.value = "";
  });

  form.elements.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  form.elements.compare.addEventListener("change", showColumns);

  cancel.addEventListener("click", () => {
    for (const side of sides) {
      if (side.socket && side.socket.readyState === WebSocket.OPEN) side.socket.send(JSON.stringify({ type: "cancel" }));
    }
  });

  document.getElementById("playground-clear").addEventListener("click", () => {
    for (const side of sides) {
      if (side.running) continue;
      side.history = [];
      side.turns.replaceChildren();
      side.status.textContent = "Nothing sent yet.";
    }
  });

  // The current conversation (the first column's), with the message being typed.
  function snippetBody() {
    const history = [...sides[0].history];
    const prompt = form.elements.prompt.value.trim();
    if (prompt) history.push({ role: "user", content: prompt });
    return bodyFor(form.elements.model.value, history);
  }

  function curlSnippet() {
    const json = JSON.stringify(snippetBody(), null, 2).replaceAll("'", "'\\''");
    return [
      `curl ${form.dataset.apiBase}/chat/completions \\`,
      '  -H "Authorization: Bearer $AIAAS_API_KEY" \\',
      '  -H "Content-Type: application/json" \\',
      `  -d '${json}'`,
    ].join("\n");
  }

  function pythonSnippet() {
    const { model, messages, ...options } = snippetBody();
    const extra = Object.entries(options).map(([name, value]) => `    ${name}=${JSON.stringify(value)},\n`).join("");
    return [
      "import os",
      "",
      "from openai import OpenAI",
      "",
      `client = OpenAI(base_url=${JSON.stringify(form.dataset.apiBase)}, api_key=os.environ["AIAAS_API_KEY"])`,
      "completion = client.chat.completions.create(",
      `    model=${JSON.stringify(model)},`,
      `    messages=${JSON.stringify(messages, null, 4).replaceAll("\n", "\n    ")},`,
      `${extra})`,
      "print(completion.choices[0].message.content)",
    ].join("\n");
  }

  async function copy(text, what) {
    const snippet = document.getElementById("playground-snippet");
    snippet.textContent = text;
    snippet.closest("details").hidden = false;
    try {
      await navigator.clipboard.writeText(text);
      copied.textContent = `Copied as ${what}.`;
    } catch {
      snippet.closest("details").open = true;
      copied.textContent = `Your browser refused the clipboard: the ${what} snippet is below.`;
    }
  }

  document.getElementById("playground-copy-curl").addEventListener("click", () => copy(curlSnippet(), "curl"));
  document.getElementById("playground-copy-python").addEventListener("click", () => copy(pythonSnippet(), "Python"));
  showColumns();
})();
