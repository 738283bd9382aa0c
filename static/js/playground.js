// The dashboard playground: a stream token from the dashboard, then one chat
// completion over /ws/v1/chat/completions (protocol: docs/realtime.md).
"use strict";

(() => {
  const form = document.getElementById("playground");
  if (!form) return;
  const answer = document.getElementById("playground-answer");
  const status = document.getElementById("playground-status");
  const cancel = document.getElementById("playground-cancel");
  const send = document.getElementById("playground-send");
  let socket = null;

  function show(id, text) { document.getElementById(id).textContent = text; }

  async function mintToken() {
    const body = new FormData(form);
    const response = await fetch(form.dataset.tokenUrl, { method: "POST", body, credentials: "same-origin" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error ? data.error.message : `HTTP ${response.status}`);
    return data.token;
  }

  function finish(text) {
    status.textContent = text;
    send.disabled = false;
    cancel.hidden = true;
  }

  function onMessage(event) {
    const message = JSON.parse(event.data);
    show("playground-stream", message.stream_id);
    if (message.type === "chunk") {
      answer.textContent += message.delta;
    } else if (message.type === "done") {
      show("playground-served-model", message.model);
      show("playground-tier", String(message.tier));
      const usage = message.usage;
      show("playground-usage", `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
      document.getElementById("playground-facts").hidden = false;
      finish("Done.");
    } else if (message.type === "error") {
      finish(`Error ${message.status}: ${message.error.message}`);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    answer.textContent = "";
    document.getElementById("playground-facts").hidden = true;
    send.disabled = true;
    status.textContent = "Connecting…";
    let token;
    try {
      token = await mintToken();
    } catch (error) {
      finish(`Could not start: ${error.message}`);
      return;
    }
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${window.location.host}/ws/v1/chat/completions?token=${encodeURIComponent(token)}`);
    socket.addEventListener("open", () => {
      status.textContent = "Streaming…";
      cancel.hidden = false;
      socket.send(JSON.stringify({
        model: form.elements.model.value,
        messages: [{ role: "user", content: form.elements.prompt.value }],
      }));
    });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", (closed) => {
      if (send.disabled) finish(`Connection closed (${closed.code}).`);
    });
  });

  cancel.addEventListener("click", () => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "cancel" }));
  });
})();
