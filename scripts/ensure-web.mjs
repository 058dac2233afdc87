// Builds the status page for local mode when its build is missing or older than its sources.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const web = new URL("../packages/web/", import.meta.url).pathname;
const built = join(web, "dist/index.html");

function newest(path) {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
}

const sources = [join(web, "src"), join(web, "index.html"), join(web, "vite.config.ts")];
const stale = !existsSync(built) || Math.max(...sources.map(newest)) > statSync(built).mtimeMs;
if (stale) {
  process.stderr.write("Building the status page…\n");
  execFileSync("npm", ["run", "--silent", "build:web"], { stdio: ["ignore", "ignore", "inherit"] });
}
