import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { build, type Metafile } from "esbuild";

/** What init loads: the entry (the output ending in `entry`) and the chunks it imports statically. */
export function loadedAtInit(outputs: Metafile["outputs"], entry: string): Set<string> {
  const atInit = new Set<string>();
  const visit = (file: string) => {
    if (atInit.has(file)) return;
    atInit.add(file);
    for (const imported of outputs[file]?.imports ?? []) {
      if (imported.kind === "import-statement" && !imported.external) visit(imported.path);
    }
  };
  visit(Object.keys(outputs).find((file) => file.endsWith(entry)) ?? "");
  return atInit;
}

/**
 * Bundles a Lambda entry the way it is deployed (esbuild, minified ESM for Node 22, split so that
 * modules imported with import() load on first use) and measures what loads at init (the entry and
 * the chunks it imports) and the time to load the module cold, in a fresh Node process, median of
 * `runs`.
 */
export async function measureBundle(
  entry: string,
  options: { externalSdk: boolean; runs?: number; env?: Record<string, string> },
) {
  // Inside the repository, so that external packages resolve from its node_modules as from the runtime.
  mkdirSync(join(process.cwd(), "node_modules/.cache"), { recursive: true });
  const dir = mkdtempSync(join(process.cwd(), "node_modules/.cache/hearth-bundle-"));
  const result = await build({
    entryPoints: { handler: entry },
    outdir: dir,
    outExtension: { ".js": ".mjs" },
    splitting: true,
    metafile: true,
    bundle: true,
    minify: true,
    platform: "node",
    format: "esm",
    target: "node22",
    external: options.externalSdk ? ["@aws-sdk/*", "@smithy/*"] : [],
    // Some CommonJS dependencies call require(); ESM output needs it defined.
    banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
    logLevel: "error",
  });
  const outfile = join(dir, "handler.mjs");
  const outputs = result.metafile.outputs;
  const atInit = loadedAtInit(outputs, "handler.mjs");
  const bytes = [...atInit].reduce((sum, file) => sum + statSync(file).size, 0);
  const gzip = [...atInit].reduce((sum, file) => sum + gzipSync(readFileSync(file)).byteLength, 0);
  const totalBytes = Object.keys(outputs).reduce((sum, file) => sum + statSync(file).size, 0);
  const probe = join(dir, "probe.mjs");
  writeFileSync(
    probe,
    `const t=performance.now();await import(${JSON.stringify(outfile)});console.log(performance.now()-t);`,
  );
  const times: number[] = [];
  for (let i = 0; i < (options.runs ?? 15); i++) {
    const run = spawnSync(process.execPath, [probe], {
      // External SDK packages resolve from the repository's node_modules, as from the runtime's.
      env: { ...process.env, ...options.env },
      cwd: process.cwd(),
      encoding: "utf8",
    });
    if (run.status !== 0) throw new Error(`loading the bundle failed: ${run.stderr}`);
    times.push(Number(run.stdout.trim()));
  }
  times.sort((a, b) => a - b);
  return {
    bytes,
    gzip,
    totalBytes,
    loadMsMedian: times[Math.floor(times.length / 2)] ?? Number.NaN,
    loadMsMax: times.at(-1),
  };
}
