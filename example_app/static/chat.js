// The chat page, on the official browser client of Azure Web PubSub, @azure/web-pubsub-client
// (vendored in static/vendor/ by example_app/vendor/build.sh). The client negotiates through the
// app's /negotiate before every connection, reconnects by itself, and sends the user events
// (join, leave, message) the app answers; the answers, and what the app sends to the room,
// arrive as server and group messages. Everything that comes from the server or from other users
// is shown with textContent, never as HTML.
import { WebPubSubClient, WebPubSubJsonProtocol } from "./vendor/web-pubsub-client.js";

const root = document.getElementById("chat");
if (root) run(root);

function run(root) {
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
  let connected = false;
  let everConnected = false;
  let attempts = 0; // connections tried since the last one that worked
  let startFailures = 0;
  let toldServerGone = false;
  let stopped = false;

  const client = new WebPubSubClient(
    { getClientAccessUrl: clientAccessUrl },
    // The plain JSON subprotocol rather than the client's default reliable one: the app sends
    // the room's history with every (re)connection, so nothing said meanwhile is missed, and the
    // page can say at once that the connection is gone, where the reliable protocol would spend
    // up to 30 s quietly trying to recover it.
    { protocol: WebPubSubJsonProtocol() },
  );

  const timeOfDay = { hour: "2-digit", minute: "2-digit" };
  const clock = (date) => date.toLocaleTimeString([], timeOfDay);

  // Today's messages show the time; older ones the day too, and the year when it is not this one.
  function when(date, now = new Date()) {
    if (date.toDateString() === now.toDateString()) return clock(date);
    const day = date.getFullYear() === now.getFullYear()
      ? { day: "numeric", month: "short" }
      : { day: "numeric", month: "short", year: "numeric" };
    return `${date.toLocaleDateString([], day)}, ${clock(date)}`;
  }

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
    const date = new Date(message.time);
    const time = element("time", "", when(date));
    time.dateTime = message.time;
    time.title = date.toLocaleString([], { dateStyle: "full", timeStyle: "short" });
    item.append(element("span", "who", message.user), time, element("p", "text", message.text));
    append(item);
  }

  function showMembers(names) {
    members.replaceChildren(...names.map((name) => element("li", "", name)));
  }

  function enableComposer() {
    const ready = connected && room !== null;
    input.disabled = sendButton.disabled = leaveButton.disabled = !ready;
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
      addNote(room ? `You joined #${room}.` : "You left the room. Pick one from the rooms.");
    }
    showMembers(snapshot.members);
    sentCounter.textContent = snapshot.sent;
    errorLine.textContent = "";
    enableComposer();
  }

  // What the app sends: replies to our events, and what it sends to the room.
  function onServerData(data) {
    if (data === null || typeof data !== "object") return;
    switch (data.kind) {
      case "room":
        enterRoom(data);
        break;
      case "message":
        if (data.room === room) addMessage(data);
        break;
      case "presence":
        // Never about ourselves, but for the one race the app cannot order: a reconnecting
        // page's new connection can hear its old one's departure.
        if (data.room === room && data.user !== me) {
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

  function serverGone() {
    setStatus("unreachable", "Cannot reach the chat server. Retrying…");
    if (toldServerGone) return;
    toldServerGone = true;
    addNote("Cannot reach the chat server: it has stopped, or the network is down. " +
            "The chat carries on by itself when the server is back.", true);
  }

  // The client calls this before every new connection, its reconnections included.
  async function clientAccessUrl() {
    attempts += 1;
    if (attempts > 1 && status.dataset.state !== "unreachable") {
      setStatus("reconnecting", `Reconnecting (attempt ${attempts})…`);
    }
    let response;
    try {
      response = await fetch("/negotiate", { cache: "no-store" });
    } catch {
      serverGone(); // never the browser's own words ("Failed to fetch")
      throw new Error("The chat server is not reachable.");
    }
    if (response.status === 401 || response.status === 409) {
      // Signed out in another tab, or the name went to somebody else: the reloaded page says so.
      window.location.reload();
      return new Promise(() => {}); // never settles: the page is going away
    }
    if (!response.ok) {
      setStatus("unreachable", `The chat server answered ${response.status}. Retrying…`);
      throw new Error(`The chat server answered ${response.status}.`);
    }
    const access = await response.json();
    // The room to be put in, so that a reconnected page lands where it was.
    const url = new URL(access.url);
    url.searchParams.set("room", wanted || "");
    return url.toString();
  }

  client.on("connected", (event) => {
    connected = true;
    attempts = 0;
    startFailures = 0;
    toldServerGone = false;
    status.dataset.connectionId = event.connectionId;
    status.title = `Connection ${event.connectionId}`;
    if (everConnected) {
      setStatus("connected", `Reconnected at ${clock(new Date())}`);
      addNote("Reconnected.");
    } else {
      setStatus("connected", "Connected");
    }
    everConnected = true;
    enableComposer();
  });

  client.on("disconnected", (event) => {
    connected = false;
    enableComposer();
    if (stopped) return;
    const reason = event.message && event.message.message;
    addNote(reason ? `Connection lost: ${reason}` : "Connection lost.", true);
    setStatus("reconnecting", "Connection lost. Reconnecting…");
  });

  client.on("stopped", () => {
    connected = false;
    enableComposer();
    if (!stopped) setStatus("stopped", "Disconnected. Reload the page to connect again.");
  });

  client.on("server-message", (event) => onServerData(event.message.data));
  client.on("group-message", (event) => onServerData(event.message.data));

  async function send(event, data) {
    if (!connected) {
      errorLine.textContent = "Not connected: nothing was sent.";
      return false;
    }
    try {
      await client.sendEvent(event, data, "json");
      return true;
    } catch (error) {
      const detail = error && error.errorDetail && error.errorDetail.message;
      errorLine.textContent = detail
        ? `Not sent: ${detail}`
        : "Not sent: the connection was lost. Try again once it is back.";
      return false;
    }
  }

  // After a first connection that failed: did the app refuse us, and why?
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

  // The client reconnects by itself once it has been connected; a first connection that
  // fails is tried again here.
  async function start() {
    if (stopped) return;
    try {
      await client.start();
    } catch {
      if (await showRefusal()) return;
      startFailures += 1;
      const seconds = Math.min(10, 2 ** (startFailures - 1));
      if (status.dataset.state !== "unreachable") {
        setStatus("reconnecting", `Could not connect. Trying again in ${seconds} s…`);
      }
      setTimeout(start, seconds * 1000);
    }
  }

  for (const button of document.querySelectorAll("button.room")) {
    button.addEventListener("click", () => {
      if (button.dataset.room !== room) send("join", { room: button.dataset.room });
    });
  }
  leaveButton.addEventListener("click", () => send("leave", {}));
  byId("composer").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    if (!(await send("message", { text })) && !input.value) input.value = text;
  });
  window.addEventListener("pagehide", () => {
    stopped = true;
    client.stop();
  });

  start();
}
