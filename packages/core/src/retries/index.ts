import type { InstanceRegistry } from "../instances";
import { isTerminal, type Job, type JobKey, jobKeyString, partialEvent } from "../jobs";
import type { Journal } from "../journal";
import type { Ledger } from "../ledger";
import { type PoolConfig, routeJob } from "../pools";
import { gitlabStatusToJobStatus } from "../sources/gitlab";
import type { RetryRecords } from "./records";

export { createRetryRecords, type RetryRecords, STALE_CLAIM_MS } from "./records";

/**
 * Retries of jobs that a spot interruption took down. A job running on an instance that got a spot
 * warning is marked `interruption` (`markJobsInterrupted`). When its forge has ended it as failed, it
 * is retried, at most `retryInterrupted` times along its chain of retries:
 *
 * - GitLab: `POST /projects/:id/jobs/:job_id/retry` at once (GitLab retries a finished job); the new
 *   job is recorded `retryOf` the old, the old gets `retry: { at, newJobId }`.
 * - GitHub: a job is re-run only with its whole run, and only once the run has completed (the rerun
 *   endpoints answer 403 before). The run attempt is recorded as awaiting; `rerun-failed-jobs` is
 *   asked at once (the run may have completed already: webhooks come in any order) and again when
 *   the run's `workflow_run` `completed` arrives, once per run attempt. The next attempt's jobs of the
 *   same name are recorded `retryOf` the interrupted ones.
 *
 * Claims are conditional writes (`records.ts`), so concurrent deliveries of one event retry once.
 */

/** The forges' retry calls, as the hosts wire them (each undefined when that forge is not configured). */
export interface RetryForges {
  gitlab?:
    | {
        /** `POST /projects/:id/jobs/:job_id/retry`: the new job. */
        retryJob(projectId: string, jobId: string): Promise<{ id: string; status: string | null }>;
      }
    | undefined;
  github?:
    | {
        /**
         * `POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs`: `not-completed` for
         * GitHub's 403 (the run has not completed); other failures throw.
         */
        rerunFailedJobs(repository: string, runId: string): Promise<"rerun" | "not-completed">;
      }
    | undefined;
}

export interface RetryDeps {
  ledger: Ledger;
  registry: Pick<InstanceRegistry, "get">;
  journal: Journal;
  records: RetryRecords;
  pools: readonly PoolConfig[];
  forges: RetryForges;
  now: () => Date;
  /** Counts a retry asked of a forge (the `Retries` metric in AWS). */
  retried?: (pool: string) => void;
}

const message = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).slice(0, 300);

/**
 * Marks the jobs running on an interrupted instance: the ledger's running jobs on it, and those its
 * last heartbeat reported (a GitLab job's webhook does not name the instance). Idempotent: marking
 * again changes nothing, and the earliest warning is kept. Returns the jobs marked.
 */
export async function markJobsInterrupted(
  deps: Pick<RetryDeps, "ledger" | "registry">,
  notice: { instanceId: string; pool: string; at: string },
): Promise<JobKey[]> {
  const { ledger, registry } = deps;
  const running = await ledger.runningOn(notice.instanceId);
  const reported = (await registry.get(notice.instanceId))?.runningJobs ?? [];
  const keys = new Map<string, JobKey>();
  for (const job of [...running, ...reported]) {
    keys.set(jobKeyString(job), { source: job.source, id: job.id });
  }
  const marked: JobKey[] = [];
  const interruption = { at: new Date(notice.at).toISOString(), instanceId: notice.instanceId };
  for (const key of keys.values()) {
    const current = await ledger.get(key);
    // A job that finished before the warning, or runs elsewhere, was not interrupted here. One that
    // ended after it (its failure may arrive before the warning is handled) was.
    const finishedBefore =
      current?.finishedAt != null && Date.parse(current.finishedAt) < Date.parse(interruption.at);
    if (
      current &&
      isTerminal(current.status) &&
      !current.interruption &&
      (finishedBefore || !current.finishedAt)
    )
      continue;
    if (current?.instanceId && current.instanceId !== notice.instanceId) continue;
    await ledger.record(
      current
        ? partialEvent(key, { interruption })
        : partialEvent(key, { status: "running", instanceId: notice.instanceId, interruption }),
    );
    marked.push(key);
  }
  return marked;
}

export type RetryOutcome =
  | { kind: "none" }
  | { kind: "spent"; pool: string | null }
  | { kind: "retried"; newJobId: string | null }
  | { kind: "awaiting-run" }
  | { kind: "linked"; retryOf: string }
  | { kind: "failed"; error: string }
  | { kind: "unavailable"; reason: string };

