import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { plannerInstance } from "../src/fleet";
import {
  type PlannerInput,
  type PlannerInstance,
  type PlannerJob,
  type PoolDemand,
  type PoolPlan,
  plan,
  QUEUE_GROUPS_PER_POOL,
  type RunningJob,
  summarizeQueue,
} from "../src/planner";
import { resumeForWarmth, spareStarts, storesForQueue } from "../src/planner/pool-plan";
import { type PoolConfig, type PoolConfigInput, poolConfigSchema } from "../src/pools";

const NOW = Date.parse("2026-03-02T10:00:00Z");

/** A pool; its warm group is an Auto Scaling group with a warm pool unless `warm.market` says spot. */
function poolConfig(overrides: Partial<PoolConfigInput> = {}): PoolConfig {
  return poolConfigSchema.parse({
    name: "x86_64",
    labels: ["nix", "x86_64-linux"],
    architecture: "x86_64",
    instanceTypes: ["c6a.xlarge"],
    idleTimeouts: { warmSeconds: 30, burstSeconds: 300 },
    ...overrides,
    warm: { market: "on-demand", ...overrides.warm },
  });
}

let serial = 0;

function instance(overrides: Partial<PlannerInstance> = {}): PlannerInstance {
  serial++;
  return {
    id: `i-${serial.toString(16).padStart(17, "0")}`,
    pool: "x86_64",
    group: "warm",
    market: "on-demand",
    state: "ready",
    slots: 2,
    busySlots: 0,
    cacheKeys: [],
    launchedAt: NOW - 3600_000,
    idleSince: null,
    heartbeatOverdue: false,
    ...overrides,
  };
}

/** A ready instance idle for `seconds`. */
const idle = (seconds: number, overrides: Partial<PlannerInstance> = {}) =>
  instance({ idleSince: NOW - seconds * 1000, ...overrides });
const stopped = (overrides: Partial<PlannerInstance> = {}) => instance({ state: "stopped", ...overrides });
const burst = (overrides: Partial<PlannerInstance> = {}) =>
  instance({ group: "burst", market: "spot", ...overrides });

function queued(cacheKey = "app/build", overrides: Partial<PlannerJob> = {}): PlannerJob {
  serial++;
  return {
    key: `github#${serial}`,
    pool: "x86_64",
    status: "queued",
    cacheKey,
    queuedAt: NOW - 10_000,
    instanceId: null,
    ...overrides,
  };
}

const running = (on: PlannerInstance, cacheKey = "app/build"): PlannerJob =>
  queued(cacheKey, { status: "running", instanceId: on.id, pool: on.pool });

const demand = (overrides: Partial<PoolDemand> = {}): PoolDemand => ({
  burstJobs: 0,
  peakBurstJobs: 0,
  peakJobs: 0,
  loadJobs: 0,
  jobsPerHour: 0,
  keyWeights: {},
  ...overrides,
});

/** The planner's input for a list of jobs, as Observe builds it: the queue summarised, running jobs. */
function jobsInput(jobs: readonly PlannerJob[]): Pick<PlannerInput, "queued" | "running"> {
  return {
    queued: summarizeQueue(jobs.filter((job) => job.status === "queued")),
    running: jobs.flatMap((job): RunningJob[] =>
      job.status === "running" && job.instanceId !== null
        ? [{ key: job.key, pool: job.pool, instanceId: job.instanceId }]
        : [],
    ),
  };
}

/** Deferred, never dropped: the stores the warm group has stay in it or in service. */
function keepsItsStores(
  input: { instances: readonly PlannerInstance[] },
  before: PoolPlan,
  after: PoolPlan,
): void {
  const has = input.instances.filter(
    (i) => i.group === "warm" && (i.state === "stopped" || i.state === "stopping") && !i.waitsForCapacity,
  ).length;
  expect(after.desiredWarm + after.warmPoolSize).toBeGreaterThanOrEqual(
    Math.min(has, before.desiredWarm + before.warmPoolSize),
  );
}

function planOne(
  overrides: Partial<Omit<PlannerInput, "queued" | "running">> & { pool?: PoolConfig; jobs?: PlannerJob[] },
): PoolPlan {
  const { pool = poolConfig(), jobs = [], ...rest } = overrides;
  const plans = plan({ now: NOW, pools: [pool], instances: [], ...jobsInput(jobs), ...rest });
  expect(plans).toHaveLength(1);
  return plans[0] as PoolPlan;
}

