import { randomUUID } from "node:crypto";
import { BatchWriteCommand } from "@aws-sdk/lib-dynamodb";
import { FakeClock } from "@hearth/core/clock";
import { createInstanceRegistry } from "@hearth/core/instances";
import type { Job } from "@hearth/core/jobs";
import { createJournal } from "@hearth/core/journal";
import { createLeases } from "@hearth/core/leases";
import { createLedger, jobItem } from "@hearth/core/ledger";
import { localDynamoClients } from "@hearth/core/local";
import { QUEUE_GROUPS_PER_POOL } from "@hearth/core/planner";
import { defaultPools } from "@hearth/core/pools";
import { createScalingRecords, observe, planObservation, type ScalingDeps } from "@hearth/core/scaling";
import { SimulatedFleet } from "@hearth/core/simulation/fleet";
import { type Status, statusSchema } from "@hearth/core/status";
import { ensureTable } from "@hearth/core/table";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { statusRoutes } from "../src/status";
import { embeddedDynamo, stopEmbeddedDynamo } from "./support/harness";

/**
 * A queue longer than anything the observation or the status document may carry whole: ScaleFleet's
 * Observe on the real ledger (dynalite) counts all of it within a bounded observation, and the status
 * API pages through it.
 */

const QUEUED = 3_000;
const now = new Date("2026-03-02T10:00:00.000Z");
let deps: ScalingDeps;

const queuedJob = (n: number): Job => ({
  source: n % 2 ? "github" : "gitlab",
  id: String(500_000 + n),
  project: `acme/project-${n % 7}`,
  projectId: n % 2 ? null : "7",
  pipelineId: String(n % 100),
  // Every job its own cache key: the worst case for the observation's size.
  name: `build-${n}-${"x".repeat(200)}`,
  attempt: 0,
  labels: n % 4 === 0 ? ["aarch64-linux", "nix"] : n % 50 === 1 ? ["ubuntu-latest"] : ["nix", "x86_64-linux"],
  labelsKnown: true,
  status: "queued",
  conclusion: null,
  failureReason: null,
  queuedAt: new Date(now.getTime() - 3_600_000 + n * 1000).toISOString(),
  startedAt: null,
  finishedAt: null,
  runner: null,
  instanceId: null,
  url: null,
});
const jobs = Array.from({ length: QUEUED }, (_, n) => queuedJob(n));
const routedTo = (pool: string) =>
  jobs.filter(
    (job) =>
      !job.labels.includes("ubuntu-latest") &&
      job.labels.includes(pool === "x86_64" ? "x86_64-linux" : "aarch64-linux"),
  );

beforeAll(async () => {
  const { endpoint } = await embeddedDynamo();
  const { client, documents } = localDynamoClients(endpoint);
  const tableName = `hearth-${randomUUID()}`;
  await ensureTable(client, tableName);
  const store = { client: documents, tableName, now: () => now };
  for (let i = 0; i < jobs.length; i += 25) {
    const items = jobs
      .slice(i, i + 25)
      .map((job) => jobItem(job, { version: 1, deliveries: [], now, finishedTtlSeconds: 3600 }));
    await documents.send(
      new BatchWriteCommand({
        RequestItems: { [tableName]: items.map((Item) => ({ PutRequest: { Item } })) },
      }),
    );
  }
  deps = {
    pools: defaultPools,
    ledger: createLedger(store),
    registry: createInstanceRegistry(store),
    journal: createJournal(store),
    leases: createLeases(store),
    scalingRecords: createScalingRecords(store),
    fleet: new SimulatedFleet({ pools: defaultPools, clock: new FakeClock(now.getTime()) }),
    now: () => now,
  };
}, 120_000);
afterAll(() => stopEmbeddedDynamo());

describe("a long queue", () => {
  it("is counted whole by Observe, in an observation of bounded size", async () => {
    const observation = await observe(deps, "x86_64", 0);
    const expected = routedTo("x86_64");
    expect(observation.queued).toBe(expected.length);
    expect(observation.queue.reduce((sum, group) => sum + group.count, 0)).toBe(expected.length);
    expect(observation.queue).toHaveLength(QUEUE_GROUPS_PER_POOL + 1);
    // 101 groups of 220-character keys: far inside a Step Functions state (256 KB), whatever the
    // queue's length (the groups are bounded, not the jobs).
    expect(Buffer.byteLength(JSON.stringify(observation))).toBeLessThan(64 * 1024);
    const poolPlan = planObservation(deps, observation);
    expect(poolPlan.counts.queued).toBe(expected.length);
    expect(poolPlan.reason).toMatch(new RegExp(`^${expected.length} waiting for a slot`));
  });

  it("is paged through by the status API, oldest first, with exact counts", async () => {
    await observe(deps, "aarch64", 0); // the last full read, which the status page counts by
    const api = statusRoutes({ ...deps, stage: "test", token: undefined, quickRead: 100 });
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const response = await api.request(`/status${cursor ? `?cursor=${cursor}` : ""}`);
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(Buffer.byteLength(text)).toBeLessThan(256 * 1024);
      const status = statusSchema.parse(JSON.parse(text)) as Status;
      expect(status.pools.map((pool) => pool.queued)).toEqual([
        routedTo("x86_64").length,
        routedTo("aarch64").length,
      ]);
      expect(status.jobs.queuedCount).toBe(routedTo("x86_64").length + routedTo("aarch64").length);
      expect(status.unroutable.count).toBe(jobs.filter((job) => job.labels.includes("ubuntu-latest")).length);
      expect(status.jobs.queued.length).toBeLessThanOrEqual(100);
      seen.push(...status.jobs.queued.map((job) => job.id));
      cursor = status.jobs.next;
      pages++;
    } while (cursor !== null && pages < 100);
    const routed = jobs.filter((job) => !job.labels.includes("ubuntu-latest")).map((job) => job.id);
    expect(seen).toEqual(routed);
  }, 60_000);
});
