import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LOCK_FILE } from "../src/local/data-lock";
import { isLoopback, openHostRefusal } from "../src/local/host";
import { startLocal } from "../src/local/server";
import { silentLogger } from "../src/log";
import { type Child, childEnv, demoMain, kill, localMain, run, startChild } from "./support/child";

/**
 * What a user sees when something is wrong at start-up: one clear line on stderr and a non-zero
 * exit, never a stack trace; and nothing touched in the data directory of another Hearth.
 */

const children: Child[] = [];
const servers: Server[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) await kill(child);
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-cli-"));
  dirs.push(dir);
  return dir;
};

/** The lines a failed start wrote (the status page's build is not there in tests; its notice aside). */
const lines = (stderr: string) =>
  stderr.split("\n").filter((line) => line.trim() && !line.startsWith("serveStatic:"));

async function fails(script: string, args: string[], env = childEnv()) {
  const child = run(script, args, { env });
  children.push(child);
  const code = await child.exited;
  const written = lines(child.stderr());
  expect(code, child.stderr()).toBe(1);
  expect(written, child.stderr()).toHaveLength(1);
  expect(child.stderr()).not.toMatch(/^\s+at /m);
  return written[0] as string;
}

async function listen(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("no port");
  return { server, port: address.port };
}

/** Every file under `dir` with its size and modification time. */
function listing(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .sort()
    .map((name) => {
      const stat = statSync(join(dir, name));
      return `${name} ${stat.size} ${stat.mtimeMs}`;
    });
}

describe("local mode's start-up errors", () => {
  it("an unknown flag", async () => {
    const line = await fails(localMain, ["--prot", "3000"]);
    expect(line).toMatch(/^hearth: Unknown option '--prot'.*\(see --help\)$/);
  });

  it("a port already in use", async () => {
    const { port } = await listen();
    const line = await fails(localMain, ["--port", String(port)]);
    expect(line).toBe(
      `hearth: 127.0.0.1:${port} is already in use by another process; choose another port with --port`,
    );
  });

  it("`npm run demo` with no server", async () => {
    const { server, port } = await listen();
    await new Promise((resolve) => server.close(resolve));
    servers.splice(servers.indexOf(server), 1);
    // With the secrets of an earlier run in the environment, as a user who restarted would have them.
    const env = childEnv({ GITHUB_WEBHOOK_SECRET: "s", GITLAB_WEBHOOK_TOKEN: "t" });
    const line = await fails(demoMain, ["--url", `http://127.0.0.1:${port}`, "--limit", "1"], env);
    expect(line).toMatch(
      new RegExp(`^demo: no Hearth answers at http://127.0.0.1:${port} \\(ECONNREFUSED\\)`),
    );
  });

  it("a --webhook-loss that is not a share from 0 to 1", async () => {
    for (const loss of ["1.5", "-0.1", "", "abc", "0x1"]) {
      const line = await fails(localMain, ["--port", "0", `--webhook-loss=${loss}`]);
      expect(line).toBe(`hearth: --webhook-loss: a share from 0 to 1, not ${loss}`);
    }
  });

  it("a non-loopback --host without STATUS_TOKEN", async () => {
    for (const host of ["0.0.0.0", "::"]) {
      const line = await fails(localMain, ["--port", "0", "--host", host]);
      expect(line).toContain(`--host ${host} would serve the status API and the simulation`);
    }
  });

  it("--fleet aws without a region", async () => {
    const env = childEnv({ AWS_CONFIG_FILE: "/nonexistent", AWS_SHARED_CREDENTIALS_FILE: "/nonexistent" });
    const line = await fails(localMain, ["--port", "0", "--fleet", "aws", "--stage", "ci"], env);
    expect(line).toMatch(/^hearth: --fleet aws: no AWS region is configured/);
  });
});

describe("the --host rule", () => {
  it("serves loopback freely, anything else with a status token or --allow-open", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1"]) expect(isLoopback(host)).toBe(true);
    for (const host of ["0.0.0.0", "::", "192.168.1.10", "example.com"]) expect(isLoopback(host)).toBe(false);
    expect(openHostRefusal("0.0.0.0", undefined, false)).toMatch(/set STATUS_TOKEN, or pass --allow-open/);
    expect(openHostRefusal("0.0.0.0", "a-token", false)).toBeUndefined();
    expect(openHostRefusal("0.0.0.0", undefined, true)).toBeUndefined();
    expect(openHostRefusal("127.0.0.1", undefined, false)).toBeUndefined();
  });
});

describe("one Hearth per --data directory", () => {
  it("a second one names the process that has it and leaves the directory alone", async () => {
    const data = join(tempDir(), "data");
    const first = await startChild(["--data", data]);
    children.push(first.child);
    const line = await fails(localMain, ["--port", "0", "--data", data]);
    expect(line).toBe(
      `hearth: directory ${data} is in use by process ${first.child.process.pid} (another Hearth); stop it or use another --data`,
    );
    // The first one is unharmed.
    expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    expect(readFileSync(join(data, LOCK_FILE), "utf8").trim()).toBe(String(first.child.process.pid));
  });

  it("refuses before it reads or writes anything in the directory", async () => {
    // A directory a live process holds (this one stands still, so any change would be the second's).
    const data = tempDir();
    const holder = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"]);
    try {
      writeFileSync(join(data, LOCK_FILE), `${holder.pid}\n`);
      writeFileSync(join(data, "simulation.json"), "{}");
      const before = listing(data);
      const line = await fails(localMain, ["--port", "0", "--data", data]);
      expect(line).toContain(`is in use by process ${holder.pid}`);
      expect(listing(data)).toEqual(before);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("takes over the lock of a process that is gone", async () => {
    const data = tempDir();
    const gone = spawn(process.execPath, ["-e", ""]);
    const pid = gone.pid;
    await new Promise((resolve) => gone.once("exit", resolve));
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, LOCK_FILE), `${pid}\n`);
    const hearth = await startLocal({
      port: 0,
      dataDir: data,
      log: silentLogger,
      tickSeconds: 0,
      settings: {} as Parameters<typeof startLocal>[0]["settings"],
    });
    try {
      expect(readFileSync(join(data, LOCK_FILE), "utf8").trim()).toBe(String(process.pid));
    } finally {
      await hearth.close();
    }
    // A clean stop gives the directory back.
    expect(readdirSync(data)).not.toContain(LOCK_FILE);
  });
});
