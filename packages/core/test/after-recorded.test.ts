import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GitLabJobs, TagsUnavailable } from "../src/gitlab-api";
import { createLeases } from "../src/leases";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { defaultPools, type PoolConfig } from "../src/pools";
import {
  createScalingRecords,
  holdLease,
  LEASE_SECONDS,
  requestScale,
  type StartRun,
  scaleLease,
} from "../src/scaling";
import { afterJobRecorded } from "../src/scaling/after-recorded";
import { ensureTable } from "../src/table";
import { jobEvent } from "./support/jobs";

/**
 * What follows a recorded job: a GitLab job whose tags are not known yet asks its own pool, and no
 * other, for capacity; one whose tags cannot be known is routed as untagged.
 */

let dynamo: EmbeddedDynamo;
beforeAll(async () => {
  dynamo = await startEmbeddedDynamo();
});
afterAll(() => dynamo.close());

/** The tag lookup's budget: short where GitLab never answers, ample where it does (a loaded machine). */
async function setUp(
  gitlab: GitLabJobs | undefined,
  lookupBudgetMs = 100,
  pools: readonly PoolConfig[] = defaultPools,
) {
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  const tableName = `after-${randomUUID()}`;
  await ensureTable(client, tableName);
  const store = { client: documents, tableName, now: () => new Date() };
  const ledger = createLedger(store);
  const scalingRecords = createScalingRecords(store);
  // The untagged pool has a spare slot: a job routed there takes it and starts nothing.
  await scalingRecords.put({
    pool: "x86_64",
    at: new Date().toISOString(),
    desiredWarm: 1,
    desiredBurst: 0,
    warmPoolSize: 0,
    queued: 0,
    spareSlots: 1,
    reason: "one instance up",
  });
  const started: string[] = [];
  const deps = {
    pools,
    ledger,
    leases: createLeases(store),
    scalingRecords,
    gitlab,
    startScaleFleet: async (pool: string) => {
      started.push(pool);
    },
    holder: () => randomUUID(),
    lookupBudgetMs,
  };
  const { job } = await ledger.record(
    jobEvent({ source: "gitlab", id: "77", projectId: "5", labels: [], labelsKnown: false }),
  );
  if (!job) throw new Error("not recorded");
  return { deps, job, started, scalingRecords };
}

const anyPlacement = defaultPools.map((pool) => ({ ...pool, placement: "any" as const }));

describe("afterJobRecorded", () => {
  it("looks a GitLab job's tags up and starts its own pool's run", async () => {
    const { deps, job, started, scalingRecords } = await setUp(
      { tagList: async () => ["nix", "aarch64-linux"] },
      10_000,
    );
    expect(await afterJobRecorded(deps, job)).toEqual({
      kind: "requested",
      pool: "aarch64",
      outcome: "started",
      tags: "looked_up",
    });
    expect(started).toEqual(["aarch64"]);
    expect((await scalingRecords.get("x86_64"))?.spareSlots).toBe(1);
  });

  it("asks no pool when GitLab does not answer within the budget: the tick looks again", async () => {
    const { deps, job, started, scalingRecords } = await setUp({ tagList: () => new Promise(() => {}) });
    expect(await afterJobRecorded(deps, job)).toMatchObject({ kind: "tags_pending" });
    expect(started).toEqual([]);
    expect((await scalingRecords.get("x86_64"))?.spareSlots).toBe(1);
  });

  it("routes a job whose tags cannot be known as untagged", async () => {
    for (const gitlab of [
      undefined,
      { tagList: (_: string, id: string) => Promise.reject(new TagsUnavailable(id)) },
    ]) {
      // Under placement `any` a spare slot covers a job: any free slot takes it.
      const { deps, job, started, scalingRecords } = await setUp(gitlab, 100, anyPlacement);
      expect(await afterJobRecorded(deps, job)).toEqual({
        kind: "requested",
        pool: "x86_64",
        outcome: "covered",
        tags: "unknown",
      });
      expect(started).toEqual([]);
      expect((await scalingRecords.get("x86_64"))?.spareSlots).toBe(0);
    }
  });

  it("under warm-first placement, starts a run even with a spare slot: only a run resumes the job's warm store", async () => {
    const { deps, job, started, scalingRecords } = await setUp(undefined);
    expect(await afterJobRecorded(deps, job)).toEqual({
      kind: "requested",
      pool: "x86_64",
      outcome: "started",
      tags: "unknown",
    });
    expect(started).toEqual(["x86_64"]);
    expect((await scalingRecords.get("x86_64"))?.spareSlots).toBe(1);
  });
});

