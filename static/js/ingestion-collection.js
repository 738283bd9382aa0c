// A collection's page: drop files to upload them, and watch each document's
// progress on its realtime stream (/ws/v1/streams/<id>), polling when no stream opens.
"use strict";

const LIVE = new Set(["queued", "processing"]);
const POLL_MS = 1500;
let polling = null;

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function show(row, state) {
  row.dataset.status = state.status;
  const status = row.querySelector("[data-field=status]");
  status.textContent = state.status;
  status.className = `badge badge-document-${state.status}`;
  const bar = row.querySelector("[data-field=progress]");
  const total = Math.max(state.chunks_total || 0, 1);
  bar.max = total;
  bar.value = state.status === "ready" ? total : state.chunks_done || 0;
  row.querySelector("[data-field=counts]").textContent = `${state.chunks_done || 0}/${state.chunks_total || 0}`;
  if (state.chunk_count !== undefined) row.querySelector("[data-field=chunk_count]").textContent = state.chunk_count;
  row.querySelector("[data-field=error]").textContent = state.error || "";
}

async function poll(table) {
  const response = await fetch(table.dataset.progressUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  if (!response.ok) return;
  const page = await response.json();
  let live = false;
  page.documents.forEach((state) => {
    const row = table.querySelector(`tr[data-document="${CSS.escape(state.id)}"]`);
    if (row) show(row, state);
    live = live || LIVE.has(state.status);
  });
  if (!live) { clearInterval(polling); polling = null; }
}

function startPolling(table) {
  if (polling === null) polling = setInterval(() => poll(table), POLL_MS);
}

async function follow(table, row) {
  const body = new FormData();
  body.append("csrfmiddlewaretoken", csrfToken());
  const response = await fetch(row.dataset.tokenUrl, { method: "POST", body, credentials: "same-origin" });
  if (!response.ok) { startPolling(table); return; }
  const { token } = await response.json();
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${window.location.host}/ws/v1/streams/${encodeURIComponent(row.dataset.stream)}?token=${encodeURIComponent(token)}`;
  const socket = new WebSocket(url);
  let finished = false;
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "error") return;
    show(row, event);
    finished = finished || !LIVE.has(event.status);
  };
  socket.onclose = () => { if (!finished) startPolling(table); else poll(table); };
}

function dropzone(form) {
  const input = form.querySelector("input[type=file]");
  ["dragenter", "dragover"].forEach((name) => form.addEventListener(name, (event) => {
    event.preventDefault();
    form.classList.add("dropzone-active");
  }));
  form.addEventListener("dragleave", () => form.classList.remove("dropzone-active"));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("dropzone-active");
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    input.files = event.dataTransfer.files;
    form.requestSubmit();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("dropzone");
  if (form) dropzone(form);
  const table = document.getElementById("documents");
  if (!table) return;
  table.querySelectorAll("tr[data-document]").forEach((row) => {
    if (LIVE.has(row.dataset.status)) follow(table, row).catch(() => startPolling(table));
  });
});
