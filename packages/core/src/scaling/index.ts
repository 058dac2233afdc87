import { type FleetGroup, type FleetPort, HEARTBEAT_OVERDUE_MS, plannerInstance } from "../fleet";
import type { GitLabJobs } from "../gitlab-api";
import { resolveTags } from "../ingest";
import type { InstanceRegistry } from "../instances";
import { cacheKeyOf, type Job, jobKeyString, labelSetKey } from "../jobs";
import type { Journal } from "../journal";
import type { Leases } from "../leases";
import type { Ledger } from "../ledger";
import {
  type Arrival,
  forecastDemand,
  type PlannerInstance,
  type PoolDemand,
  type PoolPlan,
  plan,
  type QueuedGroup,
  QueueSummary,
  type RunningJob,
} from "../planner";
import { type PoolConfig, routeJob } from "../pools";
import { type PoolStates, SNAPSHOT_LABEL_SETS } from "./pool-state";

export {
  createPoolStates,
  type PoolState,
  type PoolStates,
  type QueueSnapshot,
  type Sample,
  SNAPSHOT_LABEL_SETS,
} from "./pool-state";
export { oldestWaitSeconds, poolNeedsRun, type TickSummary, tick } from "./tick";

/**
 * ScaleFleet's steps as plain functions: observe a pool, plan (pure), apply. The Step Functions
 * workflow calls each as a task, locally and in AWS; the loop, retries and waits live in the workflow.
 */

export interface ScalingDeps {
  pools: readonly PoolConfig[];
  ledger: Ledger;
  registry: InstanceRegistry;
  journal: Journal;
  leases: Leases;
  poolStates: PoolStates;
  fleet: FleetPort;
  /** Looks up GitLab tags the webhook could not; absent when no API token is configured. */
  gitlab?: GitLabJobs;
  now: () => Date;
}

/** How many unknown GitLab tag sets one observation looks up, at most. */
const MAX_TAG_LOOKUPS = 20;
/**
 * How long a ScaleFleet run's lease outlives its last renewal. A live run renews it at the start and
 * at the end of Observe and of Apply (each a Lambda with a 60 s timeout), and between those only Plan
 * (10 s) and a Wait (at most 15 s) or a retry's backoff (at most 30 s) pass; so a live run renews well
 * within this, and a run that died (aborted, timed out, its Lambda or its host killed) leaves the pool
 * to the next webhook or tick within 90 s.
 */
export const LEASE_SECONDS = 90;
export const scaleLease = (pool: string) => `scale#${pool}`;

export interface Observation {
  pool: string;
  at: number;
  iteration: number;
  /**
   * The pool's whole queue by cache key, bounded (`QUEUE_GROUPS_PER_POOL` keys and one group for the
   * rest), so the observation fits the workflow's state (256 KB) however long the queue is.
   */
  queue: QueuedGroup[];
  running: RunningJob[];
  /** Queued jobs in the pool: the sum of `queue`'s counts. */
  queued: number;
  instances: PlannerInstance[];
  groups: FleetGroup[];
  demand: PoolDemand | null;
}

export function poolOf(deps: Pick<ScalingDeps, "pools">, name: string): PoolConfig {
  const pool = deps.pools.find((p) => p.name === name);
  if (!pool) throw new Error(`unknown pool ${name}`);
  return pool;
}

/** Queued jobs (oldest first) routed to pools, with the queue summarised per pool and cache key. */
export function routeQueue(queued: readonly Job[], pools: readonly PoolConfig[]) {
  const routed: Array<{ job: Job; pool: string }> = [];
  const labelSets = new Map<string, number>();
  const summary = new QueueSummary();
  const unroutable: Array<{ job: Job; reason: string }> = [];
  for (const job of queued) {
    const route = routeJob(job, pools);
    if ("pool" in route) {
      routed.push({ job, pool: route.pool });
      summary.add({
        pool: route.pool,
        cacheKey: cacheKeyOf(job),
        queuedAt: job.queuedAt ? Date.parse(job.queuedAt) : 0,
      });
      labelSets.set(labelSetKey(job), (labelSets.get(labelSetKey(job)) ?? 0) + 1);
    } else unroutable.push({ job, reason: route.unroutable });
  }
  return { routed, summary, unroutable, labelSets };
}

