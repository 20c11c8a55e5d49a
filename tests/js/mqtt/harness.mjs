// What every MQTT scenario shares: mqtt.js clients of the emulator's MQTT endpoint
// (WPS_MQTT_URL, an MQTT client URL with its access token from the service SDK), the protocol
// version under test (WPS_MQTT_VERSION: 4 for MQTT 3.1.1, 5 for MQTT 5.0), one JSON line on
// stdout per thing worth checking, and steps the pytest side announces on stdin when it has
// done its part (sent through the REST API, dropped a connection...).
import { createInterface } from "node:readline";
import mqtt from "mqtt";
import { report, run, sleep, until } from "../scenario.mjs";

export { report, run, sleep, until };

export const VERSION = Number(process.env.WPS_MQTT_VERSION ?? "5");
export const V5 = VERSION === 5;

const lines = [];
const readers = [];
createInterface({ input: process.stdin }).on("line", (line) => {
  const reader = readers.shift();
  if (reader) {
    reader(line);
  } else {
    lines.push(line);
  }
});

/** Waits for the pytest side to announce `name` on stdin (`{"step": name, ...}`); its fields. */
export async function step(name, timeoutMs = 20000) {
  report("waiting", { step: name });
  let timer;
  const line = lines.length > 0 ? lines.shift() : await new Promise((resolve, reject) => {
    readers.push(resolve);
    timer = setTimeout(() => reject(new Error(`timed out waiting for the step ${name}`)), timeoutMs);
  });
  clearTimeout(timer);
  const { step: announced, ...fields } = JSON.parse(line);
  if (announced !== name) {
    throw new Error(`expected the step ${name}, got ${announced}`);
  }
  return fields;
}

/** What a received PUBLISH carried, in JSON terms (payload as text and as bytes). */
export function describe(packet) {
  const properties = packet.properties ?? {};
  return {
    topic: packet.topic,
    text: packet.payload.toString("utf8"),
    bytes: [...packet.payload],
    qos: packet.qos,
    dup: packet.dup,
    retain: packet.retain,
    contentType: properties.contentType ?? null,
    correlationData: properties.correlationData ? properties.correlationData.toString("utf8") : null,
    userProperties: properties.userProperties ?? null,
    messageExpiry: properties.messageExpiryInterval ?? null,
  };
}

/** The parts of a CONNACK worth checking. */
function describeConnack(packet) {
  return {
    sessionPresent: packet.sessionPresent,
    code: packet.reasonCode ?? packet.returnCode,
    properties: packet.properties ?? null,
  };
}

/** An mqtt.js client (not reconnecting by itself) with what it saw recorded on it: `connacks`,
 * `acks` (PUBACK, PUBREC and PUBCOMP: {cmd, reasonCode}), `messages` (described), `errors`
 * ({message, code}), `disconnects` (the server's DISCONNECT packets: {reasonCode,
 * properties}) and `closes` (network connections that ended). */
export function open(clientId, { version = VERSION, ...options } = {}) {
  const client = mqtt.connect(process.env.WPS_MQTT_URL, {
    protocolVersion: version,
    clientId,
    reconnectPeriod: 0,
    connectTimeout: 10000,
    ...options,
  });
  client.connacks = [];
  client.acks = [];
  client.messages = [];
  client.errors = [];
  client.disconnects = [];
  client.closes = 0;
  client.on("packetreceive", (packet) => {
    if (packet.cmd === "connack") {
      client.connacks.push(describeConnack(packet));
    } else if (["puback", "pubrec", "pubcomp"].includes(packet.cmd)) {
      client.acks.push({ cmd: packet.cmd, reasonCode: packet.reasonCode ?? 0 });
    }
  });
  client.on("message", (_topic, _payload, packet) => client.messages.push(describe(packet)));
  client.on("error", (error) => client.errors.push({ message: error.message, code: error.code ?? null }));
  client.on("disconnect", (packet) => client.disconnects.push({
    reasonCode: packet.reasonCode ?? 0,
    properties: packet.properties ?? null,
  }));
  client.on("close", () => {
    client.closes += 1;
  });
  return client;
}

/** Resolves with the CONNACK of the client's next network connection once it is accepted;
 * rejects if it is refused or closes first. */
export async function connected(client, what = "the CONNACK") {
  const before = client.connacks.length;
  const closes = client.closes;
  await until(() => client.connacks.length > before || client.closes > closes, what);
  const connack = client.connacks[before];
  if (connack === undefined || connack.code !== 0) {
    throw new Error(`${client.options.clientId} was not accepted: ${JSON.stringify({ connack, errors: client.errors })}`);
  }
  await until(() => client.connected, "the connect event");
  return connack;
}

/** Opens a client and waits for its CONNACK. */
export async function openConnected(clientId, options) {
  const client = open(clientId, options);
  return [client, await connected(client)];
}

/** Waits until the client holds `count` messages; them. */
export async function messages(client, count, what = `${count} messages`) {
  await until(() => client.messages.length >= count, `${what} on ${client.options.clientId}`);
  return client.messages;
}

/** Subscribes and waits for the SUBACK: its codes (a granted QoS, or a failure code) and the
 * error mqtt.js raised for a failure, if any. */
export function subscribe(client, topic, options = { qos: 1 }) {
  return new Promise((resolve) => {
    client.subscribe(topic, options, (error, _subscriptions, packet) => {
      resolve({ granted: packet?.granted ?? null, error: error ? error.message : null });
    });
  });
}

/** MQTT 5 PUBLISH properties, or none for MQTT 3.1.1 (which has no properties). */
export function properties(fields) {
  return V5 ? { properties: fields } : {};
}
