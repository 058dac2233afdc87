/**
 * `npm run bench:observe`: ScaleFleet's Observe, the planner and `GET /api/status` with a long
 * queue (50,000 jobs by default, `BENCH_QUEUED`), on the embedded DynamoDB (dynalite on its own
 * thread) and the simulated fleet, in process. Prints the figures of docs/BENCHMARKS.md.
 */
import { cpus } from "node:os";
import { BatchWriteCommand } from "@aws-sdk/lib-dynamodb";
import { systemClock } from "@hearth/core/clock";
import { createInstanceRegistry } from "@hearth/core/instances";
import type { Job } from "@hearth/core/jobs";
import { createJournal } from "@hearth/core/journal";
import { createLeases } from "@hearth/core/leases";
import { createLedger, jobItem } from "@hearth/core/ledger";
import { localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import { defaultPools } from "@hearth/core/pools";
import { createScalingRecords, observe, planObservation, type ScalingDeps } from "@hearth/core/scaling";
import { SimulatedFleet } from "@hearth/core/simulation/fleet";
import { ensureTable } from "@hearth/core/table";
import { statusRoutes } from "../src/status";

const QUEUED = Number(process.env.BENCH_QUEUED ?? 50_000);
const TRIALS = Number(process.env.BENCH_TRIALS ?? 10);
const KEYS = 2_000;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

async function main() {
  const dynamo = await startEmbeddedDynamo();
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  const tableName = "hearth-bench-observe";
  await ensureTable(client, tableName);
  const now = new Date();
  const store = { client: documents, tableName, now: () => now };

  // The queue, written as the ledger writes it, 25 items a request.
  const start = now.getTime() - 3600_000;
  const filled = performance.now();
  let batch: Record<string, unknown>[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await documents.send(
      new BatchWriteCommand({
        RequestItems: { [tableName]: batch.map((Item) => ({ PutRequest: { Item } })) },
      }),
    );
    batch = [];
  };
  for (let n = 0; n < QUEUED; n++) {
    const job: Job = {
      source: n % 2 ? "github" : "gitlab",
      id: String(1_000_000 + n),
      project: `acme/project-${n % 97}`,
      projectId: n % 2 ? null : String(n % 97),
      pipelineId: String(n % 5_000),
      name: `build-${n % KEYS}`,
      attempt: n % 2 ? 1 : 0,
      labels: n % 5 === 0 ? ["aarch64-linux", "nix"] : ["nix", "x86_64-linux"],
      labelsKnown: true,
      status: "queued",
      conclusion: null,
      failureReason: null,
      queuedAt: new Date(start + n * 50).toISOString(),
      startedAt: null,
      finishedAt: null,
      runner: null,
      instanceId: null,
      url: `https://ci.example.com/acme/project-${n % 97}/-/jobs/${1_000_000 + n}`,
    };
    const deliveries = Array.from({ length: 2 }, (_, i) => `delivery-${n}-${i}-${"0".repeat(24)}`);
    batch.push(jobItem(job, { version: 1, deliveries, now, finishedTtlSeconds: 7 * 86_400 }));
    if (batch.length === 25) await flush();
  }
  await flush();
  const fillSeconds = (performance.now() - filled) / 1000;

  const deps: ScalingDeps = {
    pools: defaultPools,
    ledger: createLedger(store),
    registry: createInstanceRegistry(store),
    journal: createJournal(store),
    leases: createLeases(store),
    scalingRecords: createScalingRecords(store),
    fleet: new SimulatedFleet({ pools: defaultPools, clock: systemClock, initialWarmPool: 2 }),
    now: () => now,
  };
  const api = statusRoutes({
    pools: deps.pools,
    ledger: deps.ledger,
    registry: deps.registry,
    journal: deps.journal,
    scalingRecords: deps.scalingRecords,
    now: deps.now,
    stage: "bench",
    token: undefined,
  });

  const observeMs: number[] = [];
  const planMs: number[] = [];
  const statusMs: number[] = [];
  let observationBytes = 0;
  let statusBytes = 0;
  let queuedSeen = 0;
  let reason = "";
  for (let trial = 0; trial <= TRIALS; trial++) {
    const t0 = performance.now();
    const observation = await observe(deps, "x86_64", 0);
    const t1 = performance.now();
    const poolPlan = planObservation(deps, observation);
    const t2 = performance.now();
    const response = await api.request("/status");
    const body = await response.text();
    const t3 = performance.now();
    if (response.status !== 200) throw new Error(`status answered ${response.status}: ${body.slice(0, 200)}`);
    if (trial === 0) continue; // warm-up
    observeMs.push(t1 - t0);
    planMs.push(t2 - t1);
    statusMs.push(t3 - t2);
    observationBytes = Buffer.byteLength(JSON.stringify(observation));
    statusBytes = Buffer.byteLength(body);
    queuedSeen = observation.queued;
    reason = poolPlan.reason;
  }
  await dynamo.close();

  const ms = (v: number) => `${v.toFixed(1)} ms`;
  console.log(
    `Machine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node ${process.version}; ${QUEUED} queued jobs (${KEYS} cache keys, 80% x86_64), filled in ${fillSeconds.toFixed(0)} s; median of ${TRIALS}`,
  );
  console.log("| step | median | max | size |\n|---|---|---|---|");
  console.log(
    `| Observe (x86_64: ${queuedSeen} queued) | ${ms(median(observeMs))} | ${ms(Math.max(...observeMs))} | ${(observationBytes / 1024).toFixed(1)} KB |`,
  );
  console.log(`| Plan | ${ms(median(planMs))} | ${ms(Math.max(...planMs))} | |`);
  console.log(
    `| GET /api/status | ${ms(median(statusMs))} | ${ms(Math.max(...statusMs))} | ${(statusBytes / 1024).toFixed(1)} KB |`,
  );
  console.log(`Plan: ${reason}`);
}

await main();
