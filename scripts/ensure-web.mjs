// Builds the status page for local mode when its build is missing or older than its sources.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";

const web = new URL("../packages/web/", import.meta.url).pathname;
const built = join(web, "dist/index.html");
const lock = new URL("../node_modules/.cache/hearth/web-build.lock", import.meta.url).pathname;

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

const sources = [join(web, "src"), join(web, "index.html"), join(web, "vite.config.ts")];
const stale = () => !existsSync(built) || Math.max(...sources.map(newest)) > statSync(built).mtimeMs;

/**
 * Two starts at once (or a start and the browser tests) would both empty and fill dist/: one builds,
 * the others wait for it and then find the build fresh. A lock left by a killed build expires.
 */
function locked(run) {
  mkdirSync(join(lock, ".."), { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (error) {
      if (error.code !== "EEXIST") throw error;
      if (Date.now() - statSync(lock, { throwIfNoEntry: false })?.mtimeMs > 5 * 60_000) {
        rmSync(lock, { recursive: true, force: true });
      } else {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
      }
    }
  }
  try {
    run();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

if (stale()) {
  locked(() => {
    if (!stale()) return;
    process.stderr.write("Building the status page…\n");
    execFileSync("npm", ["run", "--silent", "build:web"], { stdio: ["ignore", "ignore", "inherit"] });
  });
}
