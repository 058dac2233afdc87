import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Heartbeat, InstanceRecord } from "../src/instances";
import { cacheKeyOf, type JobEvent } from "../src/jobs";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, startEmbeddedDynamo } from "../src/local";
import { type PoolConfig, poolsConfigSchema } from "../src/pools";
import { COLD_LISTEN_DELAY_MS } from "../src/stores/listening";
import { listeningStoreOf, type StorePlacementDeps, storePlacement } from "../src/stores/placement";
import { heartbeat } from "./support/heartbeats";
import { jobEvent } from "./support/jobs";
import { A, ARM, B, type StoreWorld, storeWorld } from "./support/store-world";

/**
 * Warm-first placement as the heartbeat asks it (`storePlacement`): the pool's queue from the ledger,
 * its stores from the registry, against embedded DynamoDB, decided by `listeningStores`.
 */

let dynamo: EmbeddedDynamo;
beforeAll(async () => {
  dynamo = await startEmbeddedDynamo();
});
afterAll(() => dynamo.close());

const START = "2026-01-01T10:00:00.000Z";
const world = () => storeWorld(dynamo, START);

const poolsWith = (placement: "warm-first" | "any"): PoolConfig[] =>
  poolsConfigSchema.parse([
    {
      name: "x86_64",
      labels: ["nix", "x86_64-linux"],
      architecture: "x86_64",
      instanceTypes: ["c6a.xlarge"],
      placement,
    },
    {
      name: "aarch64",
      labels: ["nix", "aarch64-linux"],
      architecture: "arm64",
      instanceTypes: ["c7g.xlarge"],
    },
  ]);

const beat = (instanceId: string, overrides: Partial<Heartbeat> = {}): Heartbeat =>
  heartbeat(instanceId, { protocol: 3, ...overrides });

const keyOf = (name: string) => cacheKeyOf({ project: "acme/app", name });

/** A job of `name` ran and completed on the instance: its store holds the key from then on. */
async function ranOn(w: StoreWorld, id: string, instanceId: string, name: string) {
  const runner = { id: "7", name: `hearth-${instanceId}-1` };
  const base: Partial<JobEvent> = { id, name, runner, instanceId, startedAt: START };
  await w.ledger.record(jobEvent({ id, name }));
  await w.ledger.record(jobEvent({ ...base, status: "running" }));
  await w.ledger.record(jobEvent({ ...base, status: "completed", conclusion: "success", finishedAt: START }));
}

const queue = (w: StoreWorld, id: string, name: string, queuedAt = START, labels = ["nix", "x86_64-linux"]) =>
  w.ledger.record(jobEvent({ id, name, queuedAt, labels }));

/** The instance's record after a heartbeat, as the heartbeat hands it to placement. */
async function beaten(w: StoreWorld, instanceId: string, overrides: Partial<Heartbeat> = {}) {
  const stored = await w.registry.heartbeat(instanceId, beat(instanceId, overrides));
  if (!stored) throw new Error(`${instanceId} is not registered`);
  return stored.after;
}

function placement(w: StoreWorld, overrides: Partial<StorePlacementDeps> = {}) {
  const warnings: string[] = [];
  const deps: StorePlacementDeps = {
    ledger: w.ledger,
    registry: w.registry,
    pools: poolsWith("warm-first"),
    now: () => new Date(START),
    log: { warn: (message, fields) => warnings.push(`${message} ${JSON.stringify(fields)}`) },
    ...overrides,
  };
  return { placement: storePlacement(deps), warnings };
}

/** An instance's record as the registry holds it, idle and reporting, warm for `k`. */
const storeRecord = (overrides: Partial<InstanceRecord> = {}): InstanceRecord =>
  ({
    id: A,
    market: "on-demand",
    runner: "ready",
    slots: 2,
    runningJobs: [],
    cacheKeys: ["k"],
    launchedAt: START,
    lastHeartbeatAt: START,
    releasing: null,
    parkedAt: null,
    interruption: null,
    claiming: true,
    gitlabManager: null,
    ...overrides,
  }) as unknown as InstanceRecord;

