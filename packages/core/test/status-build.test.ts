import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobEvent } from "../src/jobs";
import { createJournal } from "../src/journal";
import { type EmbeddedDynamo, startEmbeddedDynamo } from "../src/local";
import { defaultPools } from "../src/pools";
import { createRetryHolds } from "../src/retries/holds";
import { createScalingRecords } from "../src/scaling";
import { statusSchema } from "../src/status";
import { buildStatus } from "../src/status/build";
import { heartbeat } from "./support/heartbeats";
import { jobEvent } from "./support/jobs";
import { A, ARM, B, STRANGER, storeWorld } from "./support/store-world";

/**
 * The status document counts, per pool, where the stores of the jobs that started in the last day
 * came from, and each running or finished job carries its own origin: what the ledger decided.
 */

let dynamo: EmbeddedDynamo;
beforeAll(async () => {
  dynamo = await startEmbeddedDynamo();
});
afterAll(() => dynamo.close());

/** The status document of a store world, with its scaling records, at 2026-01-02T10:00Z. */
function statusAtTen(world: {
  store: Parameters<typeof createJournal>[0];
  ledger: Parameters<typeof buildStatus>[0]["ledger"];
  registry: Parameters<typeof buildStatus>[0]["registry"];
  scalingRecords: Parameters<typeof buildStatus>[0]["scalingRecords"];
}) {
  return buildStatus(
    {
      pools: defaultPools,
      ledger: world.ledger,
      registry: world.registry,
      journal: createJournal(world.store),
      scalingRecords: world.scalingRecords,
      now: () => new Date("2026-01-02T10:00:00.000Z"),
    },
    "local",
  );
}

describe("buildStatus: store origins", () => {
  it("counts warm, substituted and cold per pool over the window, and shows each job's origin", async () => {
    const { store, ledger, registry, setClock } = await storeWorld(dynamo, "2026-01-02T10:00:00.000Z");
    let clock = new Date("2026-01-02T10:00:00.000Z");
    const at = (iso: string) => {
      clock = new Date(iso);
      setClock(iso);
    };
    const run = async (id: string, instanceId: string, start: string, rest: Partial<JobEvent> = {}) => {
      const runner = { id: "7", name: `hearth-${instanceId}-1` };
      const queuedAt = new Date(Date.parse(start) - 5_000).toISOString();
      await ledger.record(jobEvent({ id, queuedAt, ...rest }));
      await ledger.record(
        jobEvent({ id, queuedAt, status: "running", startedAt: start, runner, instanceId, ...rest }),
      );
      return async (end: string) =>
        ledger.record(
          jobEvent({
            id,
            queuedAt,
            status: "completed",
            conclusion: "success",
            startedAt: start,
            finishedAt: end,
            runner,
            instanceId,
            ...rest,
          }),
        );
    };
    // Two days ago: outside the window, but it warms A and the pool's cache.
    at("2026-01-02T10:00:00.000Z");
    await (await run("1", A, "2026-01-02T10:00:00.000Z"))("2026-01-02T10:01:00.000Z");
    at("2026-01-04T10:00:00.000Z");
    await (await run("2", A, "2026-01-04T10:00:00.000Z"))("2026-01-04T10:02:00.000Z"); // warm
    await run("3", B, "2026-01-04T10:03:00.000Z"); // substituted, still running
    await (await run("4", B, "2026-01-04T10:04:00.000Z", { name: "ci / lint" }))("2026-01-04T10:05:00.000Z"); // cold
    await run("5", ARM, "2026-01-04T10:06:00.000Z", {
      name: "ci / arm",
      labels: ["nix", "aarch64-linux"],
    }); // cold, other pool
    await run("6", STRANGER, "2026-01-04T10:07:00.000Z"); // unknown instance: not counted
    at("2026-01-04T10:10:00.000Z");

    const status = await buildStatus(
      {
        pools: defaultPools,
        ledger,
        registry,
        journal: createJournal(store),
        scalingRecords: createScalingRecords(store),
        now: () => clock,
      },
      "local",
    );
    expect(statusSchema.parse(status)).toEqual(status);
    const [x86, arm] = status.pools;
    expect(x86?.stores).toEqual({
      windowSeconds: 86_400,
      warm: 1,
      substituted: 1,
      cold: 1,
      warmHitRate: 1 / 3,
    });
    expect(arm?.stores).toEqual({ windowSeconds: 86_400, warm: 0, substituted: 0, cold: 1, warmHitRate: 0 });
    const origins = Object.fromEntries(
      [...status.jobs.running, ...status.jobs.finished].map((job) => [job.id, job.origin]),
    );
    expect(origins).toEqual({ "2": "warm", "3": "substituted", "4": "cold", "5": "cold", "6": null });
  });
});

