// An experiment's page: while it runs, follow its realtime stream (/ws/v1/streams/<id>)
// and read its progress from the page's progress URL on each event (the database is
// the truth the stream announces); poll when no stream opens; reload when it ends.
"use strict";

const POLL_MS = 1500;

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

function show(section, state) {
  const status = section.querySelector("[data-field=status]");
  status.textContent = state.status;
  status.className = `badge badge-run-${state.status}`;
  const bar = section.querySelector("[data-field=progress]");
  bar.max = Math.max(state.total, 1);
  bar.value = state.done;
  section.querySelector("[data-field=counts]").textContent = `${state.done}/${state.total} cases`;
}

function refresher(section) {
  let pending = null;
  return () => {
    if (pending) return pending;
    pending = fetch(section.dataset.progressUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : null))
      .then((state) => {
        pending = null;
        if (!state) return true;
        show(section, state);
        if (!state.live) window.location.reload();
        return state.live;
      })
      .catch(() => { pending = null; return true; });
    return pending;
  };
}

function poll(refresh) {
  const timer = setInterval(() => refresh().then((live) => { if (!live) clearInterval(timer); }), POLL_MS);
}

async function follow(section, refresh) {
  const body = new FormData();
  body.append("csrfmiddlewaretoken", csrfToken());
  const response = await fetch(section.dataset.tokenUrl, { method: "POST", body, credentials: "same-origin" });
  if (!response.ok) { poll(refresh); return; }
  const { token } = await response.json();
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${window.location.host}/ws/v1/streams/${encodeURIComponent(section.dataset.stream)}?token=${encodeURIComponent(token)}`;
  const socket = new WebSocket(url);
  socket.onmessage = () => { refresh(); };
  socket.onclose = () => { refresh().then((live) => { if (live) poll(refresh); }); };
}

document.addEventListener("DOMContentLoaded", () => {
  const section = document.getElementById("experiment-progress");
  if (!section || section.dataset.live !== "1") return;
  const refresh = refresher(section);
  if (!section.dataset.stream) { poll(refresh); return; }
  follow(section, refresh).catch(() => poll(refresh));
});