describe("plan: serving queued jobs", () => {
  it("does nothing when nothing is queued and nothing runs", () => {
    const result = planOne({});
    expect(result).toMatchObject({ desiredWarm: 0, desiredBurst: 0, warmPoolSize: 0, release: [] });
    expect(result.reason).toBe("steady");
    expect(result.recheckAt).toBeNull();
  });

  it("serves queued jobs from free slots first", () => {
    const ready = [instance(), instance({ busySlots: 1 })];
    const result = planOne({
      instances: ready,
      jobs: [queued(), queued(), queued(), running(ready[1] as PlannerInstance)],
    });
    expect(result).toMatchObject({ desiredWarm: 2, desiredBurst: 0, release: [] });
    expect(result.counts).toMatchObject({ queued: 3, freeSlots: 3, resume: 0, launch: 0 });
  });

  it("counts a launching instance's slots as on their way", () => {
    const result = planOne({ instances: [instance({ state: "launching" })], jobs: [queued(), queued()] });
    expect(result).toMatchObject({ desiredWarm: 1, desiredBurst: 0 });
  });

  it("resumes stopped warm-pool instances before launching spot", () => {
    const result = planOne({
      instances: [stopped(), stopped(), stopped()],
      jobs: [queued(), queued(), queued()],
    });
    expect(result).toMatchObject({ desiredWarm: 2, desiredBurst: 0 });
    expect(result.counts).toMatchObject({ resume: 2, launch: 0 });
    expect(result.reason).toBe("3 waiting for a slot, 0 free; resume 2 from the warm pool");
  });

  it("launches spot once the warm pool is empty", () => {
    const result = planOne({ instances: [stopped()], jobs: Array.from({ length: 7 }, () => queued()) });
    expect(result).toMatchObject({ desiredWarm: 1, desiredBurst: 3 });
    expect(result.reason).toBe("7 waiting for a slot, 0 free; resume 1 from the warm pool; launch 3 spot");
  });

  it("says on-demand when the burst group has fallen back, or buys no spot", () => {
    const jobs = Array.from({ length: 6 }, () => queued());
    const fallen = planOne({ jobs, onDemandFallback: ["x86_64"] });
    expect(fallen).toMatchObject({ desiredBurst: 3 });
    expect(fallen.reason).toBe("6 waiting for a slot, 0 free; launch 3 on-demand");
    // Another pool's fallback says nothing of this one.
    expect(planOne({ jobs, onDemandFallback: ["other"] }).reason).toContain("launch 3 spot");
    const noSpot = planOne({ jobs, pool: poolConfig({ burst: { spotShare: 0 } }) });
    expect(noSpot.reason).toContain("launch 3 on-demand");
    const mixed = planOne({ jobs, pool: poolConfig({ burst: { spotShare: 0.5 } }) });
    expect(mixed.reason).toContain("launch 3 burst (50% spot)");
  });

  it("never plans past maxInstances, and says how short it is", () => {
    const pool = poolConfig({ maxInstances: 3 });
    const busy = instance({ busySlots: 2 });
    const result = planOne({
      pool,
      instances: [busy, stopped()],
      jobs: [running(busy), running(busy), ...Array.from({ length: 10 }, () => queued())],
    });
    expect(result.desiredWarm + result.desiredBurst).toBe(3);
    expect(result).toMatchObject({ desiredWarm: 2, desiredBurst: 1 });
    expect(result.reason).toContain("3 short at the instance limit");
  });

  it("counts instances on their way into the warm pool against maxInstances", () => {
    // Two new stores booting to be parked (launched as a burst began) run until they stop: a burst
    // launched beside them would take the pool past its limit.
    const pool = poolConfig({ maxInstances: 5, warm: { market: "spot" } });
    const busy = instance({ market: "spot", busySlots: 2 });
    const parking = () => instance({ market: "spot", state: "stopping", launchedAt: NOW - 5000 });
    const result = planOne({
      pool,
      instances: [busy, parking(), parking()],
      jobs: [running(busy), running(busy), ...Array.from({ length: 10 }, () => queued())],
    });
    expect(result).toMatchObject({ desiredWarm: 1, desiredBurst: 2 });
    expect(result.reason).toContain("3 short at the instance limit");
  });

  it("does not count free slots of a suspect instance", () => {
    const suspect = instance({ heartbeatOverdue: true, idleSince: NOW - 3600_000 });
    const result = planOne({ instances: [suspect], jobs: [queued()] });
    expect(result).toMatchObject({ desiredWarm: 1, desiredBurst: 1, release: [] });
  });

  it("replaces the capacity of jobs on a draining (interrupted) instance", () => {
    const draining = burst({ state: "draining", busySlots: 2 });
    const result = planOne({ instances: [draining], jobs: [running(draining), running(draining)] });
    expect(result.counts.rehome).toBe(2);
    // The draining instance is no longer counted in its group: one new instance for its two jobs.
    expect(result).toMatchObject({ desiredWarm: 0, desiredBurst: 1, release: [] });
  });

  it("keeps minReady instances ready", () => {
    const result = planOne({ pool: poolConfig({ warm: { minReady: 2 } }), instances: [stopped()] });
    expect(result).toMatchObject({ desiredWarm: 1, desiredBurst: 1 });
  });
});

describe("plan: retried jobs prefer on-demand", () => {
  it("launches the capacity retried jobs need in the warm group, the rest on spot", () => {
    const jobs = Array.from({ length: 6 }, () => queued());
    // 6 queued, 3 of them retries, 2 slots each: 2 on-demand instances for the retries, 1 spot.
    const result = planOne({ jobs, queuedRetries: { x86_64: 3 } });
    expect(result).toMatchObject({ desiredWarm: 2, desiredBurst: 1 });
    expect(result.counts).toMatchObject({ launch: 1, launchForRetries: 2 });
    expect(result.reason).toContain("launch 2 on-demand for retried jobs");
    // Without retries, all of it is spot.
    expect(planOne({ jobs })).toMatchObject({ desiredWarm: 0, desiredBurst: 3 });
  });

  it("resumes warm-pool instances for them first, and keeps to spot when the pool says so", () => {
    const jobs = Array.from({ length: 4 }, () => queued());
    const resumed = planOne({ jobs, instances: [stopped()], queuedRetries: { x86_64: 4 } });
    expect(resumed).toMatchObject({ desiredWarm: 2, desiredBurst: 0 });
    expect(resumed.counts).toMatchObject({ resume: 1, launchForRetries: 1, launch: 0 });
    const off = planOne({ jobs, pool: poolConfig({ retryOnDemand: false }), queuedRetries: { x86_64: 4 } });
    expect(off).toMatchObject({ desiredWarm: 0, desiredBurst: 2 });
  });

  it("while the pool holds its spot runners, serves its queue on-demand, not from spot's free slots", () => {
    const idleSpot = burst({ busySlots: 0 });
    const jobs = Array.from({ length: 3 }, () => queued());
    const held = planOne({ jobs, instances: [idleSpot], heldPools: ["x86_64"] });
    // The spot instance's two free slots do not listen: 3 queued jobs need 2 on-demand instances.
    expect(held.counts).toMatchObject({ freeSlots: 0, launchForRetries: 2, launch: 0 });
    expect(held).toMatchObject({ desiredWarm: 2, desiredBurst: 1, release: [] });
    // Not held: the free spot slots serve two, the third is launched on spot.
    const free = planOne({ jobs, instances: [idleSpot] });
    expect(free.counts).toMatchObject({ freeSlots: 2, launch: 1 });
    expect(free).toMatchObject({ desiredWarm: 0, desiredBurst: 2 });
  });

  it("while held, releases idle spot instances even while jobs wait: their room goes to on-demand", () => {
    const pool = poolConfig({ maxInstances: 2 });
    const idleSince = NOW - 1000 * (pool.idleTimeouts.burstSeconds + 1);
    const [deaf, busy] = [burst({ idleSince }), burst({ busySlots: 2 })];
    const jobs = Array.from({ length: 2 }, () => queued());
    const held = planOne({ pool, jobs, instances: [deaf, busy], heldPools: ["x86_64"] });
    // Full pool, and the idle spot instance claims nothing: it goes, and an on-demand one takes its room.
    expect(held.release).toEqual([deaf.id]);
    expect(held.counts).toMatchObject({ freeSlots: 0, launchForRetries: 1, launch: 0 });
    expect(held).toMatchObject({ desiredWarm: 1, desiredBurst: 1 });
    // Not held, an idle instance is never released while jobs wait: one may be claiming right now.
    const free = planOne({ pool, jobs, instances: [deaf, busy] });
    expect(free.release).toEqual([]);
    // Not yet past its idle timeout: kept, held or not.
    const recent = burst({ idleSince: NOW - 1000 });
    expect(planOne({ pool, jobs, instances: [recent, busy], heldPools: ["x86_64"] }).release).toEqual([]);
  });

  it("never goes past maxInstances for them", () => {
    const jobs = Array.from({ length: 8 }, () => queued());
    const result = planOne({ jobs, pool: poolConfig({ maxInstances: 2 }), queuedRetries: { x86_64: 8 } });
    expect(result.desiredWarm + result.desiredBurst).toBe(2);
    expect(result.desiredWarm).toBe(2);
  });
});

