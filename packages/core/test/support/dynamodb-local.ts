import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DynamoDBClient, ListTablesCommand } from "@aws-sdk/client-dynamodb";
import type {} from "vitest";
import type { TestProject } from "vitest/node";

/**
 * Starts DynamoDB Local, AWS's own emulator, for the ledger's contract tests. It ships inside the npm
 * package amplify-dynamodb-simulator; we unpack only its `emulator/` folder (no dependencies).
 */
const SIMULATOR = "amplify-dynamodb-simulator@2.9.30";
const cacheDir = resolve("node_modules/.cache/dynamodb-local", SIMULATOR);

function ensureJar(): string {
  const jar = join(cacheDir, "DynamoDBLocal.jar");
  if (existsSync(jar)) return cacheDir;
  const work = mkdtempSync(join(tmpdir(), "ddb-local-"));
  try {
    const tarball = execFileSync("npm", ["pack", SIMULATOR, "--silent", "--pack-destination", work], {
      encoding: "utf8",
    }).trim();
    mkdirSync(cacheDir, { recursive: true });
    execFileSync("tar", [
      "-xzf",
      join(work, tarball.split("\n").pop() ?? ""),
      "-C",
      cacheDir,
      "--strip-components=2",
      "package/emulator",
    ]);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (!existsSync(jar)) throw new Error(`DynamoDB Local was not found in ${SIMULATOR}`);
  return cacheDir;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

let child: ChildProcess | undefined;

export async function setup(project: TestProject) {
  try {
    execFileSync("java", ["-version"], { stdio: "ignore" });
  } catch {
    throw new Error(
      "DynamoDB Local needs Java 17 or newer on PATH (Debian: apt-get install openjdk-17-jre-headless)",
    );
  }
  const dir = ensureJar();
  const port = await freePort();
  child = spawn(
    "java",
    [
      "-Djava.library.path=./DynamoDBLocal_lib",
      "-jar",
      "DynamoDBLocal.jar",
      "-inMemory",
      "-port",
      String(port),
    ],
    { cwd: dir, stdio: "ignore" },
  );
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 1,
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await client.send(new ListTablesCommand({}));
      break;
    } catch (error) {
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error(`DynamoDB Local did not start: ${error instanceof Error ? error.message : error}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  client.destroy();
  project.provide("dynamoDbLocalEndpoint", endpoint);
}

export async function teardown() {
  child?.kill("SIGKILL");
}

declare module "vitest" {
  export interface ProvidedContext {
    dynamoDbLocalEndpoint: string;
  }
}