describe("buildStatus: a spot warm group's stores", () => {
  it("shows a store a spot interruption stopped as stopped, but not in the warm pool", async () => {
    const { store, ledger, registry } = await storeWorld(dynamo, "2026-01-02T10:00:00.000Z");
    const scalingRecords = createScalingRecords(store);
    const stopped = (id: string, stoppedByInterruption: boolean) => ({
      id,
      pool: "x86_64",
      group: "warm" as const,
      market: "spot" as const,
      az: "us-east-1a",
      lifecycle: "stopped" as const,
      protectedFromScaleIn: true,
      launchedAt: "2026-01-02T09:00:00.000Z",
      ...(stoppedByInterruption ? { stoppedByInterruption } : {}),
    });
    await scalingRecords.putFleet("x86_64", {
      groups: [
        {
          pool: "x86_64",
          group: "warm",
          name: "x86-warm",
          desired: 0,
          max: 50,
          warmPoolSize: 1,
          onDemandFallback: false,
        },
      ],
      instances: [stopped("i-0aaaaaaaaaaaaaaa1", false), stopped("i-0aaaaaaaaaaaaaaa2", true)],
    });
    const status = await statusAtTen({ store, ledger, registry, scalingRecords });
    const [x86] = status.pools;
    expect(x86?.heldForRetries).toBeUndefined();
    expect(x86?.instances.stopped).toBe(2);
    expect(x86?.capacity.warmPool).toEqual({ target: 1, stopped: 1 });
    // The instances list says which one waits for spot capacity.
    const waits = Object.fromEntries(status.instances.map((view) => [view.id, view.waitsForCapacity]));
    expect(waits).toEqual({ "i-0aaaaaaaaaaaaaaa1": undefined, "i-0aaaaaaaaaaaaaaa2": true });
  });
});

describe("buildStatus: the stores' health", () => {
  it("shows each store's free disk, and its push lag while it runs (a stopped store's is frozen)", async () => {
    const { store, ledger, registry, setClock } = await storeWorld(dynamo, "2026-01-02T10:00:00.000Z");
    const scalingRecords = createScalingRecords(store);
    const beat = (id: string, freeDiskBytes: number, pushLagSeconds: number) =>
      registry.heartbeat(
        id,
        heartbeat(id, { storeBytes: 30_000_000_000, freeDiskBytes, pushQueueDepth: 3, pushLagSeconds }),
      );
    // ARM reported long ago and has been silent since: its lag is not now's.
    setClock("2026-01-02T09:50:00.000Z");
    await beat(ARM, 20_000_000_000, 7_200);
    setClock("2026-01-02T10:00:00.000Z");
    await beat(A, 40_000_000_000, 5_400);
    await beat(B, 9_000_000_000, 12);
    const instance = (id: string, lifecycle: "in-service" | "stopped") => ({
      id,
      pool: "x86_64",
      group: "warm" as const,
      market: "spot" as const,
      az: "eu-west-1a",
      lifecycle,
      protectedFromScaleIn: true,
      launchedAt: "2026-01-02T09:00:00.000Z",
    });
    await scalingRecords.putFleet("x86_64", {
      groups: [],
      instances: [instance(A, "in-service"), instance(B, "stopped")],
    });
    await scalingRecords.putFleet("aarch64", {
      groups: [],
      instances: [{ ...instance(ARM, "in-service"), pool: "aarch64" }],
    });
    const status = await statusAtTen({ store, ledger, registry, scalingRecords });
    expect(statusSchema.safeParse(status).success).toBe(true);
    const views = Object.fromEntries(
      status.instances.map((view) => [view.id, [view.freeDiskBytes, view.pushLagSeconds]]),
    );
    expect(views).toEqual({
      [A]: [40_000_000_000, 5_400],
      [B]: [9_000_000_000, null],
      [ARM]: [20_000_000_000, null],
    });
  });
});

