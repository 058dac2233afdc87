import { HEARTBEAT_OVERDUE_MS } from "../fleet";
import type { PoolPlan } from "../planner";
import { poolOf, type ScalingDeps } from "./deps";
import type { Observation } from "./plan-input";

/** ScaleFleet's Apply step, and the pure rules for what the run does after it. */

export interface Applied {
  calls: string[];
  released: string[];
  refused: string[];
  settled: boolean;
  /** Seconds until the next iteration. */
  waitSeconds: number;
}

/** The capacity a plan asks of the pool's groups. */
export interface CapacityTarget {
  warm: number;
  burst: number;
}

/** How long a run waits before observing again: shorter while instances boot or stop. */
export const WAIT_TRANSITIONING_SECONDS = 5;
export const WAIT_SECONDS = 15;

/**
 * After an iteration: whether the pool is settled (the run ends), how long the run waits otherwise,
 * and the spare slots a newly queued job may take without a run (slots the pool will have free when
 * its desired capacity is in service, less busy slots and the queue).
 */
export function afterIteration(
  observation: Observation,
  target: CapacityTarget,
  slotsPerInstance: number,
  callCount: number,
): { settled: boolean; waitSeconds: number; spareSlots: number } {
  const transitioning = observation.instances.some(
    (instance) => instance.state === "launching" || instance.state === "stopping",
  );
  let freeSlots = 0;
  let busy = 0;
  for (const instance of observation.instances) {
    busy += instance.busySlots;
    if (instance.state === "ready" || instance.state === "launching")
      freeSlots += Math.max(0, instance.slots - instance.busySlots);
  }
  return {
    settled: callCount === 0 && !transitioning && freeSlots >= observation.queued,
    waitSeconds: transitioning ? WAIT_TRANSITIONING_SECONDS : WAIT_SECONDS,
    spareSlots: Math.max(0, (target.warm + target.burst) * slotsPerInstance - busy - observation.queued),
  };
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
  const { settled, waitSeconds, spareSlots } = afterIteration(
    observation,
    target,
    pool.slotsPerInstance,
    calls.length,
  );

  await deps.scalingRecords.put({
    pool: pool.name,
    at: now.toISOString(),
    desiredWarm: target.warm,
    desiredBurst: target.burst,
    warmPoolSize: target.warmPoolSize,
    queued: observation.queued,
    // Free slots once the capacity just asked for is up: what new jobs can take without another run.
    spareSlots,
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
  return { calls, released: released.released, refused: released.refused, settled, waitSeconds };
}
