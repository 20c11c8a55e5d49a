// The app closes a reliable client's connection with a reason: the client must see that reason
// in its disconnected event (its recovery attempt is refused with a bare 1008), then connect
// again as a new connection.
import { report, run, serviceClient, startClient, until } from "./harness.mjs";

run(async () => {
  const client = await startClient("closed");
  const first = client.connections[0];
  await serviceClient().closeConnection(first, { reason: "closed by the app" });
  await until(() => client.connections.length === 2, "the new connection");
  report("result", { connections: client.connections, disconnects: client.disconnects });
  client.stop();
});
