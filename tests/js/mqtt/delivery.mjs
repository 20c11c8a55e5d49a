// Scenario 6, the rest: a client whose network connection breaks (mqtt.js destroys its
// stream) has its last will published, one that ends with DISCONNECT does not; QoS 2
// messages between two mqtt.js clients arrive exactly once, in order; and a QoS 1 message the
// client did not acknowledge before its network connection broke comes again, marked DUP, when
// it resumes its session.
import {
  V5, connected, messages, open, openConnected, report, run, sleep, subscribe, until,
} from "./harness.mjs";

run(async () => {
  const [watcher] = await openConnected("watcher", { version: 5 });
  await subscribe(watcher, "status", { qos: 1 });
  const will = { topic: "status", payload: Buffer.from("device gone"), qos: 1, retain: false };
  const [broken] = await openConnected("broken", { will });
  broken.stream.destroy();
  await messages(watcher, 1, "the last will");
  const [polite] = await openConnected("polite", { will: { ...will, payload: Buffer.from("polite gone") } });
  await polite.endAsync();
  await sleep(500);
  report("wills", { messages: watcher.messages, brokenCloses: broken.closes });

  const [listener] = await openConnected("listener");
  const [sender] = await openConnected("sender");
  const { granted } = await subscribe(listener, "room", { qos: 2 });
  await Promise.all([0, 1, 2, 3, 4].map((n) => sender.publishAsync("room", `m${n}`, { qos: 2 })));
  await messages(listener, 5, "the QoS 2 messages");
  await sleep(500);
  report("qos2", { granted, messages: listener.messages, acks: sender.acks });

  const holder = open("holder", {
    clean: false,
    resubscribe: false,
    ...(V5 ? { properties: { sessionExpiryInterval: 30 } } : {}),
  });
  // mqtt.js acknowledges a message when its handleMessage calls back: never for the first one.
  const handleMessage = holder.handleMessage.bind(holder);
  holder.handleMessage = (packet, callback) => {
    if (holder.messages.length > 1) {
      handleMessage(packet, callback);
    }
  };
  await connected(holder);
  await subscribe(holder, "inbox", { qos: 1 });
  await sender.publishAsync("inbox", "important", { qos: 1 });
  await messages(holder, 1, "the first delivery");
  holder.stream.destroy();
  await until(() => holder.closes > 0, "the broken connection");
  holder.reconnect();
  const resumed = await connected(holder, "the CONNACK after the break");
  await messages(holder, 2, "the message sent again");
  await sleep(300);
  report("redelivered", { connack: resumed, messages: holder.messages });
  await Promise.all([
    watcher.endAsync(), listener.endAsync(), sender.endAsync(),
    holder.endAsync(false, V5 ? { properties: { sessionExpiryInterval: 0 } } : {}),
  ]);
});
