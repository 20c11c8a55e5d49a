// Protobuf clients (ws + protobufjs from the documented schema) and the official JSON client in
// one group: every data type crosses both ways with the documented conversions; ping, events,
// the reliable protocol's sequence ids, and a malformed frame.
import WebSocket from "ws";
import { Any, Downstream, Upstream } from "./protobuf_schema.mjs";
import { report, run, startClient, until } from "./harness.mjs";

async function negotiate(user) {
  const response = await fetch(`${process.env.WPS_APP}/negotiate?user=${user}`);
  return (await response.json()).url;
}

/** A protobuf client: what it received, decoded, in `inbox`. */
async function protobufClient(user, subprotocol) {
  const ws = new WebSocket(await negotiate(user), subprotocol);
  const client = { ws, inbox: [], closed: null };
  ws.on("message", (data, isBinary) => {
    client.inbox.push(isBinary ? Downstream.toObject(Downstream.decode(data), { longs: Number, bytes: Array, oneofs: true }) : { text: String(data) });
  });
  ws.on("close", (code) => {
    client.closed = code;
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  client.protocol = ws.protocol;
  client.send = (message) => ws.send(Upstream.encode(Upstream.fromObject(message)).finish());
  client.take = async (kind, what = kind) => {
    await until(() => client.inbox.some((m) => m[kind] !== undefined), what);
    const index = client.inbox.findIndex((m) => m[kind] !== undefined);
    return client.inbox.splice(index, 1)[0][kind];
  };
  return client;
}

const TEST_ANY = { type_url: "type.googleapis.com/azure.webpubsub.TestMessage", value: [8, 1] };

run(async () => {
  const anyBytes = Array.from(Any.encode(Any.fromObject({ ...TEST_ANY, value: Buffer.from(TEST_ANY.value) })).finish());
  const json = await startClient("json-user", { reliable: false });
  await json.joinGroup("mix");
  const pb = await protobufClient("pb-user", "protobuf.webpubsub.azure.v1");
  const connected = (await pb.take("system_message")).connected_message;
  pb.send({ join_group_message: { group: "mix", ack_id: 1 } });
  const joined = await pb.take("ack_message");

  // JSON client -> protobuf client.
  await json.sendToGroup("mix", "hello", "text", { noEcho: true });
  await json.sendToGroup("mix", { a: 1 }, "json", { noEcho: true });
  await json.sendToGroup("mix", new Uint8Array([1, 2, 3]).buffer, "binary", { noEcho: true });
  const fromJson = [];
  for (let n = 0; n < 3; n++) {
    fromJson.push(await pb.take("data_message", "a message from the JSON client"));
  }

  // Protobuf client -> JSON client (and back to itself: no noEcho).
  pb.send({ send_to_group_message: { group: "mix", data: { text_data: "pb text" } } });
  pb.send({ send_to_group_message: { group: "mix", data: { binary_data: [4, 5] } } });
  pb.send({ send_to_group_message: { group: "mix", data: { protobuf_data: { ...TEST_ANY, value: Buffer.from(TEST_ANY.value) } } } });
  pb.send({ send_to_group_message: { group: "mix", data: { json_data: '{"b":2}' }, metadata: { k: "v" } } });
  await until(() => json.messages.length >= 4, "the JSON client's messages");
  const toJson = json.messages.map((m) => ({
    dataType: m.dataType,
    data: m.data instanceof ArrayBuffer ? Array.from(new Uint8Array(m.data)) : m.data,
    metadata: m.metadata ?? null,
  }));
  const echoed = [];
  for (let n = 0; n < 4; n++) {
    echoed.push(await pb.take("data_message", "its own message"));
  }

  pb.send({ ping_message: {} });
  const pong = await pb.take("pong_message");
  pb.send({ event_message: { event: "echo", data: { protobuf_data: { ...TEST_ANY, value: Buffer.from(TEST_ANY.value) } }, ack_id: 2 } });
  const reply = await pb.take("data_message", "the event's reply");
  const eventAck = await pb.take("ack_message", "the event's ack");

  const reliable = await protobufClient("pb-reliable", "protobuf.reliable.webpubsub.azure.v1");
  const reliableConnected = (await reliable.take("system_message")).connected_message;
  reliable.send({ join_group_message: { group: "mix", ack_id: 1 } });
  await reliable.take("ack_message");
  await json.sendToGroup("mix", "numbered", "text", { noEcho: true });
  const numbered = await reliable.take("data_message");
  reliable.send({ sequence_ack_message: { sequence_id: numbered.sequence_id } });

  pb.ws.send(Buffer.from([0xff]));
  await until(() => pb.closed !== null, "the close");
  const disconnected = pb.inbox.find((m) => m.system_message)?.system_message.disconnected_message;

  report("result", {
    protocols: [pb.protocol, reliable.protocol],
    connected, joined, fromJson, toJson, echoed, anyBytes, pong, reply, eventAck,
    reliableConnected, numbered, closed: pb.closed, disconnected,
  });
  reliable.ws.close();
  json.stop();
});