const poolOf = (job: Job, pools: readonly PoolConfig[]): PoolConfig | undefined => {
  const route = routeJob(job, pools);
  return "pool" in route ? pools.find((pool) => pool.name === route.pool) : undefined;
};

/** An interrupted job the forge has ended as failed, which Hearth has not retried yet. */
export const needsRetry = (job: Job): boolean =>
  job.status === "completed" && job.conclusion === "failure" && !!job.interruption && !job.retry;

/**
 * What follows a recorded job event: the retry of an interrupted job that failed, or, for a GitHub
 * job of a re-run attempt, its link to the interrupted job it retries.
 */
export async function retryAfterJobRecorded(deps: RetryDeps, job: Job): Promise<RetryOutcome> {
  if (needsRetry(job)) {
    const pool = poolOf(job, deps.pools);
    const limit = pool?.retryInterrupted ?? 1;
    if ((job.retryNumber ?? 0) >= limit) {
      await deps.journal.write({
        pool: pool?.name ?? null,
        kind: "retry",
        reason: `${job.source} job ${job.id} was interrupted and failed; not retried: its ${limit} retr${limit === 1 ? "y is" : "ies are"} spent`,
        details: { source: job.source, job: job.id, retries: job.retryNumber ?? 0 },
      });
      return { kind: "spent", pool: pool?.name ?? null };
    }
    return job.source === "gitlab" ? retryGitLab(deps, job, pool) : awaitRerun(deps, job, pool);
  }
  if (job.source === "github" && job.attempt > 1 && !job.retryOf) return linkRerunJob(deps, job);
  return { kind: "none" };
}

async function retryGitLab(deps: RetryDeps, job: Job, pool: PoolConfig | undefined): Promise<RetryOutcome> {
  const forge = deps.forges.gitlab;
  if (!forge || !job.projectId) {
    return { kind: "unavailable", reason: "no GitLab API is configured to retry jobs with" };
  }
  if (!(await deps.records.claimGitLab(job.id))) return { kind: "none" };
  let created: { id: string; status: string | null };
  try {
    created = await forge.retryJob(job.projectId, job.id);
  } catch (error) {
    await deps.records.settleGitLab(job.id, { error: message(error) });
    await deps.journal.write({
      pool: pool?.name ?? null,
      kind: "error",
      reason: `could not retry interrupted gitlab job ${job.id}: ${message(error)}; tried again at its next event`,
      details: { source: "gitlab", job: job.id },
    });
    return { kind: "failed", error: message(error) };
  }
  const at = deps.now().toISOString();
  const retryNumber = (job.retryNumber ?? 0) + 1;
  const status = (created.status && gitlabStatusToJobStatus(created.status)) || "waiting";
  // The new job is recorded before its webhooks arrive: the planner then knows it is a retry.
  await deps.ledger.record(
    partialEvent(
      { source: "gitlab", id: created.id },
      {
        project: job.project,
        projectId: job.projectId,
        pipelineId: job.pipelineId,
        name: job.name,
        // A retry asks for the tags its job asked for.
        labels: job.labels,
        labelsKnown: job.labelsKnown,
        status,
        queuedAt: status === "queued" ? at : null,
        retryOf: job.id,
        retryNumber,
      },
    ),
  );
  await deps.ledger.record(partialEvent(job, { retry: { at, newJobId: created.id } }));
  await deps.records.settleGitLab(job.id, { newJobId: created.id });
  await journalRetried(deps, pool, job, created.id);
  return { kind: "retried", newJobId: created.id };
}

async function journalRetried(
  deps: RetryDeps,
  pool: PoolConfig | undefined,
  job: Job,
  newJobId: string | null,
): Promise<void> {
  // Once per job: a GitHub job is marked by whichever caller sees its run's re-run done.
  const entry = await deps.journal.write({
    once: `retry#${job.source}#${job.id}`,
    pool: pool?.name ?? null,
    kind: "retry",
    reason:
      job.source === "gitlab"
        ? `gitlab job ${job.id} interrupted, retried as job ${newJobId} (spot warning for ${job.interruption?.instanceId})`
        : `github job ${job.id} interrupted, retried: run ${job.pipelineId} re-ran its failed jobs (spot warning for ${job.interruption?.instanceId})`,
    details: {
      source: job.source,
      job: job.id,
      newJob: newJobId,
      instance: job.interruption?.instanceId ?? null,
      retry: (job.retryNumber ?? 0) + 1,
    },
  });
  if (entry && pool) deps.retried?.(pool.name);
}

