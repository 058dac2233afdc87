import type { FleetPort } from "../fleet";
import {
  type Heartbeat,
  heartbeatSchema,
  type InstanceRecord,
  type InstanceRegistry,
  strongerInterruption,
} from "../instances";
import { type InterruptionNotice, noticeFromReport } from "../interruptions/events";
import { isTerminal, type Job, type JobEvent, type JobKey, partialEvent } from "../jobs";
import type { Journal } from "../journal";
import type { Ledger } from "../ledger";
import { type PoolConfig, routeJob } from "../pools";
import { PROTOCOL_VERSION, type RunnerConfigInstruction, type RunnerDeps, tendSlotRunners } from "../runners";
import type { RunnerStopReason } from "../runners/vocabulary";

/**
 * `POST /agent/heartbeat`: an instance reports its runner state, running jobs and store. The
 * transport authenticates the caller (IAM in AWS, a token in local mode); this checks that the caller
 * speaks for itself and for an instance of the fleet, then records what it says.
 */

/**
 * Why a heartbeat is refused: it is not one (`invalid_heartbeat`), the caller speaks for another
 * instance (`forbidden`), or the instance is not one of the fleet's (`unknown_instance`). The HTTP
 * route maps these onto status codes.
 */
export type HeartbeatRejection = "invalid_heartbeat" | "forbidden" | "unknown_instance";

/** What the answer tells a protocol-1 agent to do (docs/PROTOCOL.md). */
export interface HeartbeatInstructions {
  /** Runner configs to pick up: where each is, never the config itself. */
  runnerConfigs: RunnerConfigInstruction[];
  /** Take no new job; let running ones finish. */
  drain: boolean;
  /** Jobs to stop (filled by interruption handling). */
  cancel: JobKey[];
  /**
   * Version 2: the control plane means to release the instance. Stop claiming jobs and report
   * `claiming: false`; claim again once an answer says false. Absent for an older agent.
   */
  release?: boolean;
  /**
   * Version 3: take no job now. Either the instance is a spot instance of a pool that holds its spot
   * runners for a retry, or another store is better placed for the pool's queued jobs (warm-first
   * placement). Stop claiming jobs and report `claiming: false`, as for a release; claim again once an
   * answer says false. Absent for an older agent (its instance is only minted no runner while held).
   */
  hold?: boolean;
}

export type HeartbeatResult =
  | { kind: "rejected"; code: HeartbeatRejection; message: string }
  | {
      kind: "accepted";
      instance: InstanceRecord;
      /** The protocol the answer speaks: the agent's, up to this control plane's. */
      protocol: number;
      /** Null for a version-0 agent, which would not understand them. */
      instructions: HeartbeatInstructions | null;
    };

export interface HeartbeatDeps {
  registry: InstanceRegistry;
  ledger: Ledger;
  journal: Journal;
  fleet: Pick<FleetPort, "lookup">;
  pools: readonly PoolConfig[];
  /** Runner identity; absent where no forge credentials are wired (runners are then not tended). */
  runners?: RunnerDeps | undefined;
  /**
   * Starts HandleInterruption for a notice the agent reports before (or without) EventBridge's event.
   * Absent: reports are recorded only.
   */
  startInterruption?: ((notice: InterruptionNotice) => Promise<unknown>) | undefined;
  /**
   * The retry hold (core's retries): whether the pool holds its spot runners, and the trigger that
   * tries its waiting retries again after a heartbeat of any of its instances. Absent: no hold.
   */
  hold?: HeartbeatHold | undefined;
  /**
   * Warm-first placement (`stores/placement`): whether the instance's free slots must not listen now.
   * Asked for agents of version 3, which can hold their slots. Absent: every free slot listens.
   */
  placement?: HeartbeatPlacement | undefined;
  now?: () => Date;
  log?: { warn(message: string, fields?: Record<string, unknown>): void };
}

export interface HeartbeatHold {
  state(pool: string): Promise<{ held: boolean; pending: boolean }>;
  /** Tries the pool's waiting retries again (the host decides whether before or after the answer). */
  retryPending(pool: string): Promise<unknown>;
}

export interface HeartbeatPlacement {
  /**
   * Decides fail-open: an error answers false (listen). `spotHeld`: the pool holds its spot runners
   * for a retry, so its spot instances take no job whatever placement says.
   */
  holds(instance: InstanceRecord, context?: { spotHeld?: boolean }): Promise<boolean>;
}

/**
 * The instance id in an assumed-role ARN. EC2 instance profiles assume their role with the instance
 * id as the session name: `arn:aws:sts::123456789012:assumed-role/<role>/i-0abc…`. With `account`, only
 * a role of that account is believed.
 */
