// Scenario 3: an mqtt.js sender publishes to the topic "room" (JSON and text with their MQTT 5
// content types, binary without, at QoS 1 and 2) to an mqtt.js listener subscribed at QoS 2,
// while the pytest side's paho client and WebSocket JSON client in the group "room" watch;
// then (step "sent") what those two sent reaches the listener.
import { V5, messages, openConnected, properties, report, run, sleep, step, subscribe } from "./harness.mjs";

run(async () => {
  const [listener] = await openConnected("jslistener");
  const [sender] = await openConnected("jssender");
  const { granted } = await subscribe(listener, "room", { qos: 2 });
  report("subscribed", { granted });
  await sender.publishAsync("room", '{"t":1}', { qos: 1, ...properties({ contentType: "application/json" }) });
  await sender.publishAsync("room", "plain", { qos: 1, ...properties({ contentType: "text/plain" }) });
  await sender.publishAsync("room", Buffer.from([0, 1]), { qos: 2 });
  await messages(listener, 3, "the sender's messages");
  report("published", {
    messages: listener.messages.slice(0, 3),
    acks: sender.acks,
  });
  await step("sent");
  await messages(listener, 5, "the paho and WebSocket messages");
  await sleep(200);
  report("result", { messages: listener.messages.slice(3), sender: sender.messages, v5: V5 });
  await Promise.all([listener.endAsync(), sender.endAsync()]);
});
