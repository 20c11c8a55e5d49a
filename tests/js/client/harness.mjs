// What every scenario shares: the app under test (WPS_APP, its /negotiate route gives client
// URLs), the emulator's connection string (WPS_CONNECTION_STRING) for the service SDK, and
// one JSON line on stdout per thing worth checking, which the pytest side reads.
import { WebPubSubClient, WebPubSubJsonProtocol, WebPubSubJsonReliableProtocol } from "@azure/web-pubsub-client";
import { WebPubSubServiceClient } from "@azure/web-pubsub";

export const HUB = process.env.WPS_HUB ?? "chat";

export function report(kind, fields = {}) {
  process.stdout.write(JSON.stringify({ kind, ...fields }) + "\n");
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `condition()` is true, polling; rejects after `timeoutMs`. */
export async function until(condition, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(20);
  }
}

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

/** Runs a scenario, reports its failure as a `failed` line, and ends the process either way
 * (the clients' timers would keep it alive). */
export function run(scenario) {
  scenario().then(
    () => process.exit(0),
    (error) => {
      report("failed", { error: String(error?.stack ?? error) });
      process.exit(1);
    },
  );
}