export function instanceFromAssumedRoleArn(arn: string | undefined, account?: string): string | null {
  const match = /^arn:aws[a-z-]*:sts::(\d{12}):assumed-role\/[\w+=,.@-]+\/(i-[0-9a-f]{8,17})$/.exec(
    arn ?? "",
  );
  // A session name is chosen by whoever assumes a role: in any account but the fleet's, anyone may
  // name a session after one of the fleet's instances.
  if (!match || (account !== undefined && match[1] !== account)) return null;
  return match[2] ?? null;
}

const runningEvent = (beat: Heartbeat, job: Heartbeat["runningJobs"][number]): JobEvent =>
  partialEvent(job, { status: "running", instanceId: beat.instanceId });

/**
 * Whether an instance's report that it runs `job` is believable: not a finished job, not one running
 * elsewhere, and a queued one only if its labels route it to the instance's pool. (A job the ledger
 * has never seen is believed: its webhook may have been lost.)
 */
function mayClaim(job: Job, pool: string, instanceId: string, pools: readonly PoolConfig[]): boolean {
  if (isTerminal(job.status)) return false;
  if (job.instanceId && job.instanceId !== instanceId) return false;
  if (job.status === "queued" && job.labelsKnown) {
    const route = routeJob(job, pools);
    return "pool" in route && route.pool === pool;
  }
  return true;
}