describe("plan: a spot warm group Hearth keeps (warm.market: spot)", () => {
  const spotWarm = () => poolConfig({ warm: { market: "spot" } });
  const spotStopped = (overrides: Partial<PlannerInstance> = {}) => stopped({ market: "spot", ...overrides });

  it("names the stopped store warm for the queued job first, then as many as a warm pool would start", () => {
    const stores = [spotStopped({ cacheKeys: ["b"] }), spotStopped({ cacheKeys: ["a"] }), spotStopped()];
    const demandFor = { x86_64: demand({ keyWeights: { b: 5 } }) };
    const result = planOne({ pool: spotWarm(), instances: stores, jobs: [queued("a")], demand: demandFor });
    // An Auto Scaling warm pool would resume all three to get the one warm for "a" back with 95%
    // probability; Hearth names that one first, then the most valuable ("b"), then the last.
    expect(result.counts.resume).toBe(3);
    expect(result.resumeStores).toEqual([stores[1]?.id, stores[0]?.id, stores[2]?.id]);
    // The queue needs one: the other two are for warmth, started if they can be, never launched.
    expect(result.counts.resumeForWarmth).toBe(2);
    expect(result.desiredWarm).toBe(3);
    // AWS's choice: as many, none named.
    const asg = planOne({
      instances: stores.map((i) => ({ ...i, market: "on-demand" })),
      jobs: [queued("a")],
    });
    expect(asg.counts.resume).toBe(3);
    expect(asg.resumeStores).toEqual([]);
    // With many stores warm for the job, a few suffice: the named one and the next most valuable.
    const many = [
      ...Array.from({ length: 8 }, () => spotStopped({ cacheKeys: ["a"] })),
      spotStopped({ cacheKeys: ["b"] }),
    ];
    const few = planOne({ pool: spotWarm(), instances: many, jobs: [queued("a")], demand: demandFor });
    expect(few.counts.resume).toBe(resumeForWarmth(summarizeQueue([queued("a")]), [], many));
    expect(few.counts.resume).toBe(2);
    expect(few.resumeStores?.[1]).toBe(many[8]?.id);
  });

  it("starts a spare store beside those a queue needs: a spot start may find no capacity", () => {
    // No store is warm for "new": a warm pool's resume for warmth adds none.
    const stores = [spotStopped({ cacheKeys: ["b"] }), spotStopped({ cacheKeys: ["c"] }), spotStopped()];
    const one = planOne({ pool: spotWarm(), instances: stores, jobs: [queued("new")] });
    expect([one.counts.resume, one.counts.resumeForWarmth]).toEqual([2, 1]);
    // On-demand, a start does not fail for capacity: only the one the job needs.
    const onDemand = planOne({
      instances: stores.map((i) => ({ ...i, market: "on-demand" })),
      jobs: [queued("new")],
    });
    expect([onDemand.counts.resume, onDemand.counts.resumeForWarmth]).toEqual([1, undefined]);
    // Two booting for three jobs: slots enough, none spare, and a start may fail: a spare starts.
    const booting = [
      instance({ market: "spot", state: "launching" }),
      instance({ market: "spot", state: "launching" }),
    ];
    const three = ["x", "y", "z"].map((key) => queued(key));
    const short = planOne({ pool: spotWarm(), instances: [...booting, ...stores], jobs: three });
    expect([short.counts.resume, short.counts.resumeForWarmth]).toEqual([1, 1]);
    // Two jobs for the same two: a spare is wanted, and the two slots the jobs leave free are one.
    const covered = planOne({
      pool: spotWarm(),
      instances: [...booting, ...stores],
      jobs: three.slice(0, 2),
    });
    expect(covered.counts.resume).toBe(0);
    expect([
      spareStarts(1, 1),
      spareStarts(1, 2),
      spareStarts(5, 5),
      spareStarts(6, 6),
      spareStarts(0, 3),
    ]).toEqual([1, 0, 1, 2, 0]);
  });

  it("counts the spares it started as spares: one per five stores relied on, however many passes", () => {
    for (const needed of [1, 5, 10, 20]) {
      const stores = Array.from({ length: 40 }, () => spotStopped());
      const jobs = Array.from({ length: 2 * needed }, (_, n) => queued(`k${n}`));
      let instances: PlannerInstance[] = stores;
      let started = 0;
      // Each pass: the plan's stores start and stay booting, and the next pass sees them so.
      for (let pass = 0; pass < 4; pass++) {
        const result = planOne({ pool: spotWarm(), instances, jobs });
        const named = new Set(result.resumeStores);
        const resumed = stores
          .filter((i) => named.has(i.id) && i.state === "stopped")
          .slice(0, result.counts.resume);
        started += resumed.length;
        instances = instances.map((i) => (resumed.includes(i) ? { ...i, state: "launching" as const } : i));
      }
      expect([needed, started]).toEqual([needed, needed + Math.ceil(needed / 5)]);
    }
  });

  it("starts no spare while no job waits, even to restore the ready minimum", () => {
    const pool = poolConfig({ warm: { market: "spot", minReady: 1 } });
    const result = planOne({ pool, instances: [spotStopped(), spotStopped(), spotStopped()] });
    expect([result.counts.resume, result.counts.resumeForWarmth]).toEqual([1, undefined]);
  });

  it("keeps a tenth more stores than the forecast asks for, one at least: those spare starts start", () => {
    const forecast = { x86_64: demand({ burstJobs: 4, loadJobs: 4 }) };
    expect(planOne({ pool: spotWarm(), demand: forecast }).warmPoolSize).toBe(3);
    expect(planOne({ demand: forecast }).warmPoolSize).toBe(2);
    const wide = { x86_64: demand({ burstJobs: 42, loadJobs: 30 }) };
    expect(planOne({ pool: spotWarm(), demand: wide }).warmPoolSize).toBe(21 + 3);
    // No forecast traffic, no store.
    expect(planOne({ pool: spotWarm(), demand: { x86_64: demand() } }).warmPoolSize).toBe(0);
  });

  it("names stores so that each queued job has a warm slot, oldest job first", () => {
    const older = spotStopped({ cacheKeys: ["a"], launchedAt: NOW - 7200_000 });
    const newer = spotStopped({ cacheKeys: ["a"], launchedAt: NOW - 60_000 });
    const forB = spotStopped({ cacheKeys: ["b"], launchedAt: NOW - 1800_000 });
    const both = spotStopped({ cacheKeys: ["a", "b"], launchedAt: NOW - 3600_000 });
    const plain = spotStopped();
    const stores = [plain, older, forB, both, newer];
    const jobs = summarizeQueue([
      queued("b", { queuedAt: NOW - 5_000 }),
      ...Array.from({ length: 3 }, () => queued("a", { queuedAt: NOW - 50_000 })),
      queued("new"),
    ]);
    const names = (serving: PlannerInstance[]) => storesForQueue(jobs, serving, stores).map((i) => i.id);
    // Three jobs of "a" (queued first) need two stores' slots: the most recently used, then the next
    // (`both`), whose second slot then serves "b"; no store holds "new".
    expect(names([])).toEqual([newer.id, both.id]);
    // A free slot in service warm for "a" takes one of them: `newer` holds the other two, and "b"
    // gets the most recently used store warm for it.
    expect(names([instance({ market: "spot", cacheKeys: ["a"], busySlots: 1 })])).toEqual([
      newer.id,
      forB.id,
    ]);
    // Two free slots warm for "a": one store for the third, and "b"'s.
    expect(names([instance({ market: "spot", cacheKeys: ["a"] })])).toEqual([newer.id, forB.id]);
    // Free slots warm for everything: nothing to start.
    expect(names([instance({ market: "spot", cacheKeys: ["a", "b"], slots: 4 })])).toEqual([]);
    // Whatever the order the instances in service come in, the same stores (free slots are taken
    // in id order).
    const first = instance({ market: "spot", cacheKeys: ["a", "b"], slots: 1 });
    const second = instance({ market: "spot", cacheKeys: ["a"], slots: 2 });
    const small = summarizeQueue([queued("a"), queued("a"), queued("b")]);
    const either = storesForQueue(small, [first, second], stores).map((i) => i.id);
    expect(storesForQueue(small, [second, first], stores).map((i) => i.id)).toEqual(either);
    expect(either).toEqual([forB.id]);
  });

  it("resumes nothing for a job a free slot is already warm for", () => {
    const free = instance({ market: "spot", cacheKeys: ["a"] });
    const result = planOne({
      pool: spotWarm(),
      instances: [free, spotStopped({ cacheKeys: ["a"] })],
      jobs: [queued("a")],
    });
    expect(result.counts.resume).toBe(0);
    expect(result.resumeStores).toEqual([]);
  });

  it("launches retried jobs' capacity on-demand before resuming spot stores", () => {
    const stores = [spotStopped({ cacheKeys: ["a"] }), spotStopped()];
    const jobs = Array.from({ length: 4 }, () => queued("a"));
    const result = planOne({ pool: spotWarm(), instances: stores, jobs, queuedRetries: { x86_64: 2 } });
    // 2 retries: one on-demand instance; the other 2 jobs: the warm store first (then the other,
    // as a warm pool would resume both to get the warm one back).
    expect(result.counts).toMatchObject({ launchForRetries: 1, resume: 2, launch: 0 });
    expect(result.resumeStores).toEqual([stores[0]?.id, stores[1]?.id]);
    expect(result.desiredWarm).toBe(3);
    // On an on-demand warm group, a resume serves a retry as well as a launch would.
    const asg = planOne({
      instances: stores.map((i) => ({ ...i, market: "on-demand" })),
      jobs,
      queuedRetries: { x86_64: 2 },
    });
    expect(asg.counts.resume).toBe(2);
    expect(asg.counts.launchForRetries ?? 0).toBe(0);
  });

  it("while held, resumes no spot store and counts no spot slot: all of it on-demand", () => {
    const idleSpotWarm = instance({ market: "spot" });
    const jobs = Array.from({ length: 3 }, () => queued("a"));
    const result = planOne({
      pool: spotWarm(),
      instances: [idleSpotWarm, spotStopped({ cacheKeys: ["a"] })],
      jobs,
      heldPools: ["x86_64"],
    });
    expect(result.counts).toMatchObject({ freeSlots: 0, resume: 0, launchForRetries: 2, launch: 0 });
    expect(result.resumeStores).toEqual([]);
    expect(result).toMatchObject({ desiredWarm: 3, desiredBurst: 0 });
  });
});

