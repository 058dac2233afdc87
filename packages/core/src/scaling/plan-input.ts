import type { FleetGroup } from "../fleet";
import {
  type PlannerInput,
  type PlannerInstance,
  type PoolDemand,
  type PoolPlan,
  plan,
  type QueuedGroup,
  type QueueSummary,
  type RunningJob,
} from "../planner";
import type { PoolConfig } from "../pools";
import { poolOf, type ScalingDeps } from "./deps";

/**
 * What ScaleFleet's Observe step hands to Plan, and the one pure function that turns it into the
 * planner's input. Production (the Plan task) and the trace simulator's `hearth` policy both call
 * `planObservation`, so the benchmark plans from the same input, built by the same code.
 */

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
  /** Of those, last retries of interrupted jobs (`lastRetry`; absent when there are none). */
  queuedRetries?: number;
  /** The pool holds its spot runners for a waiting retry (absent: it does not). */
  held?: boolean;
  instances: PlannerInstance[];
  groups: FleetGroup[];
  demand: PoolDemand | null;
}

/** One pool's part of a queue summary, as an observation carries it. */
export function observedQueue(
  summary: QueueSummary,
  pool: string,
): Pick<Observation, "queue" | "queued" | "queuedRetries"> {
  const retries = summary.retries(pool);
  return {
    queue: summary.groups(pool),
    queued: summary.count(pool),
    ...(retries ? { queuedRetries: retries } : {}),
  };
}

/** The planner's input for one pool's observation. */
export function plannerInput(pool: PoolConfig, observation: Observation): PlannerInput {
  return {
    now: observation.at,
    pools: [pool],
    queued: observation.queue,
    running: observation.running,
    instances: observation.instances,
    demand: observation.demand ? { [pool.name]: observation.demand } : undefined,
    onDemandFallback: observation.groups.some((group) => group.group === "burst" && group.onDemandFallback)
      ? [pool.name]
      : [],
    queuedRetries: observation.queuedRetries ? { [pool.name]: observation.queuedRetries } : {},
    heldPools: observation.held ? [pool.name] : [],
  };
}

/** Plan: the pure planner on one pool's observation. */
export function planObservation(deps: Pick<ScalingDeps, "pools">, observation: Observation): PoolPlan {
  const pool = poolOf(deps, observation.pool);
  const [poolPlan] = plan(plannerInput(pool, observation));
  if (!poolPlan) throw new Error(`the planner returned no plan for pool ${pool.name}`);
  return poolPlan;
}
