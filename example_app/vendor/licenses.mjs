// Prints the licence of every npm package with a file in the bundle, from esbuild's metafile
// (the path is the first argument). Fails when a package ships no licence file.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const LICENCE_FILES = ["LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license", "license.md"];

const meta = JSON.parse(readFileSync(process.argv[2], "utf8"));
const packages = new Map(); // directory -> package.json
for (const input of Object.keys(meta.inputs)) {
  const match = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//);
  if (!match || packages.has(match[1])) continue;
  packages.set(match[1], JSON.parse(readFileSync(join(match[1], "package.json"), "utf8")));
}

const sections = [...packages]
  .sort(([, a], [, b]) => a.name.localeCompare(b.name))
  .map(([directory, pkg]) => {
    const file = LICENCE_FILES.map((name) => join(directory, name)).find(existsSync);
    if (!file) throw new Error(`${pkg.name}@${pkg.version} ships no licence file`);
    const text = readFileSync(file, "utf8").trim();
    return `${pkg.name}@${pkg.version} (${pkg.license})\n${"-".repeat(72)}\n${text}\n`;
  });
process.stdout.write(
  "The licences of the npm packages bundled into web-pubsub-client.js " +
    "(made by example_app/vendor/build.sh).\n\n" +
    sections.join("\n"),
);