describe("plan: warm stores", () => {
  it("resumes enough of the warm pool to get back a store warm for a job no free slot is warm for", () => {
    // AWS picks which warm-pool instances start. Five of ten stores warm for "a": four resumed miss
    // them all with probability 5/10 * 4/9 * 3/8 * 2/7 = 2.4%, three with 8.3%; 95% is wanted.
    const stores = Array.from({ length: 10 }, (_, i) => stopped({ cacheKeys: i < 5 ? ["a"] : ["b"] }));
    expect(resumeForWarmth(summarizeQueue([queued("a")]), [], stores)).toBe(4);
    // One store of ten: nine resumed still miss it one time in ten.
    const one = Array.from({ length: 10 }, (_, i) => stopped({ cacheKeys: i === 0 ? ["a"] : [] }));
    expect(resumeForWarmth(summarizeQueue([queued("a")]), [], one)).toBe(10);
    // The job wanting the most resumes decides: "c" is on one store of ten.
    const mixed = Array.from({ length: 10 }, (_, i) =>
      stopped({ cacheKeys: i < 5 ? ["a"] : i === 5 ? ["c"] : [] }),
    );
    expect(resumeForWarmth(summarizeQueue([queued("a")]), [], mixed)).toBe(4);
    expect(resumeForWarmth(summarizeQueue([queued("a"), queued("c")]), [], mixed)).toBe(10);
    // A free slot warm for the job: nothing to resume for it.
    expect(resumeForWarmth(summarizeQueue([queued("a")]), [instance({ cacheKeys: ["a"] })], mixed)).toBe(0);
    const result = planOne({ instances: stores, jobs: [queued("a")] });
    expect(result.counts.resume).toBe(4);
  });

  it("resumes the whole warm pool when its only warm store could be any of them", () => {
    const free = instance({ cacheKeys: ["other"] });
    const result = planOne({
      instances: [free, stopped({ cacheKeys: ["a"] }), stopped({ cacheKeys: ["b"] }), stopped()],
      jobs: [queued("a")],
    });
    expect(result.counts.resume).toBe(3);
    expect(result.desiredWarm).toBe(4);
  });

  it("does not resume for a store that a free slot already has", () => {
    const free = instance({ cacheKeys: ["a"] });
    const result = planOne({ instances: [free, stopped({ cacheKeys: ["a"] })], jobs: [queued("a")] });
    expect(result.counts.resume).toBe(0);
  });

  it("does not resume when no stopped store is warm for the job", () => {
    const free = instance();
    const result = planOne({ instances: [free, stopped({ cacheKeys: ["b"] })], jobs: [queued("a")] });
    expect(result.counts.resume).toBe(0);
  });
});

