/**
 * `npm run bench:ingest`: 5,000 signed, mixed webhook deliveries through the real app and ledger,
 * in process, on the embedded DynamoDB; then the webhook Lambda bundle's size and cold load time.
 */
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { cpus } from "node:os";
import { createInstanceRegistry } from "@hearth/core/instances";
import { createLedger } from "@hearth/core/ledger";
import { localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import { defaultPools } from "@hearth/core/pools";
import { ensureTable } from "@hearth/core/table";
import { Webhooks } from "@octokit/webhooks";
import { gitlabJobHookExample, workflowJobExamples } from "../../core/test/fixtures";
import { createApp } from "../src/app";
import { linkEnvironment } from "../src/aws/links";
import { silentLogger } from "../src/log";
import { measureBundle } from "./bundle";

const EVENTS = Number(process.env.BENCH_EVENTS ?? 5_000);
/**
 * `BENCH_INSTANCES=registered`: the 50 instances the GitHub jobs run on are in the registry, as a
 * fleet's are, so that each job's start and end also read and write what its store holds. By default
 * they are not (each start and end then only finds that out).
 */
const REGISTERED = process.env.BENCH_INSTANCES === "registered";
const INSTANCES = 50;
const instanceOf = (job: number) => `i-0${(job % INSTANCES).toString(16).padStart(16, "0")}`;
const GITHUB_SECRET = "bench-github-secret";
const GITLAB_TOKEN = "bench-gitlab-token";

interface Delivery {
  path: string;
  headers: Record<string, string>;
  body: string;
}

async function deliveries(count: number, firstJob: number): Promise<Delivery[]> {
  const signer = new Webhooks({ secret: GITHUB_SECRET });
  const base = workflowJobExamples[5];
  const gitlab = gitlabJobHookExample();
  const out: Delivery[] = [];
  for (let job = 0; out.length < count; job++) {
    if (job % 2 === 0) {
      for (const [action, status] of [
        ["queued", "queued"],
        ["in_progress", "in_progress"],
        ["completed", "completed"],
      ] as const) {
        const payload = {
          ...base,
          action,
          workflow_job: {
            ...base?.workflow_job,
            id: firstJob + job,
            status,
            conclusion: status === "completed" ? "success" : null,
            runner_name: status === "queued" ? null : `${instanceOf(job)}-1`,
          },
        };
        const body = JSON.stringify(payload);
        out.push({
          path: "/webhooks/github",
          headers: {
            "content-type": "application/json",
            "x-github-event": "workflow_job",
            "x-github-delivery": randomUUID(),
            "x-hub-signature-256": await signer.sign(body),
          },
          body,
        });
      }
    } else {
      for (const status of ["pending", "running", "success"]) {
        const body = JSON.stringify({
          ...gitlab,
          build_id: firstJob + job,
          build_status: status,
          build_started_at: status === "pending" ? null : "2026-01-01T10:00:20Z",
          build_finished_at: status === "success" ? "2026-01-01T10:05:00Z" : null,
        });
        out.push({
          path: "/webhooks/gitlab",
          headers: {
            "content-type": "application/json",
            "x-gitlab-event": "Job Hook",
            "x-gitlab-token": GITLAB_TOKEN,
            "idempotency-key": randomUUID(),
          },
          body,
        });
      }
    }
    // Forges retry: one delivery in twenty arrives twice.
    if (job % 7 === 3 && out.length) out.push(out[out.length - 2] as Delivery);
  }
  return out.slice(0, count);
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
const ms = (value: number) => `${value.toFixed(2)} ms`;

/** The floor under any DynamoDB-backed function's cold load: the SDK's DynamoDB client itself. */
function sdkLoadMs(): number {
  const code =
    "const t=performance.now();Promise.all([import('@aws-sdk/client-dynamodb'),import('@aws-sdk/lib-dynamodb')]).then(()=>console.log(performance.now()-t))";
  const times = Array.from({ length: 15 }, () =>
    Number(
      spawnSync(process.execPath, ["--input-type=module", "-e", code], {
        encoding: "utf8",
        env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
      }).stdout.trim(),
    ),
  ).sort((a, b) => a - b);
  return times[7] ?? Number.NaN;
}

async function main() {
  const dynamo = await startEmbeddedDynamo();
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  await ensureTable(client, "bench");
  // DynamoDB calls by operation (the document client sends through the client's middleware): each
  // costs SDK and embedded-table CPU here, and a round trip in AWS.
  const calls = new Map<string, number>();
  client.middlewareStack.add(
    (next, context) => (args) => {
      calls.set(context.commandName ?? "?", (calls.get(context.commandName ?? "?") ?? 0) + 1);
      return next(args);
    },
    { step: "initialize", name: "benchCallCounter" },
  );
  if (REGISTERED) {
    const registry = createInstanceRegistry({ client: documents, tableName: "bench", now: () => new Date() });
    for (let job = 0; job < INSTANCES; job++)
      await registry.register({
        id: instanceOf(job),
        pool: "x86_64",
        group: "burst",
        market: "spot",
        az: "eu-west-1a",
        launchedAt: new Date().toISOString(),
        slots: 2,
      });
  }
  const app = createApp({
    ledger: createLedger({ client: documents, tableName: "bench" }),
    log: silentLogger,
    github: { secret: GITHUB_SECRET },
    gitlab: { token: GITLAB_TOKEN, signingToken: undefined },
    background: () => {},
  });
  const send = async (delivery: Delivery) => {
    const response = await app.request(`http://bench${delivery.path}`, {
      method: "POST",
      headers: delivery.headers,
      body: delivery.body,
    });
    if (response.status >= 300)
      throw new Error(`${response.status} ${await response.text()} ${delivery.body.slice(0, 300)}`);
  };

  for (const delivery of await deliveries(300, 1_000_000)) await send(delivery);

  const events = await deliveries(EVENTS, 2_000_000);
  calls.clear();
  const latencies: number[] = [];
  const started = performance.now();
  // The process's CPU time (the app, the SDK and the embedded table's thread): less moved by what
  // else runs on a shared machine than the wall clock is.
  const cpuBefore = process.cpuUsage();
  for (const delivery of events) {
    const t = performance.now();
    await send(delivery);
    latencies.push(performance.now() - t);
  }
  const sequentialSeconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const sequentialCalls = [...calls].sort(([a], [b]) => (a < b ? -1 : 1));
  latencies.sort((a, b) => a - b);

  // The same load with 8 deliveries in flight, as API Gateway would send them concurrently.
  const concurrent = await deliveries(EVENTS, 3_000_000);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < concurrent.length) await send(concurrent[next++] as Delivery);
    }),
  );
  const concurrentSeconds = (performance.now() - t0) / 1000;
  client.destroy();
  await dynamo.close();

  console.log(`Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}`);
  console.log(
    `\nIngest, ${EVENTS} signed deliveries (GitHub and GitLab, 5% replays), in process, embedded DynamoDB, GitHub jobs on ${REGISTERED ? "registered" : "unregistered"} instances:`,
  );
  console.log("| measure | value | target |\n|---|---|---|");
  console.log(`| latency p50 | ${ms(quantile(latencies, 0.5))} | |`);
  console.log(`| latency p99 | ${ms(quantile(latencies, 0.99))} | < 20 ms |`);
  console.log(`| latency max | ${ms(latencies.at(-1) ?? 0)} | |`);
  console.log(
    `| throughput, one at a time | ${(EVENTS / sequentialSeconds).toFixed(0)} events/s | > 500 events/s |`,
  );
  console.log(`| throughput, 8 in flight | ${(EVENTS / concurrentSeconds).toFixed(0)} events/s | |`);
  console.log(
    `| CPU per delivery, one at a time (process, all threads) | ${ms((cpu.user + cpu.system) / 1000 / EVENTS)} | |`,
  );
  const callCount = sequentialCalls.reduce((sum, [, count]) => sum + count, 0);
  console.log(
    `| DynamoDB calls per delivery, one at a time | ${(callCount / EVENTS).toFixed(2)} (${sequentialCalls
      .map(([name, count]) => `${name.replace(/Command$/, "")} ${(count / EVENTS).toFixed(2)}`)
      .join(", ")}) | |`,
  );

  // The API Lambda reads its SST links when it loads, as in Lambda; these are placeholders (no call
  // reaches AWS while loading).
  if (process.env.BENCH_SKIP_BUNDLE) return;
  const entry = "packages/functions/src/aws/api.ts";
  const env = {
    AWS_REGION: "us-east-1",
    ...linkEnvironment({
      App: { name: "hearth", stage: "bench" },
      HearthConfig: {
        pools: defaultPools,
        gitlabUrl: "https://gitlab.com",
        githubApiUrl: "https://api.github.com",
        maxIterations: 60,
        reconciliation: { pollMinutes: 1, sweepMinutes: 5, budgetShare: 0.1, dryRun: false },
      },
      Storage: { tableName: "bench" },
      Fleet: {
        groups: {},
        runnerConfigPrefix: "/hearth/bench/runners",
        account: "123456789012",
        partition: "aws",
      },
      ScaleFleet: { stateMachineArn: "arn:aws:states:us-east-1:000000000000:stateMachine:bench" },
      GithubWebhookSecret: { value: GITHUB_SECRET },
      GitlabWebhookToken: { value: GITLAB_TOKEN },
      GitlabSigningToken: { value: "" },
      StatusToken: { value: "bench" },
    }),
  };
  const external = await measureBundle(entry, { externalSdk: true, env });
  const bundled = await measureBundle(entry, { externalSdk: false, env });

  const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KB`;
  console.log("\nAPI Lambda bundle (esbuild, minified ESM, node22, split; size = what loads at init):");
  console.log("| AWS SDK | size | gzip | all chunks | cold module load (median of 15) | target |");
  console.log("|---|---|---|---|---|---|");
  console.log(
    `| from the Lambda runtime (deployed) | ${kb(external.bytes)} | ${kb(external.gzip)} | ${kb(external.totalBytes)} | ${ms(external.loadMsMedian)} | < 300 KB, < 150 ms |`,
  );
  console.log(
    `| bundled in | ${kb(bundled.bytes)} | ${kb(bundled.gzip)} | ${kb(bundled.totalBytes)} | ${ms(bundled.loadMsMedian)} | |`,
  );
  const sdk = sdkLoadMs();
  console.log(
    `\nFor scale: loading @aws-sdk/client-dynamodb and lib-dynamodb alone takes ${ms(sdk)} here (median of 15).`,
  );
}

await main();
