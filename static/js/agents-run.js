// The run page: while the run is live, append its new events as they are recorded.
"use strict";

// The server's one timestamp format (aiaas/formats.py `when`): 2026-12-07 10:01 UTC.
function utcMinute(iso) {
  return new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function eventRow(event) {
  const row = document.createElement("tr");
  row.dataset.seq = event.seq;
  const cells = [event.seq, event.type, event.step_id, JSON.stringify(event.data, null, 2), utcMinute(event.created_at)];
  cells.forEach((value, index) => {
    const cell = document.createElement("td");
    if (index === 3) {
      const pre = document.createElement("pre");
      pre.textContent = value;
      cell.appendChild(pre);
    } else {
      cell.textContent = value;
    }
    row.appendChild(cell);
  });
  return row;
}

async function follow(table) {
  const body = table.querySelector("tbody");
  let after = Number(body.lastElementChild ? body.lastElementChild.dataset.seq : 0);
  for (;;) {
    const response = await fetch(`${table.dataset.url}?after=${after}`, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const page = await response.json();
    page.events.forEach((event) => { body.appendChild(eventRow(event)); after = event.seq; });
    document.getElementById("run-status").textContent = page.status;
    if (page.finished) { window.location.reload(); return; }
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("run-events");
  if (table && table.dataset.live === "1") follow(table);
});
