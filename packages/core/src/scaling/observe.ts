import { plannerInstance } from "../fleet";
import { resolveTags } from "../ingest";
import { cacheKeyOf, type Job, jobKeyString, labelSetKey } from "../jobs";
import { QueueSummary, type RunningJob } from "../planner";
import { lastRetry, type PoolConfig, routeJob } from "../pools";
import { retireInstanceRunners, retryRemovals } from "../runners";
import { poolOf, type ScalingDeps } from "./deps";
import { type Observation, observedQueue } from "./plan-input";
import { type ScalingRecords, SNAPSHOT_LABEL_SETS } from "./records";

/** ScaleFleet's Observe step, and the queue read it shares with the minute tick. */

/** How many unknown GitLab tag sets one observation looks up, at most. */
const MAX_TAG_LOOKUPS = 20;

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
      const pool = pools.find((p) => p.name === route.pool);
      summary.add({
        pool: route.pool,
        cacheKey: cacheKeyOf(job),
        queuedAt: job.queuedAt ? Date.parse(job.queuedAt) : 0,
        // Only a job's last retry goes on demand; an earlier one is planned as any job.
        retry: !!job.retryOf && pool !== undefined && lastRetry(pool, job.retryNumber ?? 1),
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
  deps: Pick<ScalingDeps, "ledger" | "pools" | "gitlab"> & {
    scalingRecords?: ScalingRecords;
    now?: () => Date;
  },
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
  if (deps.scalingRecords && deps.now) {
    // Kept for the status page, which cannot read a long queue on every request.
    await deps.scalingRecords.putQueue({
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
  // Before the queue is read: a retry asked now is queued, and the plan serves it.
  const held = await holdForRun(deps, pool.name);
  const [fleet, records, { summary }, forecast] = await Promise.all([
    deps.fleet.observe(pool),
    deps.registry.inPool(pool.name),
    queuedByPool(deps),
    deps.scalingRecords.forecast(pool.name),
  ]);
  const known = new Map(records.map((record) => [record.id, record]));
  for (const instance of fleet.instances) {
    const record = known.get(instance.id);
    if (!record) {
      known.set(instance.id, await deps.registry.register({ ...instance, slots: pool.slotsPerInstance }));
    } else if (
      Date.parse(instance.launchedAt) > Date.parse(record.launchedAt) &&
      instance.lifecycle !== "stopped" &&
      // An agent that has reported since this resume is not booting: its report is newer than what
      // the resume would write (placement would otherwise not count its store until it reports again).
      !(
        record.lastHeartbeatAt !== null &&
        Date.parse(record.lastHeartbeatAt) >= Date.parse(instance.launchedAt)
      )
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
  await deps.scalingRecords.putFleet(pool.name, fleet);
  const present = new Set(fleet.instances.map((instance) => instance.id));
  for (const record of records) {
    if (present.has(record.id)) continue;
    // Detached by HandleInterruption, and still running: that execution retires it once it is gone.
    if (record.interruption && (await deps.fleet.exists(record.id))) continue;
    // Gone from both groups: terminated. Its runners and its GitLab manager go before its record.
    if (deps.runners) {
      await retireInstanceRunners(deps.runners, {
        instanceId: record.id,
        pool: pool.name,
        how: "terminated",
      });
    }
    await deps.registry.forget(record.id);
  }
  if (deps.runners) {
    // Runners GitHub would not delete yet (busy), or that failed to go: tried again as their time comes.
    await retryRemovals(deps.runners, pool.name);
    for (const instance of fleet.instances) {
      const record = known.get(instance.id);
      const parked = instance.lifecycle === "stopping" || instance.lifecycle === "stopped";
      // Into the warm pool: a stopped instance holds no runner config (it keeps its GitLab manager).
      // Once per stop: the record forgets its heartbeats, as on a resume.
      if (parked && record && record.lastHeartbeatAt !== null) {
        await retireInstanceRunners(deps.runners, {
          instanceId: instance.id,
          pool: pool.name,
          how: "stopped",
        });
        await deps.registry.parked(instance.id);
        known.set(instance.id, { ...record, lastHeartbeatAt: null, runningJobs: [] });
      }
    }
  }

  const instances = fleet.instances.map((instance) =>
    plannerInstance(instance, known.get(instance.id), pool, now),
  );
  const { queue, queued, queuedRetries } = observedQueue(summary, pool.name);
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
  await deps.scalingRecords.putSample(pool.name, {
    minute: new Date(Math.floor(now / 60_000) * 60_000).toISOString(),
    queued,
    capacity: serving.reduce((sum, i) => sum + i.slots, 0),
    busy: serving.reduce((sum, i) => sum + i.busySlots, 0),
  });
  return {
    pool: pool.name,
    at: now,
    iteration: iteration + 1,
    queue,
    running,
    queued,
    ...(queuedRetries ? { queuedRetries } : {}),
    ...(held ? { held } : {}),
    instances,
    groups: fleet.groups,
    demand: forecast?.demand ?? null,
  };
}

/**
 * The retry hold in a ScaleFleet run: the pool's waiting retries are tried again (when no instance of
 * the pool heartbeats, nothing else would), then whether the pool still holds its spot runners. A
 * failure is journaled and holds nothing: the run plans as for a pool that holds none.
 */
async function holdForRun(deps: ScalingDeps, pool: string): Promise<boolean> {
  const { hold } = deps;
  if (!hold) return false;
  try {
    if ((await hold.state(pool)).pending) await hold.retryPending(pool);
    return (await hold.state(pool)).held;
  } catch (error) {
    await deps.journal.write({
      pool,
      kind: "error",
      reason: `could not serve the pool's retry hold: ${error instanceof Error ? error.message : String(error)}`,
    });
    return false;
  }
}
