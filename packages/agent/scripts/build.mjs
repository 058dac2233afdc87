import { stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

/** Bundles the agent into one file, `dist/agent.mjs`, that runs with nothing but node. */
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outfile = join(root, "dist", "agent.mjs");
await build({
  entryPoints: [join(root, "src", "main.ts")],
  outfile,
  bundle: true,
  platform: "node",
  target: "node22",
  format: "esm",
  // ES modules first: the SDK's CommonJS builds do not tree-shake, and would double the bundle.
  mainFields: ["module", "main"],
  minify: true,
  legalComments: "eof",
  // Some dependencies are CommonJS and call require(): give the ES module one.
  banner: {
    js: "import { createRequire as __hearthRequire } from 'node:module'; const require = __hearthRequire(import.meta.url);",
  },
  logLevel: "warning",
});
console.log(`${outfile}: ${(await stat(outfile)).size} bytes`);