describe("plan: releasing idle capacity", () => {
  it("releases idle instances past their timeout, not before", () => {
    const due = idle(31);
    const early = idle(29);
    const result = planOne({ instances: [due, early] });
    expect(result.release).toEqual([due.id]);
    expect(result.desiredWarm).toBe(1);
    // The early one is due in a second: the workflow should look again then.
    expect(result.recheckAt).toBe(NOW + 1000);
  });

  it("releases burst before warm", () => {
    const warm = idle(600);
    const spot = burst({ idleSince: NOW - 400_000 });
    // One instance must stay ready: the other goes, burst first.
    const result = planOne({ pool: poolConfig({ warm: { minReady: 1 } }), instances: [warm, spot] });
    expect(result.release).toEqual([spot.id]);
    expect(result).toMatchObject({ desiredWarm: 1, desiredBurst: 0 });
  });

  it("releases the coldest store first, then the longest idle", () => {
    const hot = idle(100, { cacheKeys: ["popular"] });
    const cold = idle(50, { cacheKeys: ["rare"] });
    const colder = idle(60, { cacheKeys: [] });
    const keyWeights = { popular: 40, rare: 1 };
    const keepTwo = planOne({
      pool: poolConfig({ warm: { minReady: 2 } }),
      instances: [hot, cold, colder],
      demand: { x86_64: demand({ keyWeights }) },
    });
    expect(keepTwo.release).toEqual([colder.id]);
    const all = planOne({ instances: [hot, cold, colder], demand: { x86_64: demand({ keyWeights }) } });
    expect(all.release).toEqual([colder.id, cold.id, hot.id]);
    const sameStore = [idle(50), idle(70), idle(60)];
    expect(planOne({ instances: sameStore }).release).toEqual([
      sameStore[1]?.id,
      sameStore[2]?.id,
      sameStore[0]?.id,
    ]);
  });

  it("releases nothing while a job waits: a runner may be claiming an idle slot", () => {
    const result = planOne({ instances: [idle(600), idle(600), idle(600)], jobs: [queued()] });
    expect(result.release).toEqual([]);
    const draining = burst({ state: "draining", busySlots: 1 });
    const rehome = planOne({ instances: [idle(600), draining], jobs: [running(draining)] });
    expect(rehome.release).toEqual([]);
  });

  it("never releases a busy, draining, launching, stopped or suspect instance", () => {
    const instances = [
      instance({ busySlots: 1, idleSince: NOW - 3600_000 }),
      instance({ state: "draining", idleSince: NOW - 3600_000 }),
      instance({ state: "launching", idleSince: NOW - 3600_000 }),
      stopped({ idleSince: NOW - 3600_000 }),
      idle(3600, { heartbeatOverdue: true }),
    ];
    expect(planOne({ instances }).release).toEqual([]);
  });
});