describe("store placement", () => {
  it("holds every store of a pool with nothing queued, without reading the registry", async () => {
    const w = await world();
    const a = await beaten(w, A);
    // Another pool's job does not count.
    await queue(w, "1", "ci / arm", START, ["nix", "aarch64-linux"]);
    let listed = 0;
    const registry = {
      inPool: (pool: string) => {
        listed += 1;
        return w.registry.inPool(pool);
      },
    };
    const { placement: p } = placement(w, { registry });
    expect(await p.holds(a)).toBe(true);
    expect(listed).toBe(0);
    // The other pool's instance is placed for its job: it is the only store, so it listens.
    expect(await p.holds(await beaten(w, ARM))).toBe(false);
    expect(listed).toBe(1);
  });

  it("lets only the store warm for the oldest queued job listen, busy or idle, and holds the others", async () => {
    const w = await world();
    await ranOn(w, "1", A, "ci / build");
    await ranOn(w, "2", B, "ci / test");
    const a = await beaten(w, A);
    const b = await beaten(w, B);
    expect(a.cacheKeys).toEqual([keyOf("ci / build")]);
    await queue(w, "3", "ci / build");
    await queue(w, "4", "ci / test", "2026-01-01T10:00:01.000Z");
    const { placement: p } = placement(w);
    expect(await p.holds(a)).toBe(false);
    expect(await p.holds(b)).toBe(true);
    // B busy on one slot is decided too: still held (a slot that frees must not take A's job).
    expect(
      await p.holds(await beaten(w, B, { runner: "busy", runningJobs: [{ source: "github", id: "9" }] })),
    ).toBe(true);
  });

  it("lets cold stores listen for a job no store is warm for, except one warm for the next job", async () => {
    const w = await world();
    await ranOn(w, "1", B, "ci / test");
    const a = await beaten(w, A);
    const b = await beaten(w, B);
    await queue(w, "2", "ci / lint");
    await queue(w, "3", "ci / test", "2026-01-01T10:00:01.000Z");
    const { placement: p } = placement(w);
    expect(await p.holds(a)).toBe(false);
    // B is kept for the next job while A can take the oldest.
    expect(await p.holds(b)).toBe(true);
  });

  it("waits for a busy warm store only as long as the cold-listen delay", async () => {
    const w = await world();
    await ranOn(w, "1", A, "ci / build");
    const a = await beaten(w, A, {
      runner: "busy",
      runningJobs: [
        { source: "github", id: "8" },
        { source: "github", id: "9" },
      ],
    });
    const b = await beaten(w, B);
    await queue(w, "2", "ci / build");
    expect(await placement(w).placement.holds(b)).toBe(true);
    const later = new Date(Date.parse(START) + COLD_LISTEN_DELAY_MS);
    expect(await placement(w, { now: () => later }).placement.holds(b)).toBe(false);
    expect(await placement(w, { now: () => later }).placement.holds(a)).toBe(false);
  });

  it("decides with the heartbeating instance's fresh record, not its stored copy", async () => {
    const w = await world();
    await beaten(w, A);
    await ranOn(w, "1", B, "ci / build");
    const b = await beaten(w, B);
    await queue(w, "2", "ci / build");
    const { placement: p } = placement(w);
    // As stored, A is cold and B warm for the job: A is held.
    expect(await p.holds((await w.registry.get(A)) as InstanceRecord)).toBe(true);
    // A's agent now reports a store warm for it (the stored copy does not know yet): A listens too.
    const fresh: InstanceRecord = { ...(await beaten(w, A)), cacheKeys: [keyOf("ci / build")] };
    expect(await p.holds(fresh)).toBe(false);
    expect(await p.holds(b)).toBe(false);
  });

  it("holds nothing for a pool whose placement is `any`, nor for a queue longer than it reads", async () => {
    const w = await world();
    await ranOn(w, "1", A, "ci / build");
    const b = await beaten(w, B);
    expect(await placement(w, { pools: poolsWith("any") }).placement.holds(b)).toBe(false);
    await queue(w, "2", "ci / build");
    expect(await placement(w).placement.holds(b)).toBe(true);
    // A backlog: every slot takes what comes.
    await queue(w, "3", "ci / build", "2026-01-01T10:00:01.000Z");
    await queue(w, "4", "ci / build", "2026-01-01T10:00:02.000Z");
    expect(await placement(w, { queueLimit: 2 }).placement.holds(b)).toBe(false);
  });

  it("listens when it cannot read (fail open), and says why, naming the instance", async () => {
    const w = await world();
    const a = await beaten(w, A);
    const missing = createLedger({ ...w.store, tableName: "no-such-table" });
    const { placement: p, warnings } = placement(w, { ledger: missing });
    expect(await p.holds(a)).toBe(false);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain("could not decide the instance's placement");
    expect(warnings[0]).toContain(A);
  });

  it("counts a store that stopped reporting, or is being released, as out of service", () => {
    const now = Date.parse(START);
    const record = storeRecord({ runningJobs: [{ source: "github", id: "1" }] });
    expect(listeningStoreOf(record, now)).toEqual({
      id: A,
      state: "ready",
      launchedAt: now,
      freeSlots: 1,
      cacheKeys: ["k"],
    });
    expect(listeningStoreOf({ ...record, runner: "busy" }, now).state).toBe("ready");
    expect(listeningStoreOf(record, now + 91_000).state).toBe("other");
    expect(
      listeningStoreOf({ ...record, releasing: { at: START, confirmedAt: null, releasedAt: null } }, now)
        .state,
    ).toBe("other");
    expect(listeningStoreOf({ ...record, runner: "draining" }, now).state).toBe("other");
    expect(listeningStoreOf({ ...record, runner: "booting", lastHeartbeatAt: null }, now).state).toBe(
      "booting",
    );
  });

  it("counts a store parked into the warm pool as out of service, not booting, until it resumes or reports", async () => {
    const w = await world();
    await beaten(w, A);
    await w.registry.parked(A);
    const parked = (await w.registry.get(A)) as InstanceRecord;
    expect(parked.parkedAt).toBe(START);
    // Stopped a minute after its launch, it would otherwise look like a store still booting.
    const soon = Date.parse(START) + 60_000;
    expect(listeningStoreOf(parked, soon).state).toBe("other");
    expect(listeningStoreOf({ ...parked, parkedAt: null }, soon).state).toBe("booting");
    // Resumed: booting again.
    await w.registry.resumed(A, "2026-01-01T10:00:30.000Z");
    const resumed = (await w.registry.get(A)) as InstanceRecord;
    expect(resumed.parkedAt).toBeNull();
    expect(listeningStoreOf(resumed, soon).state).toBe("booting");
    // Parked again, then a heartbeat: it runs.
    await w.registry.parked(A);
    expect(listeningStoreOf(await beaten(w, A), Date.parse(START)).state).toBe("ready");
  });

  it("counts on no spot store while the pool holds its spot runners for a retry", () => {
    const now = Date.parse(START);
    const record = storeRecord({ market: "spot" });
    expect(listeningStoreOf(record, now, false).state).toBe("ready");
    expect(listeningStoreOf(record, now, true).state).toBe("other");
    expect(listeningStoreOf({ ...record, market: "on-demand" } as InstanceRecord, now, true).state).toBe(
      "ready",
    );
  });

  it("counts a held GitLab store with a job running as having no free slot: its gitlab-runner is stopping", () => {
    const now = Date.parse(START);
    const record = storeRecord({
      runner: "busy",
      runningJobs: [{ source: "gitlab", id: "1" }],
      claiming: false,
      gitlabManager: { runnerId: 5, systemId: "s_1" },
    });
    expect(listeningStoreOf(record, now).freeSlots).toBe(0);
    expect(listeningStoreOf({ ...record, claiming: true } as InstanceRecord, now).freeSlots).toBe(1);
    expect(listeningStoreOf({ ...record, gitlabManager: null } as InstanceRecord, now).freeSlots).toBe(1);
  });

  it("lets every store listen while a queued GitLab job's tags are unknown: placement cannot place it", async () => {
    const w = await world();
    const b = await beaten(w, B);
    await w.ledger.record(
      jobEvent({ source: "gitlab", id: "9", name: "build", labels: [], labelsKnown: false }),
    );
    expect(await placement(w).placement.holds(b)).toBe(false);
  });

  it("shares its reads among the heartbeats of a few seconds", async () => {
    const w = await world();
    await ranOn(w, "1", A, "ci / build");
    const b = await beaten(w, B);
    await queue(w, "2", "ci / build");
    let at = Date.parse(START);
    let scans = 0;
    let listings = 0;
    const { placement: p } = placement(w, {
      now: () => new Date(at),
      ledger: {
        queuedIfFew: (limit) => {
          scans += 1;
          return w.ledger.queuedIfFew(limit);
        },
      },
      registry: {
        inPool: (pool) => {
          listings += 1;
          return w.registry.inPool(pool);
        },
      },
    });
    expect(await p.holds(b)).toBe(true);
    at += 1_000;
    expect(await p.holds(b)).toBe(true);
    expect([scans, listings]).toEqual([1, 1]);
    at += 2_000;
    expect(await p.holds(b)).toBe(true);
    expect([scans, listings]).toEqual([2, 2]);
  });
});
