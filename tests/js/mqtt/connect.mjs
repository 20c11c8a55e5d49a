// Scenarios 1 and 2: a client with a username, a binary password (and, in MQTT 5, user
// properties) is accepted with the app's CONNACK properties; then one client per username of
// WPS_REJECT (comma-separated) is refused by the app, and reports the CONNACK and the error
// mqtt.js raised for it.
import { V5, open, openConnected, report, run, until } from "./harness.mjs";

run(async () => {
  const [client, connack] = await openConnected("device1", {
    username: "dev",
    password: Buffer.concat([Buffer.from([0xff]), Buffer.from("secret")]),
    ...(V5 ? { properties: { userProperties: { model: "x1" } } } : {}),
  });
  report("accepted", { connack });
  await client.endAsync();
  for (const username of (process.env.WPS_REJECT ?? "").split(",").filter(Boolean)) {
    const refused = open("refused", { username });
    await until(() => refused.closes > 0, `the refusal of ${username}`);
    refused.end(true);
    report("refused", { username, connacks: refused.connacks, errors: refused.errors,
                        connected: refused.connected });
  }
});
