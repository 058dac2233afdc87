import { DEFAULT_RETRY_INTERRUPTED, lastRetry } from "../../../pools";
import { HOLD_CONFIRM_SECONDS, HOLD_MAX_SECONDS } from "../../../retries/holds";
import type { EventQueue } from "../events";
import type { Fleet, SimInstance, SimJob, SimPool } from "../fleet";
import type { FleetModel } from "../model";

/**
 * Hearth's handling of a spot interruption, as built, in the trace simulator:
 * - At the warning the agent sees the notice in IMDS and stops its listening runners: no new job
 *   lands on the instance (`Fleet.drain`).
 * - The EventBridge event reaches HandleInterruption after the model's webhook delay. It detaches the
 *   instance from its group (`DetachInstances`, desired capacity unchanged), so the group launches the
 *   replacement at once, and starts a ScaleFleet run for the pool (`detach`, given by the policy).
 * - The agent stops the runners of jobs still running `stopBeforeDeadlineSeconds` (30 s, the agent's
 *   default) before the deadline: those jobs are interrupted, and the forge records them failed then.
 * - The forge ends the job, and only then can it be retried. GitLab: at once (the runner's stop fails
 *   the job); its webhook reaches Hearth, which calls `jobs/:id/retry`. GitHub: a job can be re-run
 *   only once its whole workflow run has completed; when it has, the `workflow_run` webhook reaches
 *   Hearth, which calls `rerun-failed-jobs`, and every failed job of the run is queued again. A run is
 *   the trace's jobs sharing a `pipeline_id` (a job without one is a run alone); jobs of a run that
 *   arrive later keep it open until they finish.
 * - A job is retried at most `retryInterrupted` times (pool setting, default 2); an interrupted job
 *   with no retry left is lost. A rerun re-runs every failed job of the run, as GitHub does, so a job
 *   of a run that still has a retry is queued again even if its own are spent.
 * - The retry hold (`retryOnDemand` with `retryHold`): when a job's last retry (`lastRetry`) is wanted
 *   (GitLab: the failure's webhook; GitHub: the run's completion's), its pool starts holding; an
 *   earlier retry is made at once, and any listening slot may take it. Each of
 *   its live spot instances hears it at its agent's next heartbeat (every 15 s from the moment it was
 *   ready, so at a time in (0, 15] s that depends on its boot; an instance that boots while the pool
 *   holds hears it at its first heartbeat, at boot) and stops claiming: its free slots, and those that
 *   free later, take no job. The retry (the job queued again; on GitHub the rerun of every failed job
 *   of the run) is made once every ready spot instance of each held pool has confirmed in a heartbeat
 *   at or after the hold's start, at once when there is none, or `HOLD_CONFIRM_SECONDS` after it in
 *   any case. A job's hold ends when the control plane learns that its retry started (the start's
 *   webhook), or `retryHoldMaxSeconds` (the product's `HOLD_MAX_SECONDS`, an hour) after its start;
 *   a pool holds while any job's hold has not ended, and its planner plans with it in `heldPools`.
 *   When the last ends, its spot instances claim again from their next heartbeat.
 * - Rebalance recommendations are not modelled (the fleet model has none), so they are not credited.
 */

export type TraceForge = "github" | "gitlab";
/** `auto`: as routing reads a trace job, GitHub when it has labels, GitLab otherwise. */
export type ForgeChoice = TraceForge | "auto";
export const forgeChoices = ["auto", "github", "gitlab"] as const;

export interface InterruptionSettings {
  /** Pool setting `retryInterrupted`: how many times an interrupted job is retried (0–3). */
  retryInterrupted: number;
  /** Pool setting `retryOnDemand`: a queued retry's new capacity comes from the warm (on-demand) group. */
  retryOnDemand: boolean;
  /** The agent stops a running job's runner this long before a spot deadline. */
  stopBeforeDeadlineSeconds: number;
  /** Whose rules end an interrupted job and allow its retry. */
  forge: ForgeChoice;
  /**
   * With `retryOnDemand`: the pool holds its spot runners (they stop claiming) until the retry has
   * started, and the retry is made only once they have stopped. Off (`--no-retry-hold`): the retry is
   * queued at once and any listening slot may take it.
   */
  retryHold: boolean;
  /** A hold ends this long after it started at the latest (the product's `HOLD_MAX_SECONDS`). */
  retryHoldMaxSeconds: number;
}

export const defaultInterruptionSettings: InterruptionSettings = {
  retryInterrupted: DEFAULT_RETRY_INTERRUPTED,
  retryOnDemand: true,
  stopBeforeDeadlineSeconds: 30,
  forge: "auto",
  retryHold: true,
  retryHoldMaxSeconds: HOLD_MAX_SECONDS,
};

/**
 * The instances a retry hold stops: the pool's spot runners, as the heartbeat holds them (by market),
 * except in the store-volume prototype, whose spot warm group is where a retry's capacity goes.
 */