describe("plan: the warm pool", () => {
  it("keeps warm capacity for the usual burst and load", () => {
    const result = planOne({ demand: { x86_64: demand({ burstJobs: 6, loadJobs: 9 }) } });
    // Nine jobs at once, two slots each: five instances, all stopped until needed.
    expect(result).toMatchObject({ desiredWarm: 0, warmPoolSize: 5 });
  });

  it("does not refill the warm pool behind instances it resumed", () => {
    const result = planOne({
      instances: [stopped(), stopped(), stopped()],
      jobs: [queued(), queued(), queued(), queued()],
      demand: { x86_64: demand({ burstJobs: 6, peakBurstJobs: 6 }) },
    });
    expect(result).toMatchObject({ desiredWarm: 2, warmPoolSize: 1 });
  });

  it("keeps stores up to the largest recent load, and lets go beyond it", () => {
    const five = Array.from({ length: 5 }, () => stopped());
    const keep = planOne({ instances: five, demand: { x86_64: demand({ burstJobs: 2, peakJobs: 8 }) } });
    expect(keep.warmPoolSize).toBe(4);
    const all = planOne({ instances: five, demand: { x86_64: demand({ burstJobs: 2, peakJobs: 20 }) } });
    expect(all.warmPoolSize).toBe(5);
  });

  it("launches no new stores into the warm pool while a burst fills the instance limit", () => {
    // The demo's case: the first forecast arrives once spot instances already fill the pool's 50
    // instances. Stores launched into the warm pool now could not be resumed until the burst ends;
    // they would boot beside it and sit stopped. The stores already there stay.
    const pool = poolConfig({ maxInstances: 50 });
    const fleet = [
      ...Array.from({ length: 2 }, () => instance({ busySlots: 2 })),
      ...Array.from({ length: 48 }, () => burst({ state: "launching" })),
    ];
    const forecast = { x86_64: demand({ burstJobs: 80, loadJobs: 80, peakJobs: 80 }) };
    const full = planOne({
      pool,
      instances: fleet,
      jobs: Array.from({ length: 120 }, () => queued()),
      demand: forecast,
    });
    expect(full).toMatchObject({ desiredWarm: 2, desiredBurst: 48, warmPoolSize: 0 });
    const kept = planOne({
      pool,
      instances: [...fleet, stopped(), stopped()],
      jobs: Array.from({ length: 120 }, () => queued()),
      demand: forecast,
    });
    expect(kept.warmPoolSize).toBe(2);
    // With room under the limit, the warm pool grows to the forecast again (40 instances).
    const room = planOne({ pool, instances: fleet.slice(0, 2), demand: forecast });
    expect(room).toMatchObject({ desiredWarm: 2, warmPoolSize: 38 });
  });

  it("parks new stores, while jobs wait, only in the room the forecast's burst leaves", () => {
    // The first jobs of a pipeline as wide as the forecast's burst: new stores booting to be parked
    // would hold room under the limit that the rest of it needs.
    const pool = poolConfig({ maxInstances: 50 });
    const stores = Array.from({ length: 10 }, () => stopped());
    const jobs = [queued(), queued(), queued(), queued()];
    const burstOf = (burstJobs: number) => ({
      x86_64: demand({ burstJobs, loadJobs: burstJobs, peakJobs: burstJobs }),
    });
    // A burst of 100 jobs takes all 50 instances: the stopped stores not resumed stay, none is added.
    const full = planOne({ pool, instances: stores, jobs, demand: burstOf(100) });
    expect(full.counts.resume).toBeGreaterThan(0);
    expect(full.warmPoolSize).toBe(stores.length - full.counts.resume);
    // A burst of 80 takes 40: the warm pool may use the other 10.
    expect(planOne({ pool, instances: stores, jobs, demand: burstOf(80) }).warmPoolSize).toBe(10);
    // Once no job waits, the warm pool grows to the forecast again.
    expect(planOne({ pool, instances: stores, demand: burstOf(80) }).warmPoolSize).toBe(40);
  });

  it("keeps the stores it has when no forecast is known", () => {
    const result = planOne({ instances: [stopped(), stopped(), stopped()] });
    expect(result).toMatchObject({ desiredWarm: 0, warmPoolSize: 3 });
    // A forecast of nothing lets them go.
    const none = planOne({ instances: [stopped(), stopped(), stopped()], demand: { x86_64: demand() } });
    expect(none.warmPoolSize).toBe(0);
  });

  it("reads a forecast with missing figures as zeros", () => {
    const partial = { burstJobs: 4, keyWeights: {} } as unknown as PoolDemand;
    const result = planOne({ instances: [stopped()], jobs: [queued()], demand: { x86_64: partial } });
    expect(result).toMatchObject({ desiredWarm: 1, warmPoolSize: 1 });
  });

  it("stays within the configured warm-pool size", () => {
    const result = planOne({
      pool: poolConfig({ warm: { warmPoolSize: 3 } }),
      demand: { x86_64: demand({ burstJobs: 40 }) },
    });
    expect(result.warmPoolSize).toBe(3);
  });
});

describe("plan: a long queue", () => {
  it("sees every queued job in a bounded input, and plans a pool up to its limit", () => {
    const pool = poolConfig({ maxInstances: 1000 });
    const jobs = Array.from({ length: 50_000 }, (_, i) =>
      queued(`project-${i % 97}/build-${i % 5_000}`, { queuedAt: NOW - i * 10 }),
    );
    const queue = summarizeQueue(jobs);
    expect(queue.length).toBe(QUEUE_GROUPS_PER_POOL + 1);
    expect(queue.reduce((sum, group) => sum + group.count, 0)).toBe(50_000);
    const other = queue.at(-1);
    expect(other?.cacheKey).toBeNull();
    const named = new Set(queue.map((group) => group.cacheKey));
    const rest = jobs.filter((job) => !named.has(job.cacheKey));
    expect(other?.count).toBe(rest.length);
    expect(other?.oldestQueuedAt).toBe(rest.reduce((min, job) => Math.min(min, job.queuedAt), Infinity));
    const result = plan({ now: NOW, pools: [pool], queued: queue, running: [], instances: [] })[0];
    expect(result?.counts.queued).toBe(50_000);
    expect(result?.desiredBurst).toBe(1000);
    expect(result?.reason).toBe(
      "50000 waiting for a slot, 0 free; launch 1000 spot; 24000 short at the instance limit",
    );
  });

  it("summarises the same queue the same way, whatever the order, keeping the largest and oldest keys", () => {
    const jobs = [
      ...Array.from({ length: 3 }, (_, i) => queued("big", { queuedAt: NOW - 100 + i })),
      queued("old", { queuedAt: NOW - 5_000 }),
      queued("new", { queuedAt: NOW - 10 }),
      queued("other", { queuedAt: NOW - 1_000, pool: "aarch64" }),
    ];
    const expected = [
      { pool: "aarch64", cacheKey: "other", count: 1, oldestQueuedAt: NOW - 1_000 },
      { pool: "x86_64", cacheKey: "big", count: 3, oldestQueuedAt: NOW - 100 },
      { pool: "x86_64", cacheKey: "old", count: 1, oldestQueuedAt: NOW - 5_000 },
      { pool: "x86_64", cacheKey: null, count: 1, oldestQueuedAt: NOW - 10 },
    ];
    expect(summarizeQueue(jobs, 2)).toEqual(expected);
    expect(summarizeQueue([...jobs].reverse(), 2)).toEqual(expected);
  });
});

describe("plan: pools", () => {
  it("plans every configured pool in order, ignoring others", () => {
    const arm = poolConfig({ name: "aarch64", labels: ["nix", "aarch64-linux"], architecture: "arm64" });
    const plans = plan({
      now: NOW,
      pools: [arm, poolConfig()],
      ...jobsInput([queued("a", { pool: "aarch64" }), queued("b", { pool: "gone" })]),
      instances: [stopped({ pool: "aarch64" }), stopped({ pool: "gone" })],
    });
    expect(plans.map((p) => [p.pool, p.desiredWarm])).toEqual([
      ["aarch64", 1],
      ["x86_64", 0],
    ]);
  });
});

// Property tests: random pools, fleets, queues and forecasts.

const keys = ["a", "b", "c", "d", "e"];

const poolArb = fc
  .record({
    maxInstances: fc.integer({ min: 1, max: 10 }),
    slotsPerInstance: fc.integer({ min: 1, max: 3 }),
    minReady: fc.integer({ min: 0, max: 2 }),
    warmPoolSize: fc.integer({ min: 0, max: 8 }),
    warmSeconds: fc.constantFrom(0, 30, 120),
    burstSeconds: fc.constantFrom(0, 300),
    market: fc.constantFrom("on-demand" as const, "spot" as const),
  })
  .map((p) =>
    poolConfig({
      maxInstances: p.maxInstances,
      slotsPerInstance: p.slotsPerInstance,
      warm: { minReady: p.minReady, warmPoolSize: p.warmPoolSize, market: p.market },
      idleTimeouts: { warmSeconds: p.warmSeconds, burstSeconds: p.burstSeconds },
    }),
  );

