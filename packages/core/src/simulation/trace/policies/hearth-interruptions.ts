import type { EventQueue } from "../events";
import type { Fleet, SimInstance, SimJob } from "../fleet";
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
 * - A job is retried at most `retryInterrupted` times (pool setting, default 1); an interrupted job
 *   with no retry left is lost. A rerun re-runs every failed job of the run, as GitHub does, so a job
 *   of a run that still has a retry is queued again even if its own are spent.
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
}

export const defaultInterruptionSettings: InterruptionSettings = {
  retryInterrupted: 1,
  retryOnDemand: true,
  stopBeforeDeadlineSeconds: 30,
  forge: "auto",
};

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
  private readonly runs = new Map<string, RunAttempt>();

  constructor(
    private readonly fleet: Fleet,
    private readonly clock: EventQueue,
    private readonly model: FleetModel,
    private readonly settings: InterruptionSettings,
    jobs: readonly SimJob[],
    /** HandleInterruption's Drain step: detach the instance from its group and start a ScaleFleet run. */
    private readonly detach: (instance: SimInstance) => void,
  ) {
    for (const job of jobs) {
      if (forgeOf(job, settings.forge) !== "github") continue;
      const key = runKey(job);
      const run = this.runs.get(key);
      if (run === undefined) this.runs.set(key, { open: 1, failed: [] });
      else run.open++;
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
        if (job.retries < this.settings.retryInterrupted) this.fleet.retry(job);
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
        for (const job of failed) this.fleet.retry(job);
      } else {
        for (const job of failed) this.fleet.abandon(job);
      }
    });
  }

  private runOf(job: SimJob): RunAttempt {
    const run = this.runs.get(runKey(job));
    if (run === undefined) throw new Error(`job ${job.trace.id} belongs to no known run`);
    return run;
  }
}