export const heldBySpotHold = (instance: SimInstance): boolean =>
  instance.market === "spot" && !(instance.group === "warm" && instance.storeVolume);

/** The agent heartbeats every 15 s (docs/PROTOCOL.md, "The heartbeat"). */
export const HEARTBEAT_SECONDS = 15;

/** One interrupted job's hold on its pool. */
interface Hold {
  job: SimJob;
  pool: SimPool;
  since: number;
  ended: boolean;
}

/** A retry call waiting for its pools' spot instances to stop claiming. */
interface PendingRetry {
  since: number;
  pools: SimPool[];
  made: boolean;
  retry: () => void;
}

export function forgeOf(job: SimJob, choice: ForgeChoice): TraceForge {
  if (choice !== "auto") return choice;
  return job.trace.labels.length === 0 ? "gitlab" : "github";
}

/** One attempt of a GitHub workflow run: jobs not yet finished or failed, and the failed ones. */
interface RunAttempt {
  open: number;
  failed: SimJob[];
}

const runKey = (job: SimJob): string =>
  job.trace.pipelineId === "" ? `job:${job.trace.id}` : `run:${job.trace.pipelineId}`;

export class HearthInterruptions {
  /** Each GitHub job's run attempt, by the job's index (looked up at every finish). */
  private readonly runs: (RunAttempt | undefined)[] = [];
  /** Holds not ended, per pool (by index). */
  private readonly holds: Hold[][];
  /** The hold of each job whose retry has not started yet. */
  private readonly holdOf = new Map<SimJob, Hold>();
  /** Retry calls not made yet, per pool (by index). */
  private readonly pending: PendingRetry[][];
  /** Each instance's next modelled heartbeat already scheduled. */
  private readonly beatScheduled = new Map<SimInstance, number>();

  constructor(
    private readonly fleet: Fleet,
    private readonly clock: EventQueue,
    private readonly model: FleetModel,
    private readonly settings: InterruptionSettings,
    jobs: readonly SimJob[],
    /** HandleInterruption's Drain step: detach the instance from its group and start a ScaleFleet run. */
    private readonly detach: (instance: SimInstance) => void,
  ) {
    this.holds = fleet.pools.map(() => []);
    this.pending = fleet.pools.map(() => []);
    const byKey = new Map<string, RunAttempt>();
    for (const job of jobs) {
      if (forgeOf(job, settings.forge) !== "github") continue;
      const key = runKey(job);
      let run = byKey.get(key);
      if (run === undefined) {
        run = { open: 0, failed: [] };
        byKey.set(key, run);
      }
      run.open++;
      this.runs[job.index] = run;
    }
  }

  warning(instance: SimInstance): void {
    this.fleet.drain(instance);
    this.clock.after(this.model.webhookDelaySeconds, () => {
      if (instance.live) this.detach(instance);
    });
    const stopIn = Math.max(0, this.model.spotWarningSeconds - this.settings.stopBeforeDeadlineSeconds);
    const stop = () => {
      if (instance.live) this.fleet.stopJobs(instance);
    };
    if (stopIn === 0) stop();
    else this.clock.after(stopIn, stop);
  }

  /** The fleet cut a job's run short: Hearth takes it over (true). */
  jobInterrupted(job: SimJob): boolean {
    if (forgeOf(job, this.settings.forge) === "gitlab") {
      // The job failed now; its webhook reaches Hearth, which retries it if it may.
      this.clock.after(this.model.webhookDelaySeconds, () => {
        if (job.retries < this.settings.retryInterrupted) this.retry([job]);
        else this.fleet.abandon(job);
      });
      return true;
    }
    const run = this.runOf(job);
    run.open--;
    run.failed.push(job);
    this.settle(run);
    return true;
  }

  jobFinished(job: SimJob): void {
    if (forgeOf(job, this.settings.forge) !== "github") return;
    const run = this.runOf(job);
    run.open--;
    this.settle(run);
  }

  /** A run attempt whose jobs have all finished or failed is completed: rerun its failed jobs, or lose them. */
  private settle(run: RunAttempt): void {
    if (run.open > 0 || run.failed.length === 0) return;
    const failed = run.failed.splice(0);
    // The `workflow_run` completed webhook reaches Hearth, which calls rerun-failed-jobs once.
    this.clock.after(this.model.webhookDelaySeconds, () => {
      if (failed.some((job) => job.retries < this.settings.retryInterrupted)) {
        run.open += failed.length;
        this.retry(failed);
      } else {
        for (const job of failed) this.fleet.abandon(job);
      }
    });
  }

  /** Whether a pool holds its spot runners: the planner's `heldPools`. */
  held(pool: SimPool): boolean {
    return (this.holds[pool.index]?.length ?? 0) > 0;
  }

  /** The agent's first heartbeat, at boot: it claims only if its pool does not hold its spot runners. */
  instanceReady(instance: SimInstance): void {
    if (!this.holding) return;
    this.heartbeat(instance);
  }