describe("a new job and a run under way", () => {
  async function underWay() {
    const { deps } = await setUp(undefined);
    const lease = scaleLease("x86_64");
    expect(await deps.leases.acquire(lease, "run-1", LEASE_SECONDS)).toBe(true);
    const started: Array<{ pool: string; holder: string; supersede: boolean }> = [];
    const start: StartRun = async (pool, holder, how) => {
      started.push({ pool, holder, supersede: how?.supersede === true });
    };
    const request = (options?: { wake?: boolean }) =>
      requestScale(deps, "x86_64", start, "run-2", { covered: false, ...options });
    /** The superseding run's first Observe: it takes the lease from the waiting run, or stops. */
    const takeOver = () => deps.leases.supersede(lease, "run-2", LEASE_SECONDS, 0);
    return { deps, started, lease, request, takeOver };
  }

  it("supersedes a run that waits between iterations: the new run takes the pool, the old one stops", async () => {
    const { deps, started, lease, request, takeOver } = await underWay();
    // Apply's last renewal: the run waits 15 s.
    expect(await holdLease(deps, "x86_64", "run-1", Date.now() + 15_000)).toBe(true);
    expect(await request()).toBe("superseded");
    expect(started).toEqual([{ pool: "x86_64", holder: "run-2", supersede: true }]);
    // The webhook changes no lease: if its start failed, the waiting run would keep the pool.
    expect((await deps.leases.get(lease))?.holder).toBe("run-1");
    // The new run's first Observe takes it; the old run's next step finds it lost.
    expect(await takeOver()).toBe(true);
    expect((await deps.leases.get(lease))?.holder).toBe("run-2");
    expect(await holdLease(deps, "x86_64", "run-1")).toBe(false);
    // The new run, observing, is not waiting: a later job leaves it be.
    expect(await holdLease(deps, "x86_64", "run-2")).toBe(true);
    expect(await requestScale(deps, "x86_64", async () => {}, "run-3", { covered: false })).toBe("running");
  });

  it("leaves a run that is working, or about to observe, or asked by the tick", async () => {
    const { deps, started, lease, request } = await underWay();
    // Observing or applying: no wait announced.
    expect(await holdLease(deps, "x86_64", "run-1")).toBe(true);
    expect(await request()).toBe("running");
    // Waiting, but within the margin of its next observation.
    expect(await holdLease(deps, "x86_64", "run-1", Date.now() + 1_000)).toBe(true);
    expect(await request()).toBe("running");
    // Waiting long, but the tick does not wake runs.
    expect(await holdLease(deps, "x86_64", "run-1", Date.now() + 15_000)).toBe(true);
    expect(await request({ wake: false })).toBe("running");
    expect(started).toEqual([]);
    expect((await deps.leases.get(lease))?.holder).toBe("run-1");
  });

  it("takes a lease freed meanwhile (the run finished before the new one's first step), as acquire would", async () => {
    const { deps, lease, takeOver } = await underWay();
    await deps.leases.release(lease, "run-1");
    expect(await takeOver()).toBe(true);
    expect((await deps.leases.get(lease))?.holder).toBe("run-2");
  });

  it("a run that observes again before the takeover keeps its lease: the new run stops", async () => {
    const { deps, lease, request, takeOver } = await underWay();
    expect(await holdLease(deps, "x86_64", "run-1", Date.now() + 15_000)).toBe(true);
    expect(await request()).toBe("superseded");
    // Its wait ended before the new run's first step: the renewal withdraws the wait, and the two
    // conditional writes exclude each other.
    expect(await holdLease(deps, "x86_64", "run-1")).toBe(true);
    expect(await takeOver()).toBe(false);
    expect((await deps.leases.get(lease))?.holder).toBe("run-1");
  });
});
