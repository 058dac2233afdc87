/**
 * ScaleFleet's steps as plain functions, one file each: `observe` (read the pool), `plan-input` (the
 * observation, and the pure function from it to the planner's input), `apply` (release, set
 * capacities, record), `request` (start a run, or not, under the pool's lease), and the minute
 * `tick`. The Step Functions workflow calls observe, plan and apply as tasks, locally and in AWS;
 * the loop, retries and waits live in the workflow.
 */

export { type Applied, afterIteration, apply, type CapacityTarget } from "./apply";
export { poolOf, type ScalingDeps } from "./deps";
export { refreshForecast } from "./forecast";
export { observe, queuedByPool, routeQueue } from "./observe";
export { type Observation, observedQueue, plannerInput, planObservation } from "./plan-input";
export {
  createScalingRecords,
  type PoolState,
  type QueueSnapshot,
  type Sample,
  type ScalingRecords,
  SNAPSHOT_LABEL_SETS,
} from "./records";
export {
  holdLease,
  LEASE_SECONDS,
  leaseNotices,
  requestScale,
  type ScaleRequest,
  type StartRun,
  SUPERSEDE_MARGIN_MS,
  scaleLease,
} from "./request";
// The tick (`./tick`) is imported from its own path: the API function, which never ticks, leaves it out.
export type { TickSummary } from "./tick";
