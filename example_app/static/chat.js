// The chat page. It negotiates through /negotiate, connects with the json.webpubsub.azure.v1
// subprotocol and sends user events (join, leave, message) the app answers. Everything that
// comes from the server or from other users is shown with textContent, never as HTML.
"use strict";

(() => {
  const root = document.getElementById("chat");
  if (!root) return;

  const SUBPROTOCOL = "json.webpubsub.azure.v1";
  const me = root.dataset.user;
  const byId = (id) => document.getElementById(id);
  const status = byId("status");
  const log = byId("log");
  const members = byId("members");
  const input = byId("text");
  const sendButton = byId("send");
  const leaveButton = byId("leave");
  const errorLine = byId("error");
  const sentCounter = byId("sent");

  let room = null; // the room on screen
  let wanted = sessionStorage.getItem("chat.room") || root.dataset.defaultRoom;
  let socket = null;
  let nextAckId = 1;
  let failures = 0; // failed attempts since the last good connection
  let everConnected = false;
  let stopped = false;

  const clock = (date) => date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(state, label) {
    status.dataset.state = state;
    status.textContent = label;
  }

  function append(item) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.append(item);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function addNote(text, warning = false) {
    append(element("li", warning ? "event warning" : "event", text));
  }

  function addMessage(message) {
    const item = element("li", message.user === me ? "message mine" : "message");
    item.dataset.id = message.id;
    const time = element("time", "", clock(new Date(message.time)));
    time.dateTime = message.time;
    time.title = message.time;
    item.append(element("span", "who", message.user), time, element("p", "text", message.text));
    append(item);
  }

  function showMembers(names) {
    members.replaceChildren(...names.map((name) => element("li", "", name)));
  }

  function enableComposer() {
    const ready = socket !== null && socket.readyState === WebSocket.OPEN && room !== null;
    input.disabled = sendButton.disabled = !ready;
    leaveButton.disabled = !ready;
  }

  function enterRoom(snapshot) {
    const again = room !== null && snapshot.room === room; // back after a reconnect
    room = snapshot.room;
    wanted = room;
    if (room) sessionStorage.setItem("chat.room", room);
    else sessionStorage.removeItem("chat.room");
    for (const button of document.querySelectorAll("button.room")) {
      button.setAttribute("aria-current", String(button.dataset.room === room));
    }
    byId("room-title").textContent = room ? `#${room}` : "Not in a room";
    if (again) {
      // Keep what is on screen; add what was said while the connection was down.
      const shown = new Set([...log.querySelectorAll(".message")].map((item) => item.dataset.id));
      snapshot.history.filter((message) => !shown.has(String(message.id))).forEach(addMessage);
    } else {
      log.replaceChildren();
      snapshot.history.forEach(addMessage);
      addNote(room ? `You joined #${room}.` : "You left the room. Pick one on the left.");
    }
    showMembers(snapshot.members);
    sentCounter.textContent = snapshot.sent;
    errorLine.textContent = "";
    enableComposer();
  }

  // What the app sends: replies to our events, and what it sends to the room.
  function onServerData(data) {
    switch (data.kind) {
      case "room":
        enterRoom(data);
        break;
      case "message":
        if (data.room === room) addMessage(data);
        break;
      case "presence":
        if (data.room === room) {
          addNote(`${data.user} ${data.action === "arrived" ? "arrived" : "left"}.`);
          showMembers(data.members);
        }
        break;
      case "sent":
        sentCounter.textContent = data.sent;
        errorLine.textContent = "";
        break;
      case "error":
        errorLine.textContent = data.error;
        break;
      default:
        break;
    }
  }

  function sendEvent(event, data) {
    if (socket === null || socket.readyState !== WebSocket.OPEN) {
      errorLine.textContent = "Not connected: nothing was sent.";
      return false;
    }
    socket.send(JSON.stringify({ type: "event", event, dataType: "json", data, ackId: nextAckId++ }));
    return true;
  }

  // After a connection that never opened: did the app refuse us, and why?
  async function showRefusal() {
    let info;
    try {
      const response = await fetch("/api/session", { cache: "no-store" });
      info = await response.json();
    } catch {
      return false;
    }
    if (!info.refusal) return false;
    stopped = true;
    setStatus("refused", `Refused (${info.refusal.status})`);
    byId("notice-text").textContent =
      `The chat refused the name “${info.name}” (${info.refusal.status}): ${info.refusal.reason}`;
    byId("notice").hidden = false;
    return true;
  }

  function retry(why) {
    failures += 1;
    const delay = Math.min(10000, 500 * 2 ** (failures - 1));
    const seconds = Math.max(1, Math.round(delay / 1000));
    const what = everConnected ? "Connection lost" : "Could not connect";
    setStatus("reconnecting", `${what}${why ? ` (${why})` : ""}. Reconnecting in ${seconds} s…`);
    setTimeout(connect, delay);
  }

  async function connect() {
    if (stopped) return;
    setStatus(everConnected ? "reconnecting" : "connecting",
              everConnected ? "Reconnecting…" : "Connecting…");
    let access;
    try {
      const response = await fetch("/negotiate", { cache: "no-store" });
      if (response.status === 401) {
        window.location.reload(); // signed out in another tab
        return;
      }
      if (!response.ok) throw new Error(`negotiate answered ${response.status}`);
      access = await response.json();
    } catch (error) {
      retry(error.message);
      return;
    }
    // The room to be put in, so a reconnected page lands where it was.
    const separator = access.url.includes("?") ? "&" : "?";
    const ws = new WebSocket(
      `${access.url}${separator}room=${encodeURIComponent(wanted || "")}`, SUBPROTOCOL);
    socket = ws;
    let welcomed = false;
    let reason = null;

    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.type === "system" && frame.event === "connected") {
        welcomed = true;
        failures = 0;
        status.dataset.connectionId = frame.connectionId;
        status.title = `Connection ${frame.connectionId}`;
        if (everConnected) {
          setStatus("connected", `Reconnected at ${clock(new Date())}`);
          addNote("Reconnected.");
        } else {
          setStatus("connected", "Connected");
        }
        everConnected = true;
        enableComposer();
      } else if (frame.type === "system" && frame.event === "disconnected") {
        reason = frame.message || null;
      } else if (frame.type === "ack" && !frame.success && frame.error) {
        errorLine.textContent = `The service refused that: ${frame.error.message || frame.error.name}`;
      } else if (frame.type === "message" && frame.dataType === "json" && frame.data) {
        onServerData(frame.data);
      }
    });

    ws.addEventListener("close", async () => {
      if (socket === ws) socket = null;
      enableComposer();
      if (stopped) return;
      if (!welcomed && (await showRefusal())) return;
      if (welcomed) addNote(reason ? `Connection lost: ${reason}` : "Connection lost.", true);
      retry(reason);
    });
  }

  for (const button of document.querySelectorAll("button.room")) {
    button.addEventListener("click", () => {
      if (button.dataset.room !== room) sendEvent("join", { room: button.dataset.room });
    });
  }
  leaveButton.addEventListener("click", () => sendEvent("leave", {}));
  byId("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text && sendEvent("message", { text })) input.value = "";
  });
  window.addEventListener("pagehide", () => {
    stopped = true;
    if (socket !== null) socket.close(1000);
  });

  connect();
})();
