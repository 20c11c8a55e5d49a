// A client that says nothing for WPS_IDLE_MS (the client sends its keep-alive pings) must
// still be the same connection afterwards, and still work.
import { report, run, sleep, startClient, until } from "./harness.mjs";

const IDLE_MS = Number(process.env.WPS_IDLE_MS ?? 60000);

run(async () => {
  const reliable = process.env.WPS_PROTOCOL !== "json";
  const client = await startClient("idler", { reliable });
  const first = client.connections[0];
  report("connected", { connectionId: first });
  await sleep(IDLE_MS);
  await client.joinGroup("after-idle");
  await client.sendToGroup("after-idle", "still here", "text");
  await until(() => client.messages.length > 0, "the group message");
  report("result", {
    connections: client.connections,
    disconnects: client.disconnects,
    stopped: client.stopped,
    data: client.messages[0].data,
  });
  client.stop();
});
