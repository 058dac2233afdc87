import type { FleetPort } from "../fleet";
import type { InstanceRecord, InstanceRegistry } from "../instances";
import type { Journal } from "../journal";
import type { Leases } from "../leases";
import { namesStores, type PoolConfig } from "../pools";
import { type RunnerDeps, retireIdleRunners, retireInstanceRunners } from "../runners";
import type { ScalingRecords } from "../scaling/records";
import { requestScale, type StartRun } from "../scaling/request";
import { type InterruptionNotice, type NoticeKind, noticeStrength } from "./events";
import type { InterruptionRecords } from "./records";

/**
 * HandleInterruption's steps (the state machine is `workflows/handle-interruption.ts`): a spot
 * warning or rebalance recommendation for one of the fleet's spot instances drains it, detaches it
 * (its group launches the replacement at once), asks its pool for a ScaleFleet run, retires its idle
 * runners, then waits until the instance is gone and retires the rest. A rebalance recommendation
 * never terminates a busy instance: it terminates it only once it has drained and is idle.
 *
 * A warm group of spot instances (`warm.market: spot`) is Hearth's own, in no Auto Scaling group: an
 * interruption stops its instance, store kept. Its warning drains it the same way (nothing to detach;
 * the planner replaces it), and the execution ends once it has stopped, its record kept for its
 * store. A rebalance recommendation for it is not acted on: terminating would throw the store away.
 */

export * from "./events";
export { createInterruptionRecords, type InterruptionRecord, type InterruptionRecords } from "./records";

export interface InterruptionDeps {
  pools: readonly PoolConfig[];
  registry: InstanceRegistry;
  records: InterruptionRecords;
  fleet: FleetPort;
  journal: Journal;
  leases: Leases;
  scalingRecords: ScalingRecords;
  /** Runner identity: absent where no forge is wired (runners are then not retired). */
  runners?: RunnerDeps | undefined;
  startScaleFleet: StartRun;
  holder: (pool: string) => string;
  /** Marks the jobs running on an interrupted instance (spot warnings only), so they can be retried. */
  onJobsInterrupted?:
    | ((input: { instanceId: string; pool: string; at: string }) => Promise<void>)
    | undefined;
  now: () => Date;
  log?: {
    debug?(message: string, fields?: Record<string, unknown>): void;
    warn(message: string, fields?: Record<string, unknown>): void;
  };
}

/** Settle looks again this often; a warning's first wait lasts until its deadline. */
export const SETTLE_SECONDS = 30;
/** After this long, a drain still under way is looked at less often (Step Functions keeps 25,000 events of history). */
const SLOW_AFTER_MS = 30 * 60_000;
const SLOW_SETTLE_SECONDS = 300;
/** GitHub's own default job timeout, for pools that set no job time limit. */
export const DEFAULT_MAX_JOB_MINUTES = 360;
/** How long a drain may last beyond the pool's job time limit before HandleInterruption gives up. */
const DRAIN_GRACE_MINUTES = 15;

export interface Claimed {
  handled: boolean;
  instanceId: string;
  kind: NoticeKind;
  pool: string | null;
  /**
   * Why it is not handled: a weaker or repeated notice, not Hearth's, an on-demand instance, or a
   * rebalance recommendation for a spot store that stops when interrupted.
   */
  reason: "repeated" | "not-hearth" | "on-demand" | "stops-on-interruption" | null;
  /** The notice it raises (null: none before). */
  previous: NoticeKind | null;
}

