// The emulator's read-only page: polls /_emulator/state and renders it with textContent only.
"use strict";

let lastId = 0;
let paused = false;
const traceBody = document.querySelector("#trace tbody");

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
}

function renderHubs(hubs) {
  const container = document.getElementById("hubs");
  container.replaceChildren();
  if (hubs.length === 0) {
    const p = document.createElement("p");
    p.className = "empty";
    p.textContent = "No connections yet.";
    container.appendChild(p);
    return;
  }
  for (const hub of hubs) {
    const title = document.createElement("h3");
    const groups = Object.entries(hub.groups).map(([g, n]) => `${g} (${n})`).join(", ");
    title.textContent = `${hub.name}: ${hub.connections.length} connection(s)` +
      (groups ? `; groups: ${groups}` : "");
    container.appendChild(title);
    const table = document.createElement("table");
    const head = table.createTHead().insertRow();
    for (const name of ["Connection", "User", "Groups", "Roles", "Subprotocol", "Status"]) {
      const th = document.createElement("th");
      th.textContent = name;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const c of hub.connections) {
      const row = body.insertRow();
      cell(row, c.connectionId, "mono");
      cell(row, c.userId ?? "(anonymous)");
      cell(row, c.groups.join(", "));
      cell(row, c.roles.join(", "));
      cell(row, c.subprotocol ?? "simple WebSocket");
      cell(row, c.status, "status-" + c.status);
    }
    container.appendChild(table);
  }
}

function renderTrace(entries) {
  for (const entry of entries) {
    lastId = Math.max(lastId, entry.id);
    const row = document.createElement("tr");
    row.className = entry.category;
    cell(row, new Date(entry.time * 1000).toLocaleTimeString(), "mono");
    cell(row, entry.hub);
    cell(row, entry.connection_id ?? "", "mono");
    cell(row, entry.text);
    traceBody.prepend(row);
  }
  while (traceBody.rows.length > 300) traceBody.deleteRow(-1);
}

async function refresh() {
  if (!paused) {
    try {
      const response = await fetch(`/_emulator/state?after=${lastId}`, { cache: "no-store" });
      const state = await response.json();
      const upstream = Object.entries(state.upstream)
        .map(([hub, urls]) => `${hub} → ${urls.join(", ")}`).join("; ");
      document.getElementById("summary").textContent =
        `${state.url} · upstream: ${upstream || "none (events are not forwarded)"}`;
      renderHubs(state.hubs);
      renderTrace(state.trace);
    } catch (error) {
      document.getElementById("summary").textContent = `Cannot reach the emulator: ${error}`;
    }
  }
  setTimeout(refresh, 1000);
}

document.getElementById("pause").addEventListener("click", (event) => {
  paused = !paused;
  event.target.textContent = paused ? "Resume" : "Pause";
});
refresh();
