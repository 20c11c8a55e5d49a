// What every scenario shares: the app under test (WPS_APP, its /negotiate route gives client
// URLs), the emulator's connection string (WPS_CONNECTION_STRING) for the service SDK, and
// one JSON line on stdout per thing worth checking, which the pytest side reads.
import { WebPubSubClient, WebPubSubJsonProtocol, WebPubSubJsonReliableProtocol } from "@azure/web-pubsub-client";
import { WebPubSubServiceClient } from "@azure/web-pubsub";
import { report, run, sleep, until } from "../scenario.mjs";

export { report, run, sleep, until };

export const HUB = process.env.WPS_HUB ?? "chat";

async function negotiate(user) {
  const response = await fetch(`${process.env.WPS_APP}/negotiate?user=${encodeURIComponent(user)}`);
  if (!response.ok) {
    throw new Error(`negotiate answered ${response.status}`);
  }
  return (await response.json()).url;
}

/** An official client for `user`, with what it saw recorded on it: `connections` (the ids of
 * its connected events), `disconnects` (the messages of its disconnected events), `messages`
 * (group and server messages) and `stopped`. */
export function createClient(user, { reliable = true, ...options } = {}) {
  const client = new WebPubSubClient(
    { getClientAccessUrl: () => negotiate(user) },
    {
      protocol: reliable ? WebPubSubJsonReliableProtocol() : WebPubSubJsonProtocol(),
      reconnectRetryOptions: { retryDelayInMs: 100 },
      ...options,
    },
  );
  client.connections = [];
  client.disconnects = [];
  client.messages = [];
  client.stopped = false;
  client.on("connected", (e) => client.connections.push(e.connectionId));
  client.on("disconnected", (e) => client.disconnects.push(e.message?.message ?? null));
  client.on("group-message", (e) => client.messages.push(e.message));
  client.on("server-message", (e) => client.messages.push(e.message));
  client.on("stopped", () => {
    client.stopped = true;
  });
  return client;
}

export async function startClient(user, options) {
  const client = createClient(user, options);
  await client.start();
  await until(() => client.connections.length > 0, "the connected event");
  return client;
}

export function serviceClient() {
  return new WebPubSubServiceClient(process.env.WPS_CONNECTION_STRING, HUB, {
    allowInsecureConnection: true,
  });
}
