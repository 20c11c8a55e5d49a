// invokeEvent against the app's ordinary user-event handlers: replies of every data type, no
// reply, the app's error, an event no handler takes, a timeout, and a cancellation; the
// connection survives them all.
import { report, run, sleep, startClient } from "./harness.mjs";

async function outcome(promise) {
  try {
    const result = await promise;
    return { ok: true, dataType: result.dataType ?? null, data: result.data ?? null };
  } catch (error) {
    return { ok: false, name: error.name, detail: error.errorDetail ?? null };
  }
}

function bytes(buffer) {
  return Array.from(new Uint8Array(buffer));
}

run(async () => {
  const client = await startClient("invoker");
  const results = {};
  results.json = await outcome(client.invokeEvent("echo", { n: 1 }, "json"));
  results.text = await outcome(client.invokeEvent("echo", "hi", "text"));
  const binary = await outcome(client.invokeEvent("echo", new Uint8Array([0, 1, 255]).buffer, "binary"));
  results.binary = { ...binary, data: bytes(binary.data) };
  results.silent = await outcome(client.invokeEvent("silent", "s", "text"));
  results.count1 = await outcome(client.invokeEvent("count", "", "text"));
  results.count2 = await outcome(client.invokeEvent("count", "", "text"));
  results.fail = await outcome(client.invokeEvent("fail", {}, "json"));
  results.unrouted = await outcome(client.invokeEvent("unrouted", "x", "text"));
  results.timeout = await outcome(client.invokeEvent("slow", "5", "text"));
  // Two at once: the slower one does not hold up the other.
  const slow = outcome(client.invokeEvent("slow", "1", "text"));
  results.meanwhile = await outcome(client.invokeEvent("echo", "first", "text"));
  results.slow = await slow;
  const abort = new AbortController();
  const cancelled = outcome(client.invokeEvent("slow", "1.5", "text", { abortSignal: abort.signal }));
  await sleep(300);
  abort.abort();
  results.cancelled = await cancelled;
  await sleep(100);
  results.after = await outcome(client.invokeEvent("echo", "after", "text"));
  report("result", { results, connections: client.connections, disconnects: client.disconnects });
  client.stop();
});