  /** A job started: if it is a held retry, the control plane learns it from the start's webhook. */
  jobStarted(job: SimJob): void {
    const hold = this.holdOf.get(job);
    if (hold === undefined) return;
    this.holdOf.delete(job);
    this.clock.after(this.model.webhookDelaySeconds, () => this.end(hold));
  }

  private get holding(): boolean {
    return this.settings.retryOnDemand && this.settings.retryHold;
  }

  /** Retry these interrupted jobs, as one call: held first when the pool setting asks for it. */
  private retry(jobs: SimJob[]): void {
    const queue = () => {
      for (const job of jobs) this.fleet.retry(job);
    };
    // Only last retries are held; a rerun that re-runs one waits for its pool's hold. A job whose
    // retries are spent, re-run with its run, is neither held nor counted as a retry (Hearth does
    // not record it as one).
    const last = jobs.filter(
      (job) => job.retries < this.settings.retryInterrupted && lastRetry(this.settings, job.retries + 1),
    );
    if (!this.holding || last.length === 0) {
      queue();
      return;
    }
    const since = this.clock.now;
    const pools: SimPool[] = [];
    for (const job of last) {
      const hold: Hold = { job, pool: job.pool, since, ended: false };
      this.holdOf.set(job, hold);
      (this.holds[job.pool.index] as Hold[]).push(hold);
      if (!pools.includes(job.pool)) pools.push(job.pool);
      this.clock.after(this.settings.retryHoldMaxSeconds, () => this.end(hold));
    }
    const call: PendingRetry = {
      since,
      pools,
      made: false,
      retry: queue,
    };
    for (const pool of pools) {
      (this.pending[pool.index] as PendingRetry[]).push(call);
      // Every live spot instance hears the hold at its next heartbeat, and confirms it there.
      for (const instance of pool.instances) if (heldBySpotHold(instance)) this.nextHeartbeat(instance);
    }
    this.clock.after(HOLD_CONFIRM_SECONDS, () => this.tryRetry(call));
    this.tryRetry(call);
  }

  /** Makes the retry call if no spot runner of its pools can take it any more. */
  private tryRetry(call: PendingRetry): void {
    if (call.made) return;
    const confirmed =
      this.clock.now - call.since >= HOLD_CONFIRM_SECONDS ||
      call.pools.every((pool) =>
        pool.instances.every(
          (instance) =>
            !heldBySpotHold(instance) ||
            instance.state !== "ready" ||
            (!instance.claiming && instance.lastHeartbeatAt >= call.since),
        ),
      );
    if (!confirmed) return;
    call.made = true;
    for (const pool of call.pools) {
      const list = this.pending[pool.index] as PendingRetry[];
      list.splice(list.indexOf(call), 1);
    }
    call.retry();
  }

  private end(hold: Hold): void {
    if (hold.ended) return;
    hold.ended = true;
    if (this.holdOf.get(hold.job) === hold) this.holdOf.delete(hold.job);
    const list = this.holds[hold.pool.index] as Hold[];
    list.splice(list.indexOf(hold), 1);
    // The last hold ended: the pool's spot instances claim again from their next heartbeat.
    if (list.length === 0)
      for (const instance of hold.pool.instances) if (heldBySpotHold(instance)) this.nextHeartbeat(instance);
  }

  /** Schedules the instance's next heartbeat: every 15 s from the moment it was ready. */
  private nextHeartbeat(instance: SimInstance): void {
    if (!instance.live || instance.readyAt < 0) return; // a booting agent heartbeats at boot
    const now = this.clock.now;
    const at =
      instance.readyAt + HEARTBEAT_SECONDS * (Math.floor((now - instance.readyAt) / HEARTBEAT_SECONDS) + 1);
    if (this.beatScheduled.get(instance) === at) return;
    this.beatScheduled.set(instance, at);
    this.clock.at(at, () => {
      if (this.beatScheduled.get(instance) === at) this.beatScheduled.delete(instance);
      if (instance.live) this.heartbeat(instance);
    });
  }

  /**
   * A heartbeat of a spot instance's agent: the answer's `hold` says whether to claim; the agent stops
   * (or starts) its runners and reports it at once. The heartbeat handler then tries the pool's
   * pending retries.
   */
  private heartbeat(instance: SimInstance): void {
    const pool = instance.pool;
    instance.lastHeartbeatAt = this.clock.now;
    if (heldBySpotHold(instance)) {
      const claiming = !this.held(pool);
      const resumed = claiming && !instance.claiming;
      instance.claiming = claiming;
      if (resumed) this.fleet.dispatch(pool);
    }
    for (const call of [...(this.pending[pool.index] as PendingRetry[])]) this.tryRetry(call);
  }

  private runOf(job: SimJob): RunAttempt {
    const run = this.runs[job.index];
    if (run === undefined) throw new Error(`job ${job.trace.id} belongs to no known run`);
    return run;
  }
}
