// Generates `.sst/platform` (SST's components and the Pulumi provider types) without Pulumi or AWS, so
// that `sst.config.ts` and `infra/**` type-check offline. The result is kept until the sst version or
// the app's providers change; `.sst/` is gitignored, so CI generates it once per clone (about a minute,
// mostly npm installing the provider packages).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const platform = join(root, ".sst/platform");
const stampFile = join(platform, ".hearth-stamp");
const lock = join(root, ".sst/.platform-lock");

const sstVersion = JSON.parse(readFileSync(join(root, "node_modules/sst/package.json"), "utf8")).version;
const config = readFileSync(join(root, "sst.config.ts"), "utf8");
// The providers are declared in `app()`; what `run()` builds does not change the generated types.
const app = config.slice(0, Math.max(0, config.indexOf("async run(")));
const stamp = `${sstVersion} ${createHash("sha256").update(app).digest("hex")}`;

const current = () =>
  existsSync(join(platform, "config.d.ts")) &&
  existsSync(join(platform, "node_modules/@pulumi/aws/package.json")) &&
  existsSync(stampFile) &&
  readFileSync(stampFile, "utf8") === stamp;

if (current()) process.exit(0);

// Another `npm test` may be generating it right now: wait for it rather than race it.
mkdirSync(join(root, ".sst"), { recursive: true });
const deadline = Date.now() + 10 * 60_000;
for (;;) {
  try {
    mkdirSync(lock);
    break;
  } catch {
    let age = 0;
    try {
      age = Date.now() - statSync(lock).mtimeMs;
    } catch {
      continue;
    }
    // A lock older than the longest generation is left over from a killed run.
    if (age > 10 * 60_000) rmSync(lock, { recursive: true, force: true });
    else if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock}`);
    else await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

try {
  if (!current()) {
    process.stderr.write(`Generating .sst/platform for sst ${sstVersion} (offline, with npm)…\n`);
    const started = Date.now();
    const run = spawnSync(join(root, "node_modules/.bin/sst"), ["install", "--stage", "ci"], {
      cwd: root,
      stdio: ["ignore", "inherit", "inherit"],
      env: {
        ...process.env,
        SST_SKIP_DEPENDENCY_CHECK: "1",
        SST_NO_BUN: "1",
        SST_TELEMETRY_DISABLED: "1",
      },
    });
    if (run.status !== 0) throw new Error(`sst install failed (exit ${run.status ?? run.signal})`);
    if (!existsSync(join(platform, "config.d.ts"))) throw new Error("sst install wrote no config.d.ts");
    writeFileSync(stampFile, stamp);
    process.stderr.write(`.sst/platform generated in ${Math.round((Date.now() - started) / 1000)} s\n`);
  }
} finally {
  rmSync(lock, { recursive: true, force: true });
}
