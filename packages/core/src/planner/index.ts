import type { PoolConfig } from "../pools";
import { planOnePool } from "./pool-plan";
import type { PlannerInput, PoolPlan } from "./types";

/**
 * The planner: a pure function from what the control plane observes (the queue by cache key, the
 * running jobs, instances, pool config,
 * the time and a forecast) to one plan per pool. The ScaleFleet workflow and the simulator call the
 * same `plan`; a driver applies a plan to the pool's two Auto Scaling groups one to one:
 * - for each id in `release`: remove its scale-in protection and lower its group's desired capacity
 *   by one (a warm instance goes back to the warm pool, ReuseOnScaleIn; a burst one terminates);
 * - set the warm group's desired capacity to `desiredWarm` (AWS resumes Stopped warm-pool instances
 *   first and launches new ones only when the warm pool is empty) and its warm pool to
 *   `warmPoolSize` (PutWarmPool MaxGroupPreparedCapacity = desiredWarm + warmPoolSize);
 * - set the burst group's desired capacity to `desiredBurst`.
 * Capacity only ever shrinks through `release`: desired capacities never drop below the instances
 * kept, so AWS never picks an instance to remove.
 */

export type { Arrival, Demand, ForecastOptions, PoolDemand } from "./forecast";
export { DemandHistory, defaultForecastOptions, forecastDemand } from "./forecast";
export { QUEUE_GROUPS_PER_POOL, type QueuedJobView, QueueSummary, summarizeQueue } from "./queue";
export type {
  PlanCounts,
  PlannerInput,
  PlannerInstance,
  PlannerJob,
  PlannerState,
  PoolPlan,
  QueuedGroup,
  RunningJob,
} from "./types";

function groupBy<T extends { pool: string }>(items: readonly T[]): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  let last: T[] | undefined;
  let lastPool = "";
  for (const item of items) {
    // Items usually come grouped by pool already; skip the lookup while the pool does not change.
    if (last === undefined || item.pool !== lastPool) {
      lastPool = item.pool;
      last = groups.get(lastPool);
      if (last === undefined) {
        last = [];
        groups.set(lastPool, last);
      }
    }
    last.push(item);
  }
  return groups;
}

function ofPool(items: readonly { pool: string }[], pool: PoolConfig): boolean {
  for (const item of items) if (item.pool !== pool.name) return false;
  return true;
}

/**
 * Plans every configured pool, in config order. Pure and deterministic: the same input gives the
 * same plans, whatever order jobs and instances are listed in (every choice breaks ties by id).
 * Jobs and instances of pools not in the config are ignored.
 */
export function plan(input: PlannerInput): PoolPlan[] {
  const only = input.pools.length === 1 ? (input.pools[0] as PoolConfig) : undefined;
  if (
    only !== undefined &&
    ofPool(input.queued, only) &&
    ofPool(input.running, only) &&
    ofPool(input.instances, only)
  )
    // One pool, as ScaleFleet plans (a run per pool), everything its own: no grouping to do.
    return [
      planOnePool(
        input.now,
        only,
        input.queued,
        input.running,
        input.instances,
        input.demand?.[only.name],
        input.onDemandFallback?.includes(only.name) ?? false,
        input.queuedRetries?.[only.name] ?? 0,
        input.heldPools?.includes(only.name) ?? false,
      ),
    ];
  const queued = groupBy(input.queued);
  const running = groupBy(input.running);
  const instances = groupBy(input.instances);
  return input.pools.map((pool) =>
    planOnePool(
      input.now,
      pool,
      queued.get(pool.name) ?? [],
      running.get(pool.name) ?? [],
      instances.get(pool.name) ?? [],
      input.demand?.[pool.name],
      input.onDemandFallback?.includes(pool.name) ?? false,
      input.queuedRetries?.[pool.name] ?? 0,
      input.heldPools?.includes(pool.name) ?? false,
    ),
  );
}
