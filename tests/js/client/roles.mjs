// Wildcard group roles from the app's negotiate options, as the official client meets them:
// joins and sends inside the patterns succeed, the others are refused (Forbidden).
import { report, run, startClient } from "./harness.mjs";

async function outcome(promise) {
  try {
    await promise;
    return "ok";
  } catch (error) {
    return error.errorDetail?.name ?? String(error);
  }
}

run(async () => {
  const client = await startClient("wild", { messageRetryOptions: { maxRetries: 0 } });
  report("result", {
    joinPublic: await outcome(client.joinGroup("public.lobby")),
    joinNested: await outcome(client.joinGroup("public.lobby.inner")),
    joinPrivate: await outcome(client.joinGroup("private")),
    sendDeep: await outcome(client.sendToGroup("clientA.alpha.room1", "x", "text")),
    sendOther: await outcome(client.sendToGroup("clientB.alpha", "x", "text")),
    sendLiteral: await outcome(client.sendToGroup("exact", "x", "text")),
  });
  client.stop();
});
