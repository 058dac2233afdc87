/**
 * `npm run bench:load`: local mode as a user runs it (`npm start`, its own process, simulated fleet),
 * loaded over HTTP with 5,000 signed webhooks, 50 in flight: half GitHub `workflow_job`, half GitLab
 * Job Hooks, each a new queued job of the default pools. Prints requests/s, latency p50/p99/max, and
 * the server's resident memory before and after (from /proc, the whole process).
 *
 * BENCH_REQUESTS and BENCH_CONCURRENCY change the load.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  type ForgeJob,
  type ForgeRequest,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";

const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 5_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 50);
const secrets = { githubWebhookSecret: "load-github-secret", gitlabWebhookToken: "load-gitlab-token" };
const root = resolve(import.meta.dirname, "../../..");

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const address = server.address();
  await new Promise<void>((done) => server.close(() => done()));
  if (!address || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** Resident memory of a process, in MB, from /proc (Linux). */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN);
  return kb / 1024;
}

async function waitUntilUp(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`local mode exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/api/status`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 200));
  }
  throw new Error("local mode did not come up within 60 s");
}

function request(n: number): ForgeRequest {
  const createdAt = new Date().toISOString();
  const job: ForgeJob = {
    source: n % 2 ? "gitlab" : "github",
    id: String(9_000_000 + n),
    project: n % 2 ? "acme/backend" : "acme/app",
    projectId: "42",
    pipelineId: String(500_000 + Math.floor(n / 10)),
    name: `build-${n % 25}`,
    labels: ["nix", n % 5 ? "x86_64-linux" : "aarch64-linux"],
  };
  return job.source === "github"
    ? githubDelivery(workflowJobPayload(job, "queued", { createdAt }), secrets)
    : gitlabDelivery(jobHookPayload(job, "pending", { createdAt }), secrets, new Date());
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

async function main() {
  const dataDir = mkdtempSync(join(tmpdir(), "hearth-load-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "packages/functions/src/local/main.ts", "--port", String(port), "--data", dataDir],
    {
      cwd: root,
      env: {
        ...process.env,
        GITHUB_WEBHOOK_SECRET: secrets.githubWebhookSecret,
        GITLAB_WEBHOOK_TOKEN: secrets.gitlabWebhookToken,
        STATUS_TOKEN: "",
        GITLAB_URL: "",
        GITLAB_API_TOKEN: "",
      },
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  try {
    await waitUntilUp(url, child);
    const pid = child.pid ?? 0;
    const rssBefore = rssMb(pid);
    const requests = Array.from({ length: REQUESTS }, (_, n) => request(n));
    const latencies: number[] = [];
    const failures = new Map<number, number>();
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < requests.length) {
          const delivery = requests[next++];
          if (!delivery) break;
          const t0 = performance.now();
          const response = await fetch(`${url}${delivery.path}`, {
            method: "POST",
            headers: delivery.headers,
            body: delivery.body,
          });
          await response.arrayBuffer();
          latencies.push(performance.now() - t0);
          if (response.status >= 300) failures.set(response.status, (failures.get(response.status) ?? 0) + 1);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const rssAfter = rssMb(pid);
    latencies.sort((a, b) => a - b);
    const round = (x: number) => Math.round(x * 10) / 10;
    console.log(
      JSON.stringify(
        {
          requests: REQUESTS,
          concurrency: CONCURRENCY,
          requestsPerSecond: Math.round(REQUESTS / seconds),
          p50Ms: round(quantile(latencies, 0.5)),
          p99Ms: round(quantile(latencies, 0.99)),
          maxMs: round(latencies.at(-1) ?? Number.NaN),
          rssBeforeMb: Math.round(rssBefore),
          rssAfterMb: Math.round(rssAfter),
          failures: Object.fromEntries(failures),
        },
        null,
        2,
      ),
    );
    if (failures.size) process.exitCode = 1;
  } finally {
    child.kill("SIGTERM");
    await new Promise((done) => child.once("exit", done));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