/**
 * Queued jobs routed to pools, oldest first, with the queue summarised per pool and cache key;
 * GitLab jobs whose tags are unknown are looked up first, if possible.
 */
export async function queuedByPool(
  deps: Pick<ScalingDeps, "ledger" | "pools" | "gitlab"> & { poolStates?: PoolStates; now?: () => Date },
) {
  let queued = await deps.ledger.queued();
  const unknown = queued
    .filter((job) => job.source === "gitlab" && !job.labelsKnown)
    .slice(0, MAX_TAG_LOOKUPS);
  const { gitlab } = deps;
  if (gitlab && unknown.length) {
    const resolved = await Promise.allSettled(unknown.map((job) => resolveTags(deps.ledger, gitlab, job)));
    const updated = new Map(
      resolved.flatMap((r) =>
        r.status === "fulfilled" && r.value ? [[jobKeyString(r.value), r.value]] : [],
      ),
    );
    queued = queued.map((job) => updated.get(jobKeyString(job)) ?? job);
  }
  const { routed, summary, unroutable, labelSets } = routeQueue(queued, deps.pools);
  if (deps.poolStates && deps.now) {
    // Kept for the status page, which cannot read a long queue on every request.
    await deps.poolStates.putQueue({
      at: deps.now().toISOString(),
      pools: Object.fromEntries(
        deps.pools.map((pool) => [
          pool.name,
          { count: summary.count(pool.name), oldestQueuedAt: summary.oldest(pool.name) },
        ]),
      ),
      unroutable: unroutable.length,
      labelSets: [...labelSets.entries()]
        .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1))
        .slice(0, SNAPSHOT_LABEL_SETS)
        .map(([setKey]) => setKey),
    });
  }
  return { routed, summary, unroutable };
}

/** Observe: the pool's jobs and instances as the planner needs them; registers new instances. */
export async function observe(deps: ScalingDeps, poolName: string, iteration: number): Promise<Observation> {
  const pool = poolOf(deps, poolName);
  const now = deps.now().getTime();
  const [fleet, records, { summary }, forecast] = await Promise.all([
    deps.fleet.observe(pool),
    deps.registry.inPool(pool.name),
    queuedByPool(deps),
    deps.poolStates.forecast(pool.name),
  ]);
  const known = new Map(records.map((record) => [record.id, record]));
  for (const instance of fleet.instances) {
    const record = known.get(instance.id);
    if (!record) {
      known.set(instance.id, await deps.registry.register({ ...instance, slots: pool.slotsPerInstance }));
    } else if (
      Date.parse(instance.launchedAt) > Date.parse(record.launchedAt) &&
      instance.lifecycle !== "stopped"
    ) {
      // Resumed from the warm pool since we last looked: booting again, with the same store.
      await deps.registry.resumed(instance.id, instance.launchedAt);
      known.set(instance.id, {
        ...record,
        launchedAt: instance.launchedAt,
        lastHeartbeatAt: null,
        runningJobs: [],
      });
    }
  }
  await deps.poolStates.putFleet(pool.name, fleet);
  const present = new Set(fleet.instances.map((instance) => instance.id));
  for (const record of records) if (!present.has(record.id)) await deps.registry.forget(record.id);

  const instances = fleet.instances.map((instance) =>
    plannerInstance(instance, known.get(instance.id), pool, now),
  );
  const queued = summary.count(pool.name);
  const running: RunningJob[] = instances.flatMap((instance) =>
    (known.get(instance.id)?.runningJobs ?? []).map((job) => ({
      key: jobKeyString(job),
      pool: pool.name,
      instanceId: instance.id,
    })),
  );
  // The status page's chart: this minute's queue against capacity (the last observation wins).
  const serving = instances.filter(
    (i) => i.state === "ready" || i.state === "launching" || i.state === "draining",
  );
  await deps.poolStates.putSample(pool.name, {
    minute: new Date(Math.floor(now / 60_000) * 60_000).toISOString(),
    queued,
    capacity: serving.reduce((sum, i) => sum + i.slots, 0),
    busy: serving.reduce((sum, i) => sum + i.busySlots, 0),
  });
  return {
    pool: pool.name,
    at: now,
    iteration: iteration + 1,
    queue: summary.groups(pool.name),
    running,
    queued,
    instances,
    groups: fleet.groups,
    demand: forecast?.demand ?? null,
  };
}