async function awaitRerun(deps: RetryDeps, job: Job, pool: PoolConfig | undefined): Promise<RetryOutcome> {
  await deps.records.addRerunJob(job.project, job.pipelineId, job.attempt, {
    jobId: job.id,
    name: job.name,
    retryNumber: job.retryNumber ?? 0,
    pool: pool?.name ?? null,
  });
  return rerun(deps, job.project, job.pipelineId, job.attempt);
}

/**
 * Re-runs a run attempt's failed jobs, once: when its record is awaiting and this caller claims it.
 * GitHub's 403 (not completed yet) leaves it awaiting its `workflow_run`.
 */
async function rerun(
  deps: RetryDeps,
  repository: string,
  runId: string,
  attempt: number,
): Promise<RetryOutcome> {
  const run = await deps.records.run(repository, runId, attempt);
  if (!run) return { kind: "none" };
  if (run.state === "done") {
    // Re-run already (a job whose failure arrived after its run's): it was retried with the others.
    await markRetried(deps, run.jobs, run.rerunAt ?? deps.now().toISOString());
    return { kind: "retried", newJobId: null };
  }
  const forge = deps.forges.github;
  if (!forge)
    return { kind: "unavailable", reason: "no GitHub credentials are configured to re-run jobs with" };
  if (!(await deps.records.claimRun(repository, runId, attempt))) return { kind: "awaiting-run" };
  let answer: "rerun" | "not-completed";
  try {
    answer = await forge.rerunFailedJobs(repository, runId);
  } catch (error) {
    await deps.records.settleRun(repository, runId, attempt, "awaiting", message(error));
    await deps.journal.write({
      pool: run.jobs[0]?.pool ?? null,
      kind: "error",
      reason: `could not re-run the failed jobs of ${repository} run ${runId}: ${message(error)}; tried again at the run's next event`,
      details: { source: "github", run: runId, attempt },
    });
    return { kind: "failed", error: message(error) };
  }
  if (answer === "not-completed") {
    await deps.records.settleRun(repository, runId, attempt, "awaiting");
    return { kind: "awaiting-run" };
  }
  await deps.records.settleRun(repository, runId, attempt, "done");
  // A job whose failure was added while the re-run was asked is in the record now, not in `run`.
  const settled = await deps.records.run(repository, runId, attempt);
  await markRetried(deps, settled?.jobs ?? run.jobs, settled?.rerunAt ?? deps.now().toISOString());
  return { kind: "retried", newJobId: null };
}

async function markRetried(
  deps: RetryDeps,
  jobs: readonly { jobId: string; pool: string | null }[],
  at: string,
): Promise<void> {
  for (const entry of jobs) {
    const key = { source: "github" as const, id: entry.jobId };
    const before = await deps.ledger.get(key);
    // The next attempt's job may have been linked first (its webhook can beat the re-run's answer):
    // the retry is kept as linked, and still journaled and counted (once per job: `journalRetried`).
    // A link written between the read and this write leaves the record unchanged: read it again.
    const job = before?.retry
      ? before
      : ((await deps.ledger.record(partialEvent(key, { retry: { at, newJobId: null } }))).job ??
        (await deps.ledger.get(key)));
    if (job) {
      await journalRetried(
        deps,
        deps.pools.find((pool) => pool.name === entry.pool),
        job,
        null,
      );
    }
  }
}

/** A GitHub run's `workflow_run` `completed`: its awaiting re-run goes now, if it has one. */
export async function retryAfterRunCompleted(
  deps: RetryDeps,
  run: { repository: string; runId: string; attempt: number },
): Promise<RetryOutcome> {
  return rerun(deps, run.repository, run.runId, run.attempt);
}

/** A job of a re-run attempt whose name is an interrupted job's of the attempt before: its retry. */
async function linkRerunJob(deps: RetryDeps, job: Job): Promise<RetryOutcome> {
  const previous = await deps.records.run(job.project, job.pipelineId, job.attempt - 1);
  if (previous?.state !== "done") return { kind: "none" };
  const old = previous.jobs.find((entry) => entry.name === job.name);
  if (!old) return { kind: "none" };
  await deps.ledger.record(partialEvent(job, { retryOf: old.jobId, retryNumber: old.retryNumber + 1 }));
  await deps.ledger.record(
    partialEvent(
      { source: "github", id: old.jobId },
      { retry: { at: previous.rerunAt ?? deps.now().toISOString(), newJobId: job.id } },
    ),
  );
  return { kind: "linked", retryOf: old.jobId };
}