const instanceArb = (slots: number) =>
  fc
    .record({
      group: fc.constantFrom("warm" as const, "burst" as const),
      state: fc.constantFrom(
        "launching" as const,
        "ready" as const,
        "draining" as const,
        "stopping" as const,
        "stopped" as const,
        "terminating" as const,
      ),
      busySlots: fc.integer({ min: 0, max: slots }),
      cacheKeys: fc.uniqueArray(fc.constantFrom(...keys), { maxLength: 3 }),
      idleFor: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: null }),
      heartbeatOverdue: fc.boolean(),
    })
    .map((i) => {
      const group = i.state === "stopped" || i.state === "stopping" ? "warm" : i.group;
      const busy = i.state === "ready" || i.state === "draining" ? i.busySlots : 0;
      return {
        group,
        market: group === "warm" ? ("on-demand" as const) : ("spot" as const),
        state: i.state,
        slots,
        busySlots: busy,
        cacheKeys: i.cacheKeys,
        // Observations can disagree (a heartbeat older than the job's start): idleSince may be set on
        // a busy instance too, and the planner must still never release it.
        idleSince: i.idleFor !== null && i.state !== "stopped" ? NOW - i.idleFor * 1000 : null,
        heartbeatOverdue: i.heartbeatOverdue,
      };
    });

const demandArb = fc.record({
  burstJobs: fc.integer({ min: 0, max: 20 }),
  peakBurstJobs: fc.integer({ min: 0, max: 30 }),
  peakJobs: fc.integer({ min: 0, max: 30 }),
  loadJobs: fc.integer({ min: 0, max: 20 }),
  jobsPerHour: fc.integer({ min: 0, max: 100 }),
  keyWeights: fc.dictionary(fc.constantFrom(...keys), fc.integer({ min: 0, max: 50 })),
});

/** A planner input with its jobs listed one by one (`inputOf` summarises them as Observe does). */
type Case = Omit<PlannerInput, "queued" | "running"> & { jobs: PlannerJob[] };
const inputOf = ({ jobs, ...rest }: Case): PlannerInput => ({ ...rest, ...jobsInput(jobs) });

const inputArb: fc.Arbitrary<Case> = poolArb.chain((pool) =>
  fc
    .record({
      instances: fc
        .array(instanceArb(pool.slotsPerInstance), { maxLength: 14 })
        // A spot warm group's instances are spot, but for retries' on-demand ones in service.
        .map((list) =>
          pool.warm.market === "spot"
            ? list.map((i) =>
                i.group === "warm" && i.state === "stopped" ? { ...i, market: "spot" as const } : i,
              )
            : list,
        ),
      queued: fc.array(fc.constantFrom(...keys), { maxLength: 12 }),
      demand: fc.option(demandArb, { nil: undefined }),
    })
    .map(({ instances, queued: queuedKeys, demand: poolDemand }) => {
      const fleet: PlannerInstance[] = instances.map((i, index) => ({
        ...i,
        id: `i-${index.toString(16).padStart(17, "0")}`,
        pool: pool.name,
        launchedAt: NOW - 3600_000,
      }));
      const jobs: PlannerJob[] = [];
      for (const i of fleet) {
        for (let s = 0; s < i.busySlots; s++) {
          jobs.push({
            key: `run-${i.id}-${s}`,
            pool: pool.name,
            status: "running",
            cacheKey: i.cacheKeys[0] ?? "a",
            queuedAt: NOW - 600_000,
            instanceId: i.id,
          });
        }
      }
      for (const [index, cacheKey] of queuedKeys.entries()) {
        jobs.push({
          key: `q-${index}`,
          pool: pool.name,
          status: "queued",
          cacheKey,
          queuedAt: NOW - index * 1000,
          instanceId: null,
        });
      }
      return {
        now: NOW,
        pools: [pool],
        jobs,
        instances: fleet,
        demand: poolDemand && { [pool.name]: poolDemand },
      };
    }),
);

const only = (input: Case): PoolPlan => plan(inputOf(input))[0] as PoolPlan;
const serving = (input: Case) =>
  input.instances.filter((i) => i.state === "launching" || i.state === "ready");

const moreQueued = (input: Case, extra: string[]): Case => ({
  ...input,
  jobs: [
    ...input.jobs,
    ...extra.map((cacheKey, index) => ({
      key: `extra-${index}`,
      pool: input.pools[0]?.name ?? "",
      status: "queued" as const,
      cacheKey,
      queuedAt: NOW,
      instanceId: null,
    })),
  ],
});