/** What the execution carries from Drain through Settle's loop. */
export interface DrainProgress {
  pool: string;
  startedAt: string;
  drainedAt: string;
  /** A heartbeat after the drain, answered "drain": the next one shows the instance as it drains. */
  beatSeen: string | null;
  waitSeconds: number;
  done: boolean;
  outcome: "waiting" | "gone" | "terminated" | "stopped" | "superseded" | "gave-up";
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** The pool's job time limit, in minutes (`maxJobMinutes`); an unknown pool gets the default. */
export function maxJobMinutesOf(pool: PoolConfig | undefined): number {
  return pool?.maxJobMinutes ?? DEFAULT_MAX_JOB_MINUTES;
}

/**
 * Claim: the conditional write that makes a notice count once. A notice that does not raise the
 * instance's (duplicate, late, weaker) does nothing; one for an instance that is not Hearth's, or for
 * an on-demand one (spot notices do not concern it), is journaled and ends.
 */
export async function claimInterruption(
  deps: InterruptionDeps,
  notice: InterruptionNotice,
): Promise<Claimed> {
  const { instanceId, kind } = notice;
  const base = { instanceId, kind, pool: null, previous: null };
  const { raised, previous } = await deps.records.raise(notice);
  if (!raised) {
    deps.log?.debug?.("interruption notice repeated; nothing to do", { instance: instanceId, kind });
    return { ...base, handled: false, reason: "repeated", previous };
  }
  let record: InstanceRecord | undefined = await deps.registry.get(instanceId);
  if (!record) {
    const member = await deps.fleet.lookup(instanceId);
    const pool = deps.pools.find((p) => p.name === member?.pool);
    if (member && pool) record = await deps.registry.register({ ...member, slots: pool.slotsPerInstance });
  }
  if (!record) {
    await deps.journal.write({
      pool: null,
      kind: "interruption",
      reason: `ignored a spot ${kind} for ${instanceId}: not a Hearth instance`,
      details: { instance: instanceId, notice: kind, source: notice.source },
    });
    return { ...base, handled: false, reason: "not-hearth", previous };
  }
  const pool = deps.pools.find((p) => p.name === record.pool);
  const keptSpot = record.group === "warm" && pool !== undefined && namesStores(pool);
  if (record.market === "on-demand" || (record.group === "warm" && !keptSpot)) {
    await deps.journal.write({
      pool: record.pool,
      kind: "interruption",
      reason: `ignored a spot ${kind} for ${instanceId}: an on-demand instance (${record.group} group)`,
      details: { instance: instanceId, notice: kind, source: notice.source },
    });
    return { ...base, pool: record.pool, handled: false, reason: "on-demand", previous };
  }
  if (keptSpot && kind === "rebalance") {
    await deps.journal.write({
      pool: record.pool,
      kind: "interruption",
      reason: `ignored a rebalance recommendation for ${instanceId}: a spot store of the warm group stops when interrupted, its store kept`,
      details: { instance: instanceId, notice: kind, source: notice.source },
    });
    return { ...base, pool: record.pool, handled: false, reason: "stops-on-interruption", previous };
  }
  return { ...base, pool: record.pool, handled: true, reason: null, previous };
}

/**
 * Drain: the instance marked interrupted (the heartbeat's answer says drain, and the planner counts
 * it draining), its running jobs marked (a warning), detached (its group launches the replacement),
 * a ScaleFleet run requested for its pool, and its idle runners retired.
 */
export async function drainInterrupted(
  deps: InterruptionDeps,
  notice: InterruptionNotice,
  claimed: Pick<Claimed, "pool" | "previous">,
): Promise<DrainProgress> {
  const { instanceId, kind } = notice;
  const poolName = claimed.pool ?? "";
  const pool = deps.pools.find((p) => p.name === poolName);
  if (!pool) throw new Error(`unknown pool ${poolName}`);
  const now = deps.now();
  const calls: string[] = [];
  await deps.registry.interrupted(instanceId, {
    action: notice.action,
    time: notice.deadline ?? notice.at,
  });
  if (kind === "warning" && deps.onJobsInterrupted) {
    try {
      await deps.onJobsInterrupted({ instanceId, pool: pool.name, at: notice.deadline ?? notice.at });
    } catch (error) {
      // Draining matters more than the retry bookkeeping: journaled, and the drain goes on.
      await deps.journal.write({
        pool: pool.name,
        kind: "error",
        reason: `could not mark the jobs of interrupted ${instanceId}: ${message(error)}`,
        details: { instance: instanceId },
      });
    }
  }
  calls.push(...(await deps.fleet.detach(pool, instanceId)));
  const scale = await requestScale(
    deps,
    pool.name,
    deps.startScaleFleet,
    deps.holder(pool.name),
    // Spare slots do not cover a lost instance: the pool's run re-plans around it.
    { covered: false },
  );
  let retired = 0;
  if (deps.runners) {
    const idle = await retireIdleRunners(deps.runners, { instanceId });
    calls.push(...idle.calls);
    retired = idle.retired;
  }
  await deps.records.drained(instanceId, now.toISOString());
  const stops = keepsStore(pool, await deps.registry.get(instanceId));
  // A spot warm store's rebalance recommendation was not acted on: its warning is the first drain.
  const escalated = claimed.previous !== null && !stops;
  await deps.journal.write({
    pool: pool.name,
    kind: "interruption",
    reason:
      kind === "warning"
        ? `${instanceId} got a spot interruption warning (${notice.action} at ${notice.deadline}): drained${escalated ? " (after a rebalance recommendation)" : stops ? ", replacement requested; it stops, store kept" : ", detached, replacement requested"}`
        : `${instanceId} got a rebalance recommendation: drained, detached, replacement requested; terminated once idle`,
    details: {
      instance: instanceId,
      notice: kind,
      action: notice.action,
      deadline: notice.deadline,
      source: notice.source,
      scaleFleet: scale,
      runnersRetired: retired,
    },
    calls,
  });
  const untilDeadline = notice.deadline ? Math.ceil((Date.parse(notice.deadline) - now.getTime()) / 1000) : 0;
  return {
    pool: pool.name,
    startedAt: now.toISOString(),
    drainedAt: now.toISOString(),
    beatSeen: null,
    waitSeconds: kind === "warning" ? Math.max(SETTLE_SECONDS, untilDeadline) : SETTLE_SECONDS,
    done: false,
    outcome: "waiting",
  };
}

/** A warm instance of a spot warm group: an interruption stops it, and its store is kept. */
const keepsStore = (pool: PoolConfig | undefined, record: InstanceRecord | undefined): boolean =>
  pool !== undefined && namesStores(pool) && record?.group === "warm";

/** The instance is gone (or terminated by Hearth): its runners and GitLab manager retired, its record forgotten. */
async function retireGone(deps: InterruptionDeps, instanceId: string, pool: string): Promise<void> {
  if (deps.runners) await retireInstanceRunners(deps.runners, { instanceId, pool, how: "terminated" });
  await deps.registry.forget(instanceId);
}

/**
 * Settle: once the instance is gone, its runners go and the execution ends. A rebalance's instance
 * is terminated once it has drained and is idle: a heartbeat answered "drain", then a later one with
 * no running job. A stronger notice that came meanwhile takes over (its own execution settles).
 * Bounded by the pool's job time limit and a grace; after that the drain is journaled and left to the
 * sweep.
 */
export async function settleInterrupted(
  deps: InterruptionDeps,
  notice: InterruptionNotice,
  progress: DrainProgress,
): Promise<DrainProgress> {
  const { instanceId, kind } = notice;
  const now = deps.now();
  const next = (changes: Partial<DrainProgress>): DrainProgress => ({ ...progress, ...changes });
  const claim = await deps.records.get(instanceId);
  if (claim && claim.strength > noticeStrength(kind)) return next({ done: true, outcome: "superseded" });
  if (!(await deps.fleet.exists(instanceId))) {
    await retireGone(deps, instanceId, progress.pool);
    return next({ done: true, outcome: "gone" });
  }
  const pool = deps.pools.find((p) => p.name === progress.pool);
  if (kind === "warning" && keepsStore(pool, await deps.registry.get(instanceId))) {
    const member = await deps.fleet.lookup(instanceId);
    if (member?.lifecycle === "stopping" || member?.lifecycle === "stopped") {
      // Stopped by its interruption: its runners go as on any stop; its record stays for its store.
      if (deps.runners)
        await retireInstanceRunners(deps.runners, { instanceId, pool: progress.pool, how: "stopped" });
      // When EC2 starts it again, a notice then is for that new run.
      await deps.records.stopped(instanceId, now.toISOString());
      await deps.journal.write({
        pool: progress.pool,
        kind: "interruption",
        reason: `${instanceId} stopped by its spot interruption: store kept`,
        details: { instance: instanceId, notice: kind },
      });
      return next({ done: true, outcome: "stopped" });
    }
  }
  if (kind === "rebalance") {
    const record = await deps.registry.get(instanceId);
    const beat = record?.lastHeartbeatAt ?? null;
    if (record && beat && beat > progress.drainedAt && record.runningJobs.length === 0) {
      if (progress.beatSeen === null) {
        return next({ beatSeen: beat, waitSeconds: SETTLE_SECONDS });
      }
      if (beat > progress.beatSeen) {
        const calls = await deps.fleet.terminate(instanceId);
        await deps.journal.write({
          pool: progress.pool,
          kind: "interruption",
          reason: `${instanceId} drained and idle after a rebalance recommendation: terminated`,
          details: { instance: instanceId, notice: kind },
          calls,
        });
        await retireGone(deps, instanceId, progress.pool);
        return next({ done: true, outcome: "terminated" });
      }
    }
  }
  const elapsed = now.getTime() - Date.parse(progress.startedAt);
  const boundMs = (maxJobMinutesOf(pool) + DRAIN_GRACE_MINUTES) * 60_000;
  if (elapsed > boundMs) {
    await deps.journal.write({
      pool: progress.pool,
      kind: "interruption",
      reason: `${instanceId} is still there ${Math.round(elapsed / 60_000)} minutes after its ${kind}: HandleInterruption stops watching it`,
      details: { instance: instanceId, notice: kind },
    });
    return next({ done: true, outcome: "gave-up" });
  }
  return next({ waitSeconds: elapsed > SLOW_AFTER_MS ? SLOW_SETTLE_SECONDS : SETTLE_SECONDS });
}

/** A step failed past its retries: journaled (the instance stays drained; the sweep finds it). */
export async function recordInterruptionFailure(
  deps: Pick<InterruptionDeps, "journal">,
  input: { instanceId: string; pool: string | null; error: string; cause: string },
): Promise<void> {
  await deps.journal.write({
    pool: input.pool,
    kind: "error",
    reason: `HandleInterruption failed for ${input.instanceId}: ${input.error}`,
    details: { instance: input.instanceId, cause: input.cause.slice(0, 500) },
  });
}
