// What every scenario script shares, whatever client it drives: one JSON line on stdout per
// thing worth checking, which the pytest side reads, and the run that reports a failure.

export function report(kind, fields = {}) {
  process.stdout.write(JSON.stringify({ kind, ...fields }) + "\n");
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `condition()` is true, polling; rejects after `timeoutMs`. */
export async function until(condition, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(10);
  }
}

/** Runs a scenario, reports its failure as a `failed` line, and ends the process either way
 * (the clients' timers would keep it alive). */
export function run(scenario) {
  scenario().then(
    () => process.exit(0),
    (error) => {
      report("failed", { error: String(error?.stack ?? error) });
      process.exit(1);
    },
  );
}
