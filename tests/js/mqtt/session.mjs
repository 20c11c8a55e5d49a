// Scenario 6, a session surviving a drop: a client with a lasting session (clean: false, and
// an MQTT 5 session expiry) subscribes to "room" at QoS 1; the pytest side drops its network
// connection and sends to "room" while it is away (step "sent"); connecting again resumes the
// session (without subscribing again) and brings that message; in MQTT 5, of two messages
// another client published meanwhile, the one whose expiry passed is not delivered, the other
// comes with what is left of its expiry. An MQTT 5 client then ends its session with its
// DISCONNECT (session expiry 0); an MQTT 3.1.1 one cannot, and its session waits for it.
import {
  V5, connected, messages, open, openConnected, report, run, sleep, step, subscribe, until,
} from "./harness.mjs";

run(async () => {
  const device = open("device", {
    clean: false,
    resubscribe: false,
    ...(V5 ? { properties: { sessionExpiryInterval: 30 } } : {}),
  });
  const first = await connected(device);
  const { granted } = await subscribe(device, "room", { qos: 1 });
  report("subscribed", { connack: first, granted });
  await until(() => device.closes > 0, "the drop");
  report("dropped", { disconnects: device.disconnects });
  await step("sent");
  if (V5) {
    const [sender] = await openConnected("sender");
    await sender.publishAsync("room", "short-lived", { qos: 1, properties: { messageExpiryInterval: 1 } });
    await sender.publishAsync("room", "long-lived", { qos: 1, properties: { messageExpiryInterval: 60 } });
    await sender.endAsync();
    await sleep(1500);
  }
  device.reconnect();
  const second = await connected(device, "the CONNACK after the drop");
  await messages(device, V5 ? 2 : 1, "the messages sent while away");
  await sleep(300);
  report("resumed", { connack: second, messages: device.messages });
  await device.endAsync(false, V5 ? { properties: { sessionExpiryInterval: 0 } } : {});
});
