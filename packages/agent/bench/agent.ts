import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { heartbeatSchema } from "@hearth/core/instances";
import { createControlPlane } from "../src/aws/control-plane";
import type { HeartbeatBody } from "../src/ports";

/**
 * `npm run bench:agent [-- --heartbeats N]`: the agent's footprint. Builds the bundle, then runs it
 * as it runs on an instance (`node dist/agent.mjs --config …`) against a local IMDS, SSM and control
 * plane, one heartbeat a second, and reads its RSS and CPU from /proc after N heartbeats. Then signs
 * and sends heartbeats in this process to measure one heartbeat's CPU alone.
 */

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bundle = join(root, "dist", "agent.mjs");
const heartbeats = Number(process.argv[process.argv.indexOf("--heartbeats") + 1]) || 30;
const INSTANCE = "i-0123456789abcdef0";
const credentials = {
  Code: "Success",
  AccessKeyId: "AKIAIOSFODNN7EXAMPLE",
  SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  Token: "IQoJb3JpZ2luX2VjEXAMPLETOKEN".repeat(40),
  Expiration: "2099-01-01T00:00:00Z",
};

async function serve(handle: (req: IncomingMessage, body: string, res: ServerResponse) => void) {
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => {
      body += chunk;
    });
    req.on("end", () => handle(req, body, res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const beats: number[] = [];
let invalid = 0;
const controlPlane = await serve((_req, body, res) => {
  const beat = heartbeatSchema.safeParse(JSON.parse(body));
  if (!beat.success) invalid += 1;
  beats.push(Date.now());
  res.writeHead(200, { "content-type": "application/json" }).end(
    JSON.stringify({
      status: "ok",
      protocol: 1,
      instance: INSTANCE,
      runner: "ready",
      instructions: { runnerConfigs: [], drain: false, cancel: [] },
    }),
  );
});
const imdsPaths = new Map([
  ["/latest/meta-data/instance-id", INSTANCE],
  ["/latest/meta-data/placement/region", "eu-west-1"],
  ["/latest/meta-data/iam/security-credentials/", "hearth-bench"],
  ["/latest/meta-data/iam/security-credentials/hearth-bench", JSON.stringify(credentials)],
]);
const imds = await serve((req, _body, res) => {
  if (req.method === "PUT") return void res.writeHead(200).end("bench-token");
  const value = imdsPaths.get(req.url ?? "");
  res.writeHead(value === undefined ? 404 : 200).end(value ?? "");
});
const ssm = await serve((_req, body, res) => {
  const { Name } = JSON.parse(body) as { Name: string };
  const values: Record<string, string> = {
    "/hearth/bench/agent": JSON.stringify({
      heartbeatUrl: `${controlPlane.url}/agent/heartbeat`,
      binaryCache: "s3://bench?region=eu-west-1",
    }),
    "/hearth/bench/pools/default/credentials": JSON.stringify({ gitlab: null }),
  };
  const value = values[Name];
  if (value === undefined)
    return void res.writeHead(400).end(JSON.stringify({ __type: "ParameterNotFound" }));
  res.writeHead(200).end(JSON.stringify({ Parameter: { Name, Value: value } }));
});

const dir = await mkdtemp(join(tmpdir(), "hearth-agent-bench-"));
const config = join(dir, "agent.json");
await writeFile(
  config,
  JSON.stringify({
    stage: "bench",
    region: "eu-west-1",
    pool: "default",
    slots: 2,
    agentConfigParameter: "/hearth/bench/agent",
    poolCredentialsParameter: "/hearth/bench/pools/default/credentials",
    runnerConfigPrefix: "/hearth/bench/runners/",
    stateDir: dir,
    runnerCommand: process.execPath,
    gitlabRunnerService: "gitlab-runner.service",
    gitlabSystemIdFile: join(dir, ".runner_system_id"),
    pushQueueDir: dir,
    heartbeatSeconds: 1,
  }),
);

const child = spawn(process.execPath, [bundle, "--config", config], {
  env: {
    ...process.env,
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    AWS_ENDPOINT_URL_SSM: `${ssm.url}/`,
  },
  stdio: ["ignore", "ignore", "pipe"],
});
let stderr = "";
child.stderr.on("data", (chunk) => {
  stderr += chunk;
});

/** The child's RSS (bytes) and CPU time (ms) from /proc. */
async function usage(pid: number) {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) * 1024;
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]?.split(" ") ?? [];
  // utime and stime, in clock ticks (100 a second on Linux).
  const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  return { rss, cpuMs };
}

const until = async (count: number) => {
  const deadline = Date.now() + (count + 30) * 1500;
  while (beats.length < count) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`the agent stopped heartbeating:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

await until(2);
const first = await usage(child.pid as number);
await until(heartbeats + 2);
const after = await usage(child.pid as number);
child.kill("SIGTERM");

// One heartbeat's own CPU: signing (execute-api and the STS identity) and the HTTP round trip.
const port = createControlPlane({
  heartbeatUrl: `${controlPlane.url}/agent/heartbeat`,
  region: "eu-west-1",
  credentials: async () => ({
    accessKeyId: credentials.AccessKeyId,
    secretAccessKey: credentials.SecretAccessKey,
    sessionToken: credentials.Token,
  }),
});
const body: HeartbeatBody = {
  protocol: 1,
  instanceId: INSTANCE,
  runner: "busy",
  slots: 4,
  runningJobs: [{ source: "github", id: "28311903001" }],
  cacheKeys: Array.from({ length: 64 }, (_, i) => `acme/app:job-${i}`),
  storeBytes: 21_474_836_480,
  interruption: null,
  slotRunners: [{ slot: 0, runnerId: 30114, state: "running", job: { source: "github", id: "28311903001" } }],
  gitlabManager: null,
  freeDiskBytes: 53_687_091_200,
  pushQueueDepth: 3,
  pushLagSeconds: 12,
  stoppedRunners: [],
  claiming: true,
};
for (let i = 0; i < 50; i++) await port.heartbeat(body);
const N = 1000;
const cpu = process.cpuUsage();
const wall = performance.now();
for (let i = 0; i < N; i++) await port.heartbeat(body);
const used = process.cpuUsage(cpu);
const wallMs = performance.now() - wall;

// What node alone takes, for comparison: the agent's own share is the difference.
const idle = spawn(process.execPath, ["-e", "setTimeout(() => {}, 5000)"], { stdio: "ignore" });
await new Promise((resolve) => setTimeout(resolve, 1000));
const baseline = await usage(idle.pid as number);
idle.kill();

for (const { server } of [controlPlane, imds, ssm]) server.close();
await rm(dir, { recursive: true, force: true });
if (invalid) throw new Error(`${invalid} heartbeats failed core's schema`);

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const figures = {
  bundle: `${((await stat(bundle)).size / 1024).toFixed(0)} KiB (dist/agent.mjs)`,
  rssAfterFirstHeartbeat: mib(first.rss),
  [`rssAfter${heartbeats}MoreHeartbeats`]: mib(after.rss),
  nodeAloneRss: mib(baseline.rss),
  agentCpuPerHeartbeatMs: ((after.cpuMs - first.cpuMs) / heartbeats).toFixed(2),
  signedHeartbeatCpuMs: ((used.user + used.system) / 1000 / N).toFixed(3),
  signedHeartbeatWallMs: (wallMs / N).toFixed(3),
};
console.log(JSON.stringify(figures, null, 2));
