// Scenarios 4 and 5: user events published to $webpubsub/server/events/{event} (with a
// correlation id, a content type and user properties in MQTT 5) come back on .../succeeded or
// .../failed; then (step "sent") what the pytest side sent through the REST API arrives, on
// $webpubsub/server/messages and on the group topic "news"; then the REST API closes the
// connection with a reason.
import { messages, openConnected, properties, report, run, step, subscribe, until } from "./harness.mjs";

run(async () => {
  const [client] = await openConnected("caller", { username: "alice" });
  const { granted } = await subscribe(client, "news", { qos: 0 });
  await client.publishAsync("$webpubsub/server/events/echo", "ping", {
    qos: 1,
    ...properties({
      contentType: "text/plain",
      correlationData: Buffer.from("r1"),
      userProperties: { a: "b" },
    }),
  });
  await messages(client, 1, "the echo reply");
  await client.publishAsync("$webpubsub/server/events/fail", "x", {
    qos: 0,
    ...properties({ correlationData: Buffer.from("r2") }),
  });
  await messages(client, 2, "the failed reply");
  report("events", { granted, messages: client.messages.slice(0, 2) });
  await step("sent");
  await messages(client, 7, "the REST sends");
  report("rest", { messages: client.messages.slice(2) });
  await until(() => client.closes > 0, "the close by the REST API");
  report("closed", { disconnects: client.disconnects, errors: client.errors });
});
