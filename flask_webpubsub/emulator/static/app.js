// The emulator's dashboard: polls /_emulator/state every second and renders it with textContent
// only (never HTML from the emulator); sends and closes through the control API's JSON routes.
"use strict";

const $ = (id) => document.getElementById(id);
let lastId = 0;
let paused = false;
let state = null;
let rendered = "";
let traceLength = 300;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function when(seconds) {
  const date = new Date(seconds * 1000);
  const time = el("time", date.toDateString() === new Date().toDateString()
    ? date.toLocaleTimeString() : date.toLocaleString());
  time.dateTime = date.toISOString();
  return time;
}

// -- filters -------------------------------------------------------------------------------

function filters() {
  const kinds = new Set([...$("filter-kinds").querySelectorAll("input:checked")]
    .map((input) => input.value));
  return { hub: $("filter-hub").value, text: $("filter-text").value.trim().toLowerCase(), kinds };
}

function matches(text, ...values) {
  return !text || values.some((v) => v != null && String(v).toLowerCase().includes(text));
}

function connectionShown(f, hub, c) {
  return (!f.hub || f.hub === hub) && matches(f.text, c.connectionId, c.userId, ...c.groups);
}

function traceShown(f, entry) {
  return f.kinds.has(entry.category) && (!f.hub || f.hub === entry.hub) &&
    matches(f.text, entry.connection_id, entry.text);
}

// -- hubs, groups, connections -------------------------------------------------------------

function renderHubs(f) {
  const box = $("hubs");
  box.replaceChildren();
  const hubs = state.hubs.filter((h) => !f.hub || h.name === f.hub);
  if (hubs.length === 0) box.appendChild(el("p", "No hub yet.", "empty"));
  for (const hub of hubs) {
    const card = el("article", null, "card");
    card.dataset.hub = hub.name;
    card.appendChild(el("h3", hub.name));
    card.appendChild(el("p", `${hub.connections.length} connection(s), ${hub.groups.length} ` +
      `group(s)${hub.anonymous ? "; anonymous clients allowed" : ""}`, "meta"));
    if (hub.upstream.length === 0) {
      card.appendChild(el("p", "No upstream: events of its clients are not forwarded.",
        "warning no-upstream"));
    }
    for (const handler of hub.upstream) {
      const p = el("p", null, "upstream");
      p.appendChild(el("span", "Upstream "));
      p.appendChild(el("code", handler.url));
      p.appendChild(el("span", ` · user events: ${handler.userEvents.join(", ") || "none"}` +
        ` · system events: ${handler.systemEvents.join(", ") || "none"}`, "meta"));
      card.appendChild(p);
    }
    box.appendChild(card);
  }
}

function renderGroups(f) {
  const box = $("groups");
  box.replaceChildren();
  let count = 0;
  for (const hub of state.hubs) {
    if (f.hub && hub.name !== f.hub) continue;
    for (const group of hub.groups) {
      const members = group.members.filter(
        (m) => matches(f.text, group.name, m.connectionId, m.userId));
      if (members.length === 0 && !matches(f.text, group.name)) continue;
      count += 1;
      const item = el("details", null, "group");
      item.dataset.group = group.name;
      const summary = el("summary");
      summary.appendChild(el("strong", group.name));
      summary.appendChild(el("span", ` in ${hub.name}: ${group.size} member(s)`, "meta"));
      item.appendChild(summary);
      const list = el("ul", null, "members");
      for (const m of group.members) {
        const li = el("li");
        li.appendChild(el("code", m.connectionId));
        li.appendChild(el("span", m.userId == null ? " (anonymous)" : ` user ${m.userId}`));
        list.appendChild(li);
      }
      if (group.size > group.members.length) {
        list.appendChild(el("li", `… and ${group.size - group.members.length} more`, "meta"));
      }
      item.appendChild(list);
      item.open = openGroups.has(`${hub.name}/${group.name}`);
      item.addEventListener("toggle", () => {
        const key = `${hub.name}/${group.name}`;
        if (item.open) openGroups.add(key); else openGroups.delete(key);
      });
      box.appendChild(item);
    }
  }
  if (count === 0) box.appendChild(el("p", "No groups.", "empty"));
}
const openGroups = new Set();

function cell(row, label, content, className) {
  const td = el("td", null, className);
  td.dataset.label = label;
  if (content instanceof Node) td.appendChild(content); else td.textContent = content ?? "";
  row.appendChild(td);
  return td;
}

