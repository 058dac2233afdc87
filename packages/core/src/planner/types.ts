import type { Group, Market } from "../instances/vocabulary";
import type { JobStatus } from "../jobs/vocabulary";
import type { PoolConfig } from "../pools";
import type { Demand } from "./forecast";

/**
 * What the planner reads and writes. Times are epoch milliseconds. Everything is plain data, so a
 * control plane can build the input from DynamoDB and EC2, and the simulator from its own state.
 */

/**
 * A job as the control plane sees it. Routing has already put it in a pool. Queued jobs reach the
 * planner summarised (`summarizeQueue`), running ones as `RunningJob`s.
 */
export interface PlannerJob {
  key: string;
  pool: string;
  status: Extract<JobStatus, "queued" | "running">;
  cacheKey: string;
  /** Epoch milliseconds. */
  queuedAt: number;
  /** The instance running it; null while queued. */
  instanceId: string | null;
}

/**
 * Queued jobs of one pool that share a cache key, or (`cacheKey` null) the rest of the pool's queue,
 * whose keys were not kept so that the planner's input stays bounded however long the queue is.
 * Every queued job is in exactly one group, so the counts add up to the whole queue.
 */
export interface QueuedGroup {
  pool: string;
  cacheKey: string | null;
  count: number;
  /** Epoch milliseconds of the group's oldest job. */
  oldestQueuedAt: number;
}

/** A job running on an instance (the planner needs it when that instance drains). */
export interface RunningJob {
  key: string;
  pool: string;
  instanceId: string;
}

/**
 * - `launching`: launched or resuming, runner not up yet;
 * - `ready`: in service with its runner up (busy or idle, see `busySlots`);
 * - `draining`: takes no new job (spot interruption warning, or being retired); no longer counted in
 *   the plan's desired capacities, which ask for its replacement (nothing detaches it from its group
 *   yet: the group keeps it until it is gone);
 * - `stopping`: on its way into the warm pool (being stopped, or a new instance warming up for it);
 * - `stopped`: in the warm group's warm pool, store intact (unless it `waitsForCapacity`: stopped by a
 *   spot interruption, out of the warm pool until EC2 starts it again);
 * - `terminating`: going away.
 */
export type PlannerState = "launching" | "ready" | "draining" | "stopping" | "stopped" | "terminating";

export interface PlannerInstance {
  id: string;
  pool: string;
  group: Group;
  market: Market;
  state: PlannerState;
  slots: number;
  busySlots: number;
  /** Cache keys the store is warm for, most recent first. */
  cacheKeys: string[];
  /** Epoch milliseconds of the last launch or resume. */
  launchedAt: number;
  /** Epoch milliseconds since the instance has had no busy slot; null while busy or not in service. */
  idleSince: number | null;
  /** No heartbeat lately: suspect. Never counted as idle, never released: nothing reclaims it yet. */
  heartbeatOverdue: boolean;
  /**
   * A stopped store that a spot interruption stopped: only EC2 starts it again, when capacity
   * returns. It is not part of the warm group: none of the warm pool, never named to start.
   */
  waitsForCapacity?: boolean;
}

export interface PlannerInput {
  /** Epoch milliseconds. */
  now: number;
  pools: readonly PoolConfig[];
  /** The whole queue, by pool and cache key (see `summarizeQueue`). */
  queued: readonly QueuedGroup[];
  running: readonly RunningJob[];
  instances: readonly PlannerInstance[];
  /**
   * The forecast per pool (see `forecastDemand`). Without one for a pool, the planner sizes nothing
   * ahead of demand and keeps the warm group's stores as they are.
   */
  demand?: Demand;
  /**
   * Pools whose burst group has fallen back to on-demand (spot launches failed lately), as the
   * fleet observed: what their burst group launches now is on-demand, and the plan's reason says so.
   */
  onDemandFallback?: readonly string[];
  /**
   * Queued jobs per pool that are the last retries of interrupted ones (`lastRetry`), counted in
   * `queued` too. Where the pool's `retryOnDemand` is on, the new capacity they need is planned in
   * the warm (on-demand) group.
   */
  queuedRetries?: Readonly<Record<string, number>>;
  /**
   * Pools holding their spot runners while a retry of an interrupted job waits (`retries/holds`):
   * only on-demand slots listen then, so all the new capacity such a pool needs is planned in the
   * warm (on-demand) group, and its spot instances' free slots serve no queued job. (Only a pool
   * whose `retryOnDemand` is on holds.)
   */
  heldPools?: readonly string[];
}

export interface PoolPlan {
  pool: string;
  /** Instances in service in the warm (on-demand) group: launching or ready, not draining. */
  desiredWarm: number;
  /** Instances in service in the burst (spot) group. */
  desiredBurst: number;
  /** Stopped instances the warm group's warm pool keeps. */
  warmPoolSize: number;
  /**
   * Idle instances to release, by id: a warm one goes back into the warm pool (ReuseOnScaleIn), a
   * burst one is terminated. The driver unprotects each and decrements its group's desired capacity;
   * `desiredWarm`/`desiredBurst` already account for them.
   */
  release: string[];
  /**
   * The stopped stores to resume, by id, in order (`counts.resume` of them when the warm group can
   * start an instance by id, `warm.market: spot`): first those warm for queued jobs no free slot is
   * warm for, then the most valuable. Empty for an Auto Scaling warm pool, which resumes instances
   * of AWS's choosing.
   */
  resumeStores: string[];
  /** One line for people. */
  reason: string;
  /**
   * Epoch milliseconds at which the plan changes even if nothing else happens (an idle instance
   * reaches its idle timeout); null when nothing is pending. The workflow plans again by then.
   */
  recheckAt: number | null;
  /** Figures behind the plan, for the status page. */
  counts: PlanCounts;
}

export interface PlanCounts {
  queued: number;
  /** Jobs on draining instances, which will need a slot again. */
  rehome: number;
  freeSlots: number;
  /** Stopped instances to resume (included in `desiredWarm`). */
  resume: number;
  /** New instances in the burst group (included in `desiredBurst`), spot unless it has fallen back. */
  launch: number;
  /** Free slots held ready (`minReady`). */
  reserve: number;
  /**
   * New on-demand instances in the warm group for retried jobs (included in `desiredWarm`), launched
   * instead of burst ones; absent when none.
   */
  launchForRetries?: number;
  /**
   * Of `resume`, the stores started for warmth beyond the capacity the queue needs: a driver starts
   * them if it can, and launches nothing in place of one that will not start (no spot capacity).
   * Absent when none.
   */
  resumeForWarmth?: number;
}
