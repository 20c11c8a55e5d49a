// Scenario 7: wildcard and shared subscriptions are refused in the SUBACK (the connection goes
// on), a PUBLISH to the service's reserved topics is refused in its PUBACK (in MQTT 5), and a
// retained PUBLISH closes the connection (with DISCONNECT 0x9A in MQTT 5).
import { openConnected, report, run, subscribe, until } from "./harness.mjs";

/** Publishes at QoS 1: the error mqtt.js raised (its message and reason code), or null. */
async function publish(client, topic, payload) {
  try {
    await client.publishAsync(topic, payload, { qos: 1 });
    return null;
  } catch (error) {
    return { message: error.message, code: error.code ?? null };
  }
}

run(async () => {
  const [client, connack] = await openConnected("device");
  const subacks = {};
  for (const topic of ["a/+", "a/#", "$share/g/a", "plain"]) {
    subacks[topic] = await subscribe(client, topic, { qos: 1 });
  }
  const unsubacks = {};
  for (const topic of ["plain", "never"]) {
    const packet = await client.unsubscribeAsync(topic);
    unsubacks[topic] = packet?.reasonCode ?? packet?.granted ?? null;
  }
  const reserved = await publish(client, "$webpubsub/server/messages", "not mine");
  const plain = await publish(client, "plain", "no one listens");
  report("subscribed", { connack, subacks, unsubacks, reserved, plain, acks: client.acks });
  client.publish("plain", "retained", { qos: 0, retain: true });
  await until(() => client.closes > 0, "the close after a retained publish");
  report("closed", { disconnects: client.disconnects, errors: client.errors, messages: client.messages });
});