function renderConnections(f) {
  const body = $("connections").tBodies[0];
  body.replaceChildren();
  let shown = 0;
  let total = 0;
  for (const hub of state.hubs) {
    for (const c of hub.connections) {
      total += 1;
      if (!connectionShown(f, hub.name, c)) continue;
      shown += 1;
      const row = body.insertRow();
      row.dataset.connection = c.connectionId;
      cell(row, "Connection", el("code", c.connectionId), "id");
      cell(row, "Hub", hub.name);
      cell(row, "User", c.userId ?? "(anonymous)");
      cell(row, "Protocol", c.protocol);
      const groups = c.groups.join(", ") || "none";
      cell(row, c.mqtt ? "Topics" : "Groups", c.mqtt ? `subscriptions: ${groups}` : groups);
      cell(row, "Roles", c.roles.join(", ") || "none", "roles");
      const status = {
        connected: "connected", recovering: "recovering (waiting for its client)",
        online: "online", offline: "offline (waiting for its client)",
      }[c.status] ?? c.status;
      cell(row, "State", status, `state state-${c.status}`);
      cell(row, "Connected at", when(c.connectedAt));
      const actions = el("div", null, "actions");
      const send = el("button", "Send…");
      send.type = "button";
      send.dataset.focus = `send:${c.connectionId}`;
      send.setAttribute("aria-label", `Send a message to connection ${c.connectionId}`);
      send.addEventListener("click", () => prepareSend(hub.name, "connection", c.connectionId));
      const close = el("button", "Close or drop…");
      close.type = "button";
      close.dataset.focus = `act:${c.connectionId}`;
      close.setAttribute("aria-label", `Close or drop connection ${c.connectionId}`);
      close.addEventListener("click", () => prepareAct(hub.name, c.connectionId));
      actions.append(send, close);
      cell(row, "Actions", actions);
    }
  }
  $("connection-count").textContent = shown === total ? `(${total})` : `(${shown} of ${total})`;
  $("no-connections").hidden = shown > 0;
}

function fillSelect(select, names, keepFirst) {
  const current = select.value;
  const options = [...select.options].slice(0, keepFirst ? 1 : 0);
  for (const name of names) {
    const option = el("option", name);
    option.value = name;
    options.push(option);
  }
  select.replaceChildren(...options);
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

function fillNames() {
  const hub = state?.hubs.find((h) => h.name === $("send-hub").value);
  const to = $("send-to").value;
  let names = [];
  if (hub && to === "group") names = hub.groups.map((g) => g.name);
  if (hub && to === "user") {
    names = [...new Set(hub.connections.map((c) => c.userId).filter((u) => u != null))];
  }
  if (hub && to === "connection") names = hub.connections.map((c) => c.connectionId);
  $("send-names").replaceChildren(...names.map((n) => { const o = el("option"); o.value = n; return o; }));
  const ids = state ? state.hubs.flatMap((h) => h.connections.map((c) => c.connectionId)) : [];
  $("act-connections").replaceChildren(...ids.map((n) => { const o = el("option"); o.value = n; return o; }));
}

function render() {
  if (!state) return;
  const f = filters();
  const key = JSON.stringify([state.hubs, f.hub, f.text]);
  if (key === rendered) return;
  rendered = key;
  // Keep the keyboard where it was: the same button, once its row is drawn again.
  const focused = document.activeElement?.dataset?.focus;
  const names = state.hubs.map((h) => h.name);
  fillSelect($("filter-hub"), names, true);
  fillSelect($("send-hub"), names, false);
  renderHubs(f);
  renderGroups(f);
  renderConnections(f);
  fillNames();
  if (focused) document.querySelector(`[data-focus="${CSS.escape(focused)}"]`)?.focus();
}

// -- the live trace ------------------------------------------------------------------------

function headerList(headers) {
  const list = el("dl", null, "headers");
  for (const [name, value] of headers) {
    list.appendChild(el("dt", name));
    list.appendChild(el("dd", value));
  }
  return list;
}

function bodyBlock(part) {
  if (!part.body) return el("p", "(no body)", "meta");
  let text = part.body;
  if (!part.truncated) {
    try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as it is */ }
  }
  const pre = el("pre", text, "body");
  if (!part.truncated) return pre;
  const box = el("div");
  box.append(pre, el("p", `(cut: the first ${state?.bodyLimit ?? ""} characters of ` +
    `${part.bodyBytes} bytes)`, "meta"));
  return box;
}

function callDetail(detail) {
  const box = el("div", null, "call");
  const request = detail.request;
  box.appendChild(el("h4", "Request"));
  box.appendChild(el("p", `${request.method} ${request.url}`, "line mono"));
  box.appendChild(headerList(request.headers));
  box.appendChild(bodyBlock(request));
  box.appendChild(el("h4", "Reply"));
  const tries = detail.attempts > 1 ? `, ${detail.attempts} tries` : "";
  if (detail.reply) {
    box.appendChild(el("p", `${detail.reply.status} in ${detail.durationMs} ms${tries}`,
      `line mono status-${Math.floor(detail.reply.status / 100)}xx`));
    box.appendChild(headerList(detail.reply.headers));
    box.appendChild(bodyBlock(detail.reply));
  } else {
    box.appendChild(el("p", `No reply after ${detail.durationMs} ms${tries}: ${detail.error}`,
      "line error"));
  }
  return box;
}