/** A heartbeat from `callerInstanceId`, the instance its route authenticated (it refuses callers it cannot name). */
export async function acceptHeartbeat(
  deps: HeartbeatDeps,
  callerInstanceId: string,
  body: unknown,
): Promise<HeartbeatResult> {
  const parsed = heartbeatSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      kind: "rejected",
      code: "invalid_heartbeat",
      message: `heartbeat does not match the schema at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`,
    };
  }
  const beat = parsed.data;
  if (callerInstanceId !== beat.instanceId) {
    return {
      kind: "rejected",
      code: "forbidden",
      message: "an instance may only report for itself",
    };
  }
  let known = await deps.registry.get(beat.instanceId);
  if (!known) {
    // First word from a new instance: register it if it is a member of one of Hearth's groups.
    const member = await deps.fleet.lookup(beat.instanceId);
    const pool = deps.pools.find((p) => p.name === member?.pool);
    if (!member || !pool) {
      return {
        kind: "rejected",
        code: "unknown_instance",
        message: "this instance is not part of the fleet",
      };
    }
    known = await deps.registry.register({ ...member, slots: pool.slotsPerInstance });
  }
  // An instance never has more slots than its pool gives it: claiming more would make the planner
  // count capacity that does not exist, and leave queued jobs waiting.
  const poolSlots = deps.pools.find((p) => p.name === known.pool)?.slotsPerInstance ?? known.slots;
  const stored = await deps.registry.heartbeat(beat.instanceId, {
    ...beat,
    slots: Math.min(beat.slots, poolSlots),
  });
  if (!stored) {
    return {
      kind: "rejected",
      code: "unknown_instance",
      message: "this instance is not part of the fleet",
    };
  }
  // The instance is the authority on what it runs; the ledger learns it even if a webhook was lost.
  // It speaks only for itself: a job the ledger knows finished, or running on another instance, is
  // not this instance's to claim (the merge would otherwise hand it the job).
  for (const job of beat.runningJobs) {
    const current = await deps.ledger.get(job);
    if (current && !mayClaim(current, stored.after.pool, beat.instanceId, deps.pools)) continue;
    await deps.ledger.record(runningEvent(beat, job));
  }
  const reported = beat.interruption;
  if (
    reported &&
    deps.startInterruption &&
    strongerInterruption(stored.before.interruption, reported) !== stored.before.interruption
  ) {
    // The first report of a notice (or of a warning after a rebalance): HandleInterruption drains,
    // detaches and replaces the instance. Its claim makes EventBridge's own event for it a repeat.
    try {
      await deps.startInterruption(noticeFromReport(beat.instanceId, reported, deps.now?.() ?? new Date()));
    } catch (error) {
      // The heartbeat is recorded and answered "drain" all the same; EventBridge's event starts it too.
      deps.log?.warn("could not start HandleInterruption", {
        instance: beat.instanceId,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  if (beat.interruption && !stored.before.interruption) {
    await deps.journal.write({
      pool: stored.after.pool,
      kind: "interruption",
      reason: `${beat.instanceId} got a spot ${beat.interruption.action} notice for ${beat.interruption.time}`,
      details: {
        instance: beat.instanceId,
        action: beat.interruption.action,
        runningJobs: beat.runningJobs.length,
      },
    });
  }
  await journalStoppedRunners(deps.journal, stored.after.pool, beat);
  const protocol = Math.min(beat.protocol ?? 0, PROTOCOL_VERSION);
  // The retry hold is served first: its trigger must run whatever placement says.
  const { held: retryHold, poolHeld } = await holdAfterBeat(deps, stored.after);
  // Only an agent of version 3 can hold its slots (and stop gitlab-runner); an older one listens.
  // While the pool holds its spot runners for a retry, placement counts on none of them.
  const placementHold =
    protocol >= 3 && !retryHold && deps.placement
      ? await deps.placement.holds(stored.after, { spotHeld: poolHeld })
      : false;
  const hold = retryHold || placementHold;
  if (protocol < 1) return { kind: "accepted", instance: stored.after, protocol, instructions: null };
  const draining = stored.after.runner === "draining" || stored.after.interruption !== null;
  // Only an agent of version 2 can stop claiming and say so; an older one is released in one phase.
  const releasing = protocol >= 2 && stored.after.releasing !== null;
  const instructions: HeartbeatInstructions = {
    runnerConfigs: [],
    drain: draining,
    cancel: [],
    ...(protocol >= 2 ? { release: releasing } : {}),
    ...(protocol >= 3 ? { hold } : {}),
  };
  const pool = deps.pools.find((p) => p.name === stored.after.pool);
  if (deps.runners && pool) {
    try {
      const tended = await tendSlotRunners(deps.runners, {
        instance: stored.after,
        pool,
        reported: beat.slotRunners ?? [],
        // A releasing instance gets no runner: one that listened could take a job as it leaves. A held
        // one none either: one that listened could take the retry the hold keeps for on-demand, or
        // the job placement keeps for a better placed store.
        mayMint: !draining && !releasing && !hold,
      });
      instructions.runnerConfigs = releasing || hold ? [] : tended.configs;
    } catch (error) {
      // The heartbeat itself is recorded; runners are tended again at the next one.
      deps.log?.warn("could not tend the instance's runners", {
        instance: beat.instanceId,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return { kind: "accepted", instance: stored.after, protocol, instructions };
}

/**
 * The retry hold after a recorded heartbeat: whether this instance is held (a spot instance of a pool
 * that holds its spot runners), and, when the pool has retries waiting, the trigger that tries them
 * again (this heartbeat may be the confirmation their gate waits for). A failure holds nothing: the
 * heartbeat is answered all the same, and the next one asks again.
 */
async function holdAfterBeat(
  deps: HeartbeatDeps,
  instance: InstanceRecord,
): Promise<{ held: boolean; poolHeld: boolean }> {
  if (!deps.hold) return { held: false, poolHeld: false };
  try {
    const state = await deps.hold.state(instance.pool);
    if (state.pending) await deps.hold.retryPending(instance.pool);
    return { held: state.held && instance.market === "spot", poolHeld: state.held };
  } catch (error) {
    deps.log?.warn("could not read or serve the pool's retry hold", {
      instance: instance.id,
      error: error instanceof Error ? error.message : String(error),
    });
    return { held: false, poolHeld: false };
  }
}

const stopReasons: Record<RunnerStopReason, string> = {
  "max-job-time": "its job ran past the pool's maxJobMinutes",
  "interruption-deadline": "its job could not finish before the spot interruption's deadline",
};

/**
 * Journals each runner the agent says it stopped while it ran a job. The agent reports each once, but
 * repeats a report whose answer it did not get: the journal's `once` key keeps that to one entry.
 */
async function journalStoppedRunners(journal: Journal, pool: string, beat: Heartbeat): Promise<void> {
  for (const stop of beat.stoppedRunners ?? []) {
    const what =
      stop.slot === null
        ? `gitlab-runner's jobs${stop.runnerId === null ? "" : ` (runner ${stop.runnerId})`}`
        : `runner ${stop.runnerId ?? "(unknown)"} of slot ${stop.slot}`;
    await journal.write({
      pool,
      kind: "runner",
      reason: `${beat.instanceId} stopped ${what}: ${stopReasons[stop.reason]}`,
      details: {
        instance: beat.instanceId,
        slot: stop.slot,
        runnerId: stop.runnerId,
        reason: stop.reason,
        at: stop.at,
      },
      once: `${beat.instanceId}#${stop.slot ?? "-"}#${stop.runnerId ?? "-"}#${stop.reason}#${stop.at}`,
    });
  }
}