describe("plan: properties", () => {
  it("never releases an instance that is busy, draining, suspect, not ready or not idle long enough", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const pool = input.pools[0] as PoolConfig;
        const byId = new Map(input.instances.map((i) => [i.id, i]));
        for (const id of only(input).release) {
          const i = byId.get(id);
          expect(i).toBeDefined();
          if (i === undefined) return;
          expect(i.state).toBe("ready");
          expect(i.busySlots).toBe(0);
          expect(i.heartbeatOverdue).toBe(false);
          expect(input.jobs.some((job) => job.instanceId === id)).toBe(false);
          const timeout = i.group === "warm" ? pool.idleTimeouts.warmSeconds : pool.idleTimeouts.burstSeconds;
          expect(i.idleSince).not.toBeNull();
          expect(input.now - (i.idleSince as number)).toBeGreaterThanOrEqual(timeout * 1000);
        }
      }),
      { numRuns: 1500 },
    );
  });

  it("never plans past maxInstances (nor removes capacity except by release)", () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const pool = input.pools[0] as PoolConfig;
        const result = only(input);
        const inService = serving(input);
        const released = new Set(result.release);
        const keptWarm = inService.filter((i) => i.group === "warm" && !released.has(i.id)).length;
        const keptBurst = inService.filter((i) => i.group === "burst" && !released.has(i.id)).length;
        // Instances on their way into the warm pool run until stopped: they count.
        const joining = input.instances.filter(
          (i) => i.group === "warm" && i.state === "stopping" && !i.waitsForCapacity,
        ).length;
        // Instances already running above the limit stay (only release removes them); nothing new.
        expect(result.desiredWarm + result.desiredBurst + joining).toBeLessThanOrEqual(
          Math.max(pool.maxInstances, keptWarm + keptBurst + joining),
        );
        expect(result.desiredWarm).toBeGreaterThanOrEqual(keptWarm);
        expect(result.desiredBurst).toBeGreaterThanOrEqual(keptBurst);
        const stoppedCount = input.instances.filter((i) => i.state === "stopped").length;
        expect(result.desiredWarm - keptWarm).toBeLessThanOrEqual(stoppedCount);
        expect(result.warmPoolSize).toBeGreaterThanOrEqual(0);
        expect(result.warmPoolSize).toBeLessThanOrEqual(pool.warm.warmPoolSize);
      }),
      { numRuns: 400 },
    );
  });

  it("gives no less capacity for more demand", () => {
    fc.assert(
      fc.property(
        inputArb,
        fc.array(fc.constantFrom(...keys), { minLength: 1, maxLength: 6 }),
        (input, extra) => {
          const before = only(input);
          const after = only(moreQueued(input, extra));
          expect(after.desiredWarm + after.desiredBurst).toBeGreaterThanOrEqual(
            before.desiredWarm + before.desiredBurst,
          );
          expect(after.desiredWarm).toBeGreaterThanOrEqual(before.desiredWarm);
          // The warm pool may grow less (no new stores while the instances in service fill the
          // limit), but once jobs wait, in service and warm pool together never shrink. (The first
          // job waiting may defer new stores: the room the forecast's burst needs comes first.)
          if (before.counts.queued + before.counts.rehome > 0)
            expect(after.desiredWarm + after.desiredBurst + after.warmPoolSize).toBeGreaterThanOrEqual(
              before.desiredWarm + before.desiredBurst + before.warmPoolSize,
            );
          keepsItsStores(input, before, after);
          // Whatever it still releases, it released before too.
          for (const id of after.release) expect(before.release).toContain(id);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("gives no less capacity for a larger forecast", () => {
    fc.assert(
      fc.property(inputArb, demandArb, fc.integer({ min: 1, max: 10 }), (input, base, more) => {
        const name = input.pools[0]?.name ?? "";
        const bigger = {
          ...base,
          burstJobs: base.burstJobs + more,
          loadJobs: base.loadJobs + more,
          peakJobs: base.peakJobs + more,
          peakBurstJobs: base.peakBurstJobs + more,
        };
        const before = only({ ...input, demand: { [name]: base } });
        const after = only({ ...input, demand: { [name]: bigger } });
        expect(after.desiredWarm + after.desiredBurst).toBeGreaterThanOrEqual(
          before.desiredWarm + before.desiredBurst,
        );
        // While jobs wait, a larger burst leaves less room for new stores; with none waiting, the
        // warm group never shrinks.
        if (before.counts.queued + before.counts.rehome === 0)
          expect(after.desiredWarm + after.warmPoolSize).toBeGreaterThanOrEqual(
            before.desiredWarm + before.warmPoolSize,
          );
        keepsItsStores(input, before, after);
      }),
      { numRuns: 300 },
    );
  });

  it("gives the same plan for the same input, in any order", () => {
    fc.assert(
      fc.property(inputArb, fc.integer(), (input, seed) => {
        const shuffle = <T>(items: readonly T[]): T[] => {
          const copy = [...items];
          let state = seed >>> 0;
          for (let i = copy.length - 1; i > 0; i--) {
            state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
            const j = state % (i + 1);
            [copy[i], copy[j]] = [copy[j] as T, copy[i] as T];
          }
          return copy;
        };
        const first = plan(inputOf(input));
        expect(plan(structuredClone(inputOf(input)))).toEqual(first);
        const shuffled = inputOf({
          ...input,
          jobs: shuffle(input.jobs),
          instances: shuffle(input.instances),
        });
        expect(plan(shuffled)).toEqual(first);
        expect(
          plan({ ...shuffled, queued: shuffle(shuffled.queued), running: shuffle(shuffled.running) }),
        ).toEqual(first);
      }),
      { numRuns: 300 },
    );
  });

  it("does not modify its input", () => {
    fc.assert(
      fc.property(inputArb, (arbitrary) => {
        const input = inputOf(arbitrary);
        const copy = structuredClone(input);
        plan(input);
        expect(input).toEqual(copy);
      }),
      { numRuns: 100 },
    );
  });
});

describe("plannerInstance: a stopped store Hearth cannot start", () => {
  it("leaves a store a spot interruption stopped out of the warm group: never resumed, not counted", () => {
    const fleetInstance = {
      id: "i-0aaaaaaaaaaaaaaa1",
      pool: "x86_64",
      group: "warm" as const,
      market: "spot" as const,
      az: "us-east-1a",
      lifecycle: "stopped" as const,
      protectedFromScaleIn: true,
      launchedAt: new Date(NOW - 600_000).toISOString(),
    };
    const pool = poolConfig({ warm: { market: "spot" } });
    expect(plannerInstance(fleetInstance, undefined, pool, NOW).state).toBe("stopped");
    const interrupted = plannerInstance(
      { ...fleetInstance, stoppedByInterruption: true },
      undefined,
      pool,
      NOW,
    );
    expect(interrupted).toMatchObject({ state: "stopped", waitsForCapacity: true });
    // Still being stopped by the interruption: the same, not a store on its way into the warm pool.
    expect(
      plannerInstance(
        { ...fleetInstance, lifecycle: "stopping", stoppedByInterruption: true },
        undefined,
        pool,
        NOW,
      ),
    ).toMatchObject({ state: "stopped", waitsForCapacity: true });
    // The planner then launches, and never names this store to start.
    const result = planOne({ pool, instances: [{ ...interrupted, cacheKeys: ["a"] }], jobs: [queued("a")] });
    expect(result.counts.resume).toBe(0);
    expect(result.counts.launch).toBe(1);
    expect(result.resumeStores).toEqual([]);
    // Nor does it count in the warm group: a pool without a forecast keeps the stores it has, and
    // this is none of them (a healthy stopped store would be kept).
    const kept = planOne({ pool, instances: [{ ...interrupted, cacheKeys: ["a"] }] });
    expect(kept.warmPoolSize).toBe(0);
    const healthy = plannerInstance(fleetInstance, undefined, pool, NOW);
    expect(planOne({ pool, instances: [healthy] }).warmPoolSize).toBe(1);
  });
});