describe("buildStatus: a pool holding its spot runners for retries", () => {
  it("says how many retries hold it, and since when, and nothing once they end", async () => {
    const { store, ledger, registry } = await storeWorld(dynamo, "2026-01-02T10:00:00.000Z");
    const holds = createRetryHolds(store);
    const build = (at: string) =>
      buildStatus(
        {
          pools: defaultPools,
          ledger,
          registry,
          journal: createJournal(store),
          scalingRecords: createScalingRecords(store),
          retryHolds: holds,
          now: () => new Date(at),
        },
        "local",
      );
    const held = (status: Awaited<ReturnType<typeof build>>) =>
      status.pools.map((pool) => [pool.name, pool.heldForRetries ?? null]);
    expect(held(await build("2026-01-02T10:00:00.000Z"))).toEqual([
      ["x86_64", null],
      ["aarch64", null],
    ]);
    await holds.begin("x86_64", { source: "gitlab", id: "41" });
    await holds.begin("x86_64", { source: "gitlab", id: "42" });
    const status = await build("2026-01-02T10:05:00.000Z");
    expect(statusSchema.parse(status)).toEqual(status);
    expect(held(status)).toEqual([
      ["x86_64", { jobs: 2, since: "2026-01-02T10:00:00.000Z" }],
      ["aarch64", null],
    ]);
    await holds.end("x86_64", { source: "gitlab", id: "41" }, "started");
    await holds.end("x86_64", { source: "gitlab", id: "42" }, "started");
    expect(held(await build("2026-01-02T10:06:00.000Z"))).toEqual([
      ["x86_64", null],
      ["aarch64", null],
    ]);
  });
});

describe("buildStatus: jobs held for approval", () => {
  it("lists GitHub's waiting jobs of the last day, latest first, apart from the queue and never as demand", async () => {
    const { store, ledger, registry } = await storeWorld(dynamo, "2026-01-02T10:00:00.000Z");
    const scalingRecords = createScalingRecords(store);
    // Two deployment approvals (GitHub's `waiting`), a GitLab job waiting (for an earlier stage, say:
    // not listed), and one queued job.
    await ledger.record(jobEvent({ id: "10", status: "waiting", queuedAt: "2026-01-02T09:50:00.000Z" }));
    await ledger.record(jobEvent({ id: "11", status: "waiting", queuedAt: "2026-01-02T09:58:00.000Z" }));
    await ledger.record(
      jobEvent({ id: "14", source: "gitlab", status: "waiting", queuedAt: "2026-01-02T09:57:00.000Z" }),
    );
    await ledger.record(jobEvent({ id: "12", queuedAt: "2026-01-02T09:59:00.000Z" }));
    // Older than a day: not read.
    await ledger.record(jobEvent({ id: "13", status: "waiting", queuedAt: "2025-12-31T09:00:00.000Z" }));
    const status = await statusAtTen({ store, ledger, registry, scalingRecords });
    expect(statusSchema.parse(status)).toEqual(status);
    expect(status.jobs.waiting?.map((job) => [job.source, job.id, job.status, job.waitSeconds])).toEqual([
      ["github", "11", "waiting", 120],
      ["github", "10", "waiting", 600],
    ]);
    // The queue has the queued job only.
    expect(status.jobs.queuedCount).toBe(1);
    expect(status.jobs.queued.map((job) => job.id)).toEqual(["12"]);
  });
});