function traceItem(entry) {
  const item = el("li", null, `entry cat-${entry.category}`);
  item.dataset.id = entry.id;
  item.dataset.category = entry.category;
  const line = el("div", null, "entry-line");
  line.appendChild(when(entry.time));
  line.appendChild(el("span", entry.category, "badge"));
  line.appendChild(el("span", entry.hub || "-", "hub"));
  if (entry.connection_id) line.appendChild(el("code", entry.connection_id, "conn"));
  line.appendChild(el("span", entry.text, "text"));
  if (entry.detail) {
    const details = el("details");
    const summary = el("summary");
    summary.appendChild(line);
    details.append(summary, callDetail(entry.detail));
    item.appendChild(details);
    if (entry.detail.error || (entry.detail.reply && entry.detail.reply.status >= 400)) {
      item.classList.add("failed");
    }
  } else {
    item.appendChild(line);
  }
  item.entry = entry;
  return item;
}

function addTrace(entries) {
  const list = $("trace");
  const f = filters();
  for (const entry of entries) {
    lastId = Math.max(lastId, entry.id);
    const item = traceItem(entry);
    item.hidden = !traceShown(f, entry);
    list.prepend(item);
  }
  while (list.children.length > traceLength) list.lastElementChild.remove();
  countTrace();
}

function filterTrace() {
  const f = filters();
  for (const item of $("trace").children) item.hidden = !traceShown(f, item.entry);
  countTrace();
}

function countTrace() {
  const items = [...$("trace").children];
  const shown = items.filter((i) => !i.hidden).length;
  $("trace-count").textContent = shown === items.length
    ? `(${items.length})` : `(${shown} of ${items.length})`;
}

// -- polling -------------------------------------------------------------------------------

async function refresh() {
  if (!paused) {
    try {
      const response = await fetch(`/_emulator/state?after=${lastId}`, { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const next = await response.json();
      const { trace, ...rest } = next;
      state = rest;
      traceLength = state.traceLength;
      $("summary").textContent = `${state.url} · ${state.auth} · ${state.hubs.length} hub(s)`;
      $("status").textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
      $("status").className = "";
      render();
      addTrace(trace);
    } catch (error) {
      $("status").textContent = `Cannot reach the emulator (${error.message}); trying again…`;
      $("status").className = "error";
    }
  }
  setTimeout(refresh, 1000);
}

// -- sending and closing -------------------------------------------------------------------

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (response.ok) return null;
  try {
    return (await response.json()).message;
  } catch {
    return `HTTP ${response.status}`;
  }
}

function result(id, error, success) {
  const p = $(id);
  p.textContent = error ? `Refused: ${error}` : success;
  p.className = `result ${error ? "error" : "ok"}`;
}

function prepareSend(hub, to, name) {
  $("send-hub").value = hub;
  $("send-to").value = to;
  syncSendTo();
  $("send-name").value = name;
  $("send-data").focus();
}

function prepareAct(hub, connectionId) {
  $("act-connection").value = connectionId;
  $("act-connection").dataset.hub = hub;
  $("act-action").focus();
}

function syncSendTo() {
  const whole = $("send-to").value === "hub";
  $("send-name").disabled = whole;
  $("send-name").required = !whole;
  if (whole) $("send-name").value = "";
  fillNames();
}

function syncAction() {
  const close = $("act-action").value === "close";
  $("act-code").disabled = !close;
  $("act-reason").disabled = !close;
}

$("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const to = $("send-to").value;
  const body = {
    hub: $("send-hub").value, to,
    dataType: document.querySelector("input[name=send-type]:checked").value,
    data: $("send-data").value,
  };
  if (to !== "hub") body.name = $("send-name").value;
  const error = await post("/_emulator/messages", body);
  result("send-result", error,
    `Sent to ${to === "hub" ? `every connection of ${body.hub}` : `${to} ${body.name}`}.`);
});

$("act").addEventListener("submit", async (event) => {
  event.preventDefault();
  const id = $("act-connection").value.trim();
  const action = $("act-action").value;
  const body = {};
  const hub = $("act-connection").dataset.hub;
  if (hub) body.hub = hub;
  if (action === "close") {
    body.code = Number($("act-code").value);
    if ($("act-reason").value) body.reason = $("act-reason").value;
  }
  const error = await post(`/_emulator/connections/${encodeURIComponent(id)}/:${action}`, body);
  const done = { close: "Closed", drop: "Dropped", dropHalfOpen: "Dropped half-open" }[action];
  result("act-result", error, `${done} ${id}.`);
});

$("act-connection").addEventListener("input", () => delete $("act-connection").dataset.hub);
$("send-to").addEventListener("change", syncSendTo);
$("send-hub").addEventListener("change", fillNames);
$("act-action").addEventListener("change", syncAction);
$("filter-form").addEventListener("submit", (event) => event.preventDefault());
$("filter-form").addEventListener("input", () => { render(); filterTrace(); });
$("pause").addEventListener("click", (event) => {
  paused = !paused;
  event.target.textContent = paused ? "Resume updates" : "Pause updates";
  event.target.setAttribute("aria-pressed", String(paused));
});
syncSendTo();
syncAction();
refresh();