/** Plan: the pure planner on one pool's observation. */
export function planPool(deps: Pick<ScalingDeps, "pools">, observation: Observation): PoolPlan {
  const pool = poolOf(deps, observation.pool);
  const [poolPlan] = plan({
    now: observation.at,
    pools: [pool],
    queued: observation.queue,
    running: observation.running,
    instances: observation.instances,
    demand: observation.demand ? { [pool.name]: observation.demand } : undefined,
  });
  if (!poolPlan) throw new Error(`the planner returned no plan for pool ${pool.name}`);
  return poolPlan;
}

export interface Applied {
  calls: string[];
  released: string[];
  refused: string[];
  settled: boolean;
  /** Seconds until the next iteration. */
  waitSeconds: number;
}

/** Slots the pool will have free when its desired capacity is in service, less the queue. */
function spareAfter(
  observation: Observation,
  target: { warm: number; burst: number },
  slots: number,
): number {
  const busy = observation.instances.reduce((sum, instance) => sum + instance.busySlots, 0);
  return (target.warm + target.burst) * slots - busy - observation.queued;
}

/** Apply: release the chosen idle instances, set capacities, record the decision. */
export async function apply(
  deps: ScalingDeps,
  observation: Observation,
  poolPlan: PoolPlan,
): Promise<Applied> {
  const pool = poolOf(deps, observation.pool);
  const now = deps.now();
  // Asked again right before each release: the plan is seconds old, a job may have started since.
  const stillIdle = async (id: string) => {
    const record = await deps.registry.get(id);
    if (record?.runner !== "ready" || record.runningJobs.length || record.interruption) return false;
    const beat = record.lastHeartbeatAt ? Date.parse(record.lastHeartbeatAt) : 0;
    return now.getTime() - beat <= HEARTBEAT_OVERDUE_MS;
  };
  const released = await deps.fleet.release(pool, poolPlan.release, stillIdle);
  const groupOf = new Map(observation.instances.map((instance) => [instance.id, instance.group]));
  // A refused release stays in its group: its desired capacity must keep counting it.
  const keptWarm = released.refused.filter((id) => groupOf.get(id) === "warm").length;
  const keptBurst = released.refused.filter((id) => groupOf.get(id) === "burst").length;
  const target = {
    warm: poolPlan.desiredWarm + keptWarm,
    burst: poolPlan.desiredBurst + keptBurst,
    warmPoolSize: poolPlan.warmPoolSize,
  };
  const capacityCalls = await deps.fleet.setCapacity(pool, target);
  const calls = [...released.calls, ...capacityCalls];

  const busy = (state: PlannerInstance["state"]) => state === "launching" || state === "stopping";
  const transitioning = observation.instances.some((instance) => busy(instance.state));
  const freeSlots = observation.instances
    .filter((instance) => instance.state === "ready" || instance.state === "launching")
    .reduce((sum, instance) => sum + Math.max(0, instance.slots - instance.busySlots), 0);
  const settled = calls.length === 0 && !transitioning && freeSlots >= observation.queued;

  await deps.poolStates.put({
    pool: pool.name,
    at: now.toISOString(),
    desiredWarm: target.warm,
    desiredBurst: target.burst,
    warmPoolSize: target.warmPoolSize,
    queued: observation.queued,
    // Free slots once the capacity just asked for is up: what new jobs can take without another run.
    spareSlots: Math.max(0, spareAfter(observation, target, pool.slotsPerInstance)),
    reason: poolPlan.reason,
  });
  if (calls.length || released.refused.length) {
    await deps.journal.write({
      pool: pool.name,
      kind: "decision",
      reason: poolPlan.reason,
      details: {
        desiredWarm: target.warm,
        desiredBurst: target.burst,
        warmPoolSize: target.warmPoolSize,
        queued: observation.queued,
        released: released.released.join(" ") || null,
        refused: released.refused.join(" ") || null,
      },
      calls,
    });
  }
  return {
    calls,
    released: released.released,
    refused: released.refused,
    settled,
    waitSeconds: transitioning ? 5 : 15,
  };
}

