import { HEARTBEAT_OVERDUE_MS } from "../fleet";
import type { InstanceRecord } from "../instances";
import type { PoolPlan } from "../planner";
import type { PoolConfig } from "../pools";
import { poolOf, type ScalingDeps } from "./deps";
import type { Observation } from "./plan-input";

/** ScaleFleet's Apply step, and the pure rules for what the run does after it. */

export interface Applied {
  calls: string[];
  released: string[];
  refused: string[];
  /** Marked for release, waiting for their agents to stop claiming: still counted, released later. */
  releasing: string[];
  /** Marks taken away: the instance took a job, or the plan keeps it now. */
  unmarked: string[];
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
  /** Instances marked for release and not released yet: the run comes back for them. */
  pendingReleases = 0,
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
    settled: callCount === 0 && pendingReleases === 0 && !transitioning && freeSlots >= observation.queued,
    waitSeconds: transitioning ? WAIT_TRANSITIONING_SECONDS : WAIT_SECONDS,
    // An instance waiting to be released claims nothing: its slots are no spare for a new job; nor do a
    // held pool's spot instances (the burst group) claim one.
    spareSlots: Math.max(
      0,
      (target.warm + (observation.held ? 0 : target.burst) - pendingReleases) * slotsPerInstance -
        busy -
        observation.queued,
    ),
  };
}

/** Whether a record shows an idle instance that is reporting: nothing running, no notice, fresh. */
function idleNow(record: InstanceRecord | undefined, now: number): boolean {
  if (record?.runner !== "ready" || record.runningJobs.length || record.interruption) return false;
  const beat = record.lastHeartbeatAt ? Date.parse(record.lastHeartbeatAt) : 0;
  return now - beat <= HEARTBEAT_OVERDUE_MS;
}

/** An agent that speaks protocol 2 stops claiming when asked; an older one cannot. */
const confirms = (record: InstanceRecord | undefined) => (record?.agentProtocol ?? 0) >= 2;

interface ReleasePhases {
  /** To release now: confirmed idle (two phases), or an older agent's instance (one phase). */
  now: string[];
  /** Marked, or still waiting for the agent's confirmation. */
  pending: string[];
  /** Marked by this Apply. */
  marked: string[];
  /** Not idle when it would have been marked. */
  refused: string[];
  /** Marks cleared. */
  unmarked: string[];
}

/**
 * The two phases of a release (docs/PROTOCOL.md §2): an instance the plan releases is first marked
 * `releasing` (the heartbeat answer then says `release`), and released only once a heartbeat has
 * confirmed the mark (`claiming: false`, nothing running), so that no runner of it can take a job
 * between losing its protection and leaving. A mark the plan no longer wants is cleared, and the
 * agent claims again. An agent before protocol 2 is released in one phase, as before.
 */
async function releasePhases(
  deps: ScalingDeps,
  pool: PoolConfig,
  release: readonly string[],
  now: number,
): Promise<ReleasePhases> {
  const records = new Map((await deps.registry.inPool(pool.name)).map((record) => [record.id, record]));
  const wanted = new Set(release);
  const phases: ReleasePhases = { now: [], pending: [], marked: [], refused: [], unmarked: [] };
  for (const record of records.values()) {
    // A released instance keeps its mark: cleared, its agent would claim again as it leaves.
    if (!record.releasing || record.releasing.releasedAt || wanted.has(record.id)) continue;
    if (await deps.registry.clearReleasing(record.id)) phases.unmarked.push(record.id);
  }
  for (const id of release) {
    const record = records.get(id);
    if (!confirms(record)) phases.now.push(id);
    else if (record?.releasing?.confirmedAt) phases.now.push(id);
    else if (record?.releasing) phases.pending.push(id);
    else if (await deps.registry.markReleasing(id, (current) => idleNow(current, now) && confirms(current))) {
      phases.pending.push(id);
      phases.marked.push(id);
    } else phases.refused.push(id);
  }
  return phases;
}

/** Apply: release the chosen idle instances, set capacities, record the decision. */
export async function apply(
  deps: ScalingDeps,
  observation: Observation,
  poolPlan: PoolPlan,
): Promise<Applied> {
  const pool = poolOf(deps, observation.pool);
  const now = deps.now();
  const phases = await releasePhases(deps, pool, poolPlan.release, now.getTime());
  // Asked again right before each release: the plan is seconds old, a job may have started since.
  // An instance of a protocol-2 agent goes only while its confirmed mark stands.
  const stillIdle = async (id: string) => {
    const record = await deps.registry.get(id);
    if (!idleNow(record, now.getTime())) return false;
    return !confirms(record) || Boolean(record?.releasing?.confirmedAt && record.claiming === false);
  };
  const released = await deps.fleet.release(pool, phases.now, stillIdle);
  for (const id of released.released) {
    if ((await deps.registry.get(id))?.releasing) await deps.registry.released(id);
  }
  const refused = [...phases.refused, ...released.refused];
  const groupOf = new Map(observation.instances.map((instance) => [instance.id, instance.group]));
  // A refused release, or one waiting for its agent, stays in its group: desired keeps counting it.
  const kept = [...refused, ...phases.pending];
  const keptWarm = kept.filter((id) => groupOf.get(id) === "warm").length;
  const keptBurst = kept.filter((id) => groupOf.get(id) === "burst").length;
  // The plan's warm pool counts a warm instance it releases as stopped in it already: while that
  // instance waits for its agent in service, a pool that size would launch a store in its place.
  const pendingWarm = phases.pending.filter((id) => groupOf.get(id) === "warm").length;
  const target = {
    warm: poolPlan.desiredWarm + keptWarm,
    burst: poolPlan.desiredBurst + keptBurst,
    warmPoolSize: Math.max(0, poolPlan.warmPoolSize - pendingWarm),
    ...(poolPlan.resumeStores.length
      ? { resume: poolPlan.resumeStores, resumes: poolPlan.counts.resume }
      : {}),
    ...(poolPlan.counts.launchForRetries ? { onDemand: poolPlan.counts.launchForRetries } : {}),
    ...(poolPlan.counts.resumeForWarmth ? { optional: poolPlan.counts.resumeForWarmth } : {}),
  };
  const capacityCalls = await deps.fleet.setCapacity(pool, target);
  const calls = [...released.calls, ...capacityCalls];
  const { settled, waitSeconds, spareSlots } = afterIteration(
    observation,
    target,
    pool.slotsPerInstance,
    calls.length,
    phases.pending.length,
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
  // Journaled when something changed: a mark that waits for its agent is not news at every iteration.
  if (calls.length || refused.length || phases.marked.length || phases.unmarked.length) {
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
        refused: refused.join(" ") || null,
        releasing: phases.marked.join(" ") || null,
        unmarked: phases.unmarked.join(" ") || null,
        ...(target.resume ? { resume: target.resume.join(" ") } : {}),
      },
      calls,
    });
  }
  return {
    calls,
    released: released.released,
    refused,
    releasing: phases.pending,
    unmarked: phases.unmarked,
    settled,
    waitSeconds,
  };
}
