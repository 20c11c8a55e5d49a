// @azure/web-pubsub (the JavaScript service SDK) driving the emulator's REST API.
//
// $WPS_CONNECTION_STRING is the emulator's; $WPS_ALICE, $WPS_ALICE2 and $WPS_BOB are connection ids
// of clients the test holds open (alice twice, bob once). Each step's result is reported as a
// JSON line {"kind": "<step>", ...}; a step that throws reports {"kind": "failed", "step", "error"}
// and the script goes on. The SDK refuses an http:// endpoint unless allowInsecureConnection is
// set: the first step shows that, every other step sets it.
import { WebPubSubServiceClient } from "@azure/web-pubsub";

const report = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const connectionString = process.env.WPS_CONNECTION_STRING;
const alice = process.env.WPS_ALICE;
const alice2 = process.env.WPS_ALICE2;
const bob = process.env.WPS_BOB;

async function step(kind, action) {
  try {
    report({ kind, ...(await action()) });
  } catch (error) {
    report({ kind: "failed", step: kind, error: String(error?.message ?? error),
             statusCode: error?.statusCode ?? null });
  }
}

const strict = new WebPubSubServiceClient(connectionString, "chat");
await step("insecure refused", async () => {
  try {
    await strict.sendToAll("never", { contentType: "text/plain" });
    return { refused: false };
  } catch (error) {
    return { refused: true, error: String(error?.message ?? error) };
  }
});

const client = new WebPubSubServiceClient(connectionString, "chat", { allowInsecureConnection: true });

await step("token", async () => {
  const token = await client.getClientAccessToken({ userId: "carol", groups: ["g0"],
                                                    roles: ["webpubsub.joinLeaveGroup"] });
  return { url: token.url };
});
await step("send to all", async () => {
  await client.sendToAll("to alice only", { contentType: "text/plain",
                                            filter: "userId eq 'alice'", messageTtlSeconds: 60 });
  return {};
});
await step("add to groups", async () => {
  await client.addConnectionsToGroups(["room", "hall"], "userId eq 'alice'");
  return { room: await client.groupExists("room"), hall: await client.groupExists("hall") };
});
await step("list members", async () => {
  const pages = [];
  const iterator = (await client.group("room").listConnections({ maxPageSize: 1 })).byPage();
  for await (const page of iterator) {
    pages.push(page.map((member) => ({ connectionId: member.connectionId, userId: member.userId })));
  }
  return { pages };
});
await step("send to group", async () => {
  await client.group("room").sendToAll({ hello: "room" });
  return {};
});
await step("exists", async () => ({
  bob: await client.userExists("bob"),
  nobody: await client.userExists("nobody"),
  connection: await client.connectionExists(bob),
  gone: await client.connectionExists("no-such-connection"),
}));
await step("permissions", async () => {
  const before = await client.hasPermission(bob, "sendToGroup", { targetName: "room" });
  await client.grantPermission(bob, "sendToGroup", { targetName: "room" });
  const granted = await client.hasPermission(bob, "sendToGroup", { targetName: "room" });
  await client.revokePermission(bob, "sendToGroup", { targetName: "room" });
  const revoked = await client.hasPermission(bob, "sendToGroup", { targetName: "room" });
  return { before, granted, revoked };
});
await step("remove from groups", async () => {
  await client.removeConnectionsFromGroups(["hall"], `connectionId eq '${alice2}'`);
  const members = [];
  for await (const member of await client.group("hall").listConnections()) {
    members.push(member.connectionId);
  }
  return { hall: members };
});
await step("user and group", async () => {
  await client.group("team").addUser("bob");
  const team = await client.groupExists("team");
  await client.removeUserFromAllGroups("bob");
  return { team, after: await client.groupExists("team") };
});
await step("send to user", async () => {
  await client.sendToUser("alice", "direct", { contentType: "text/plain" });
  return {};
});
await step("invalid filter", async () => {
  try {
    await client.sendToAll("x", { contentType: "text/plain", filter: "userId eq" });
    return { statusCode: null };
  } catch (error) {
    return { statusCode: error.statusCode };
  }
});
await step("close", async () => {
  await client.closeConnection(bob, { reason: "closed by the service SDK" });
  return { bob: await client.connectionExists(bob) };
});
report({ kind: "done" });