/** The forecast from last week's arrivals, stored per pool; refreshed by the minute tick. */
export async function refreshForecast(deps: Pick<ScalingDeps, "ledger" | "pools" | "poolStates" | "now">) {
  const now = deps.now();
  const since = new Date(now.getTime() - 7 * 86_400_000);
  const arrivals: Arrival[] = [];
  for (const job of await deps.ledger.arrivedSince(since)) {
    const route = routeJob(job, deps.pools);
    if ("pool" in route && job.queuedAt) {
      arrivals.push({
        pool: route.pool,
        at: Date.parse(job.queuedAt),
        cacheKey: cacheKeyOf(job),
        finishedAt: job.finishedAt ? Date.parse(job.finishedAt) : null,
      });
    }
  }
  const demand = forecastDemand(arrivals, now.getTime());
  await deps.poolStates.putForecast(demand, now);
  return demand;
}

/** Keeps the run's lease while it loops; false when another run holds it now (this one stops). */
export async function holdLease(
  deps: Pick<ScalingDeps, "leases">,
  pool: string,
  holder: string,
): Promise<boolean> {
  if (await deps.leases.renew(scaleLease(pool), holder, LEASE_SECONDS)) return true;
  return deps.leases.acquire(scaleLease(pool), holder, LEASE_SECONDS);
}

/**
 * What to say when a run could not start because another holds the pool's lease: which run, and until
 * when at the latest. Said at most once per pool every `everyMs`, so a burst of webhooks logs one line.
 */
export function leaseNotices(
  deps: Pick<ScalingDeps, "leases" | "now">,
  say: (fields: { pool: string; holder: string; leaseUntil: string; seconds: number }) => void,
  everyMs = 60_000,
) {
  const said = new Map<string, number>();
  return async (pool: string): Promise<void> => {
    const now = deps.now().getTime();
    const last = said.get(pool);
    if (last !== undefined && now - last < everyMs) return;
    said.set(pool, now);
    const lease = await deps.leases.get(scaleLease(pool));
    if (!lease) return;
    say({
      pool,
      holder: lease.holder,
      leaseUntil: new Date(lease.until).toISOString(),
      seconds: Math.max(0, Math.round((lease.until - now) / 1000)),
    });
  };
}

/**
 * A queued job arrived for `pool`: start a ScaleFleet run unless spare capacity already covers it or
 * a run is under way (the lease). A burst of webhooks thus starts one execution.
 */
export async function requestScale(
  deps: Pick<ScalingDeps, "leases" | "poolStates">,
  pool: string,
  start: (pool: string, holder: string) => Promise<void>,
  holder: string,
  options: { covered?: boolean } = {},
): Promise<"covered" | "running" | "started"> {
  if (options.covered !== false && (await deps.poolStates.takeSpareSlot(pool))) return "covered";
  if (!(await deps.leases.acquire(scaleLease(pool), holder, LEASE_SECONDS))) return "running";
  try {
    await start(pool, holder);
  } catch (error) {
    await deps.leases.release(scaleLease(pool), holder);
    throw error;
  }
  return "started";
}
