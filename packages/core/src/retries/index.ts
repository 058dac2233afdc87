import type { InstanceRegistry } from "../instances";
import { isTerminal, type Job, type JobKey, jobKeyString, partialEvent } from "../jobs";
import type { Journal } from "../journal";
import type { Ledger } from "../ledger";
import { DEFAULT_RETRY_INTERRUPTED, lastRetry, type PoolConfig, routeJob } from "../pools";
import { gitlabStatusToJobStatus } from "../sources/gitlab";
import { active, expired, type Gate, gateOpen, HOLD_MAX_SECONDS, type Hold, type RetryHolds } from "./holds";
import type { RetryRecords } from "./records";

export {
  active,
  createRetryHolds,
  expired,
  type Gate,
  gateOpen,
  HOLD_CONFIRM_SECONDS,
  HOLD_MAX_SECONDS,
  type Hold,
  type HoldState,
  type RetryHolds,
} from "./holds";
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
 *
 * In a pool whose `retryOnDemand` is on, a job's last retry (`lastRetry`) is held (`holds.ts`): the
 * pool's spot runners stop claiming, and the call waits (outcome `held`) until the gate finds none
 * that could take the retry. Earlier retries are asked at once and run wherever they are claimed.
 * `retryHeld` tries a pool's waiting retries again; the heartbeat and every ScaleFleet run call it.
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
  registry: Pick<InstanceRegistry, "get" | "inPool">;
  journal: Journal;
  records: RetryRecords;
  pools: readonly PoolConfig[];
  forges: RetryForges;
  now: () => Date;
  /** Counts a retry asked of a forge (the `Retries` metric in AWS). */
  retried?: (pool: string) => void;
  /** The retry hold (`holds.ts`); absent: no retry is held, each is asked at once. */
  holds?: RetryHolds | undefined;
  /**
   * Starts a ScaleFleet run for a pool whose held retry was just asked, counting no spare slot: the
   * spot slots a spare count may stand for do not claim it, so on-demand capacity must be planned.
   */
  requestRun?: ((pool: string) => Promise<unknown>) | undefined;
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
  | { kind: "unavailable"; reason: string }
  /** The retry waits for its pool's spot runners to stop claiming (`retryHeld` asks it later). */
  | { kind: "held"; pool: string };

const poolOf = (job: Job, pools: readonly PoolConfig[]): PoolConfig | undefined => {
  const route = routeJob(job, pools);
  return "pool" in route ? pools.find((pool) => pool.name === route.pool) : undefined;
};

/** An interrupted job the forge has ended as failed, which Hearth has not retried yet. */
export const needsRetry = (job: Job): boolean =>
  job.status === "completed" && job.conclusion === "failure" && !!job.interruption && !job.retry;

/**
 * What follows a recorded job event: the retry of an interrupted job that failed, or, for a GitHub
 * job of a re-run attempt, its link to the interrupted job it retries. A retry's job that runs or ends
 * ends its pool's hold for it.
 */
export async function retryAfterJobRecorded(deps: RetryDeps, job: Job): Promise<RetryOutcome> {
  await retryStarted(deps, job);
  if (needsRetry(job)) {
    const pool = poolOf(job, deps.pools);
    const limit = pool?.retryInterrupted ?? DEFAULT_RETRY_INTERRUPTED;
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
  if (job.source === "github" && job.attempt > 1 && !job.retryOf) {
    const linked = await linkRerunJob(deps, job);
    if (linked.kind === "linked") await retryStarted(deps, { ...job, retryOf: linked.retryOf });
    return linked;
  }
  return { kind: "none" };
}

/**
 * Whether a job's retry is held: a hold is wired, its pool puts retries on demand, and the retry is
 * the last the pool allows (`lastRetry`), `retriesBefore` being the retries the job had already.
 */
const holding = (deps: RetryDeps, pool: PoolConfig, retriesBefore: number): boolean =>
  !!deps.holds && pool.retryOnDemand && lastRetry(pool, retriesBefore + 1);

const heldJob = (source: Job["source"], id: string) => `${source} job ${id}`;

/**
 * Holds the pool for the job's retry (if it is not already) and asks the gate. A hold that ended
 * (its hour passed) holds nothing: the retry goes.
 */
async function holdAndGate(deps: RetryDeps, pool: PoolConfig, job: JobKey, begin: boolean): Promise<Gate> {
  const holds = deps.holds as RetryHolds;
  let hold: Hold | undefined;
  if (begin) {
    const begun = await holds.begin(pool.name, job);
    hold = begun.hold;
    if (begun.began) await noteHolding(deps, pool.name, job);
  } else hold = await holds.get(pool.name, job);
  const now = deps.now().getTime();
  if (!hold || !active(hold, now)) return { open: true, why: "no-spot" };
  const gate = gateOpen(await deps.registry.inPool(pool.name), hold.since, now);
  if (gate.open && gate.why === "unconfirmed") {
    await deps.journal.write({
      once: `hold-unconfirmed#${pool.name}#${job.source}#${job.id}`,
      pool: pool.name,
      kind: "retry",
      reason: `the retry of ${heldJob(job.source, job.id)} is placed without the confirmation of ${gate.unconfirmed.join(", ")} that it stopped claiming (an agent before protocol 3, or one not answering)`,
      details: { source: job.source, job: job.id, unconfirmed: gate.unconfirmed.join(",") },
    });
  }
  return gate;
}

/** The pool's flag went up: the journal says the pool holds its spot runners, and for which retry. */
async function noteHolding(deps: RetryDeps, pool: string, job: JobKey): Promise<void> {
  if (!(await deps.holds?.flag(pool, true))) return;
  await deps.journal.write({
    pool,
    kind: "retry",
    reason: `${pool} holds its spot runners: the retry of ${heldJob(job.source, job.id)} waits for on-demand capacity`,
    details: { source: job.source, job: job.id, holding: true },
  });
}

/** A hold ended: if none holds the pool any more, the journal says it stopped holding. */
async function noteEnded(deps: RetryDeps, pool: string, why: string): Promise<void> {
  const holds = deps.holds;
  if (!holds) return;
  const now = deps.now().getTime();
  if ((await holds.open(pool)).some((hold) => active(hold, now))) return;
  if (await holds.flag(pool, false)) {
    await deps.journal.write({
      pool,
      kind: "retry",
      reason: `${pool} no longer holds its spot runners: ${why}`,
      details: { holding: false },
    });
  }
  // A hold that began between the read and the flag's write would be left unjournaled: say it again.
  const again = (await holds.open(pool)).find((hold) => active(hold, deps.now().getTime()));
  if (again) await noteHolding(deps, pool, { source: again.source, id: again.jobId });
}

/**
 * A job that retries another runs or has ended: the hold for it ends (the spot runners claim again),
 * and the journal says on which capacity it ran, once its instance is known.
 */
async function retryStarted(deps: RetryDeps, job: Job): Promise<void> {
  if (!job.retryOf || (job.status !== "running" && !isTerminal(job.status))) return;
  const pool = poolOf(job, deps.pools);
  if (!pool) return;
  if (deps.holds) {
    const ended = await deps.holds.end(
      pool.name,
      { source: job.source, id: job.retryOf },
      `its retry, ${heldJob(job.source, job.id)}, is ${job.status}`,
    );
    if (ended) {
      await noteEnded(
        deps,
        pool.name,
        `the retry of ${heldJob(job.source, job.retryOf)} (${heldJob(job.source, job.id)}) is ${job.status}`,
      );
    }
  }
  if (!job.instanceId) return;
  const instance = await deps.registry.get(job.instanceId);
  if (!instance) return;
  await deps.journal.write({
    once: `retry-ran#${job.source}#${job.id}`,
    pool: pool.name,
    kind: "retry",
    reason: `${heldJob(job.source, job.id)}, the retry of interrupted job ${job.retryOf}, ran on ${instance.market} capacity (${instance.id}, ${instance.group} group)`,
    details: {
      source: job.source,
      job: job.id,
      retryOf: job.retryOf,
      instance: instance.id,
      market: instance.market,
      group: instance.group,
    },
  });
}

/** Held retries were asked of their forge: held until their jobs run, and the pool plans on-demand capacity. */
async function placed(deps: RetryDeps, pool: string, jobs: readonly JobKey[]): Promise<void> {
  for (const job of jobs) await deps.holds?.mark(pool, job, "placed");
  try {
    await deps.requestRun?.(pool);
  } catch (error) {
    // The minute tick starts a run for the queued retry all the same.
    await deps.journal.write({
      pool,
      kind: "error",
      reason: `could not start a ScaleFleet run for a held retry: ${message(error)}`,
    });
  }
}

/** Whether the pool holds its spot runners now, and whether it has retries waiting to be asked. */
export async function holdState(
  deps: Pick<RetryDeps, "holds" | "now">,
  pool: string,
): Promise<{ held: boolean; pending: boolean }> {
  if (!deps.holds) return { held: false, pending: false };
  const now = deps.now().getTime();
  const open = await deps.holds.open(pool);
  return {
    held: open.some((hold) => active(hold, now)),
    // An expired hold is pending too: `retryHeld` ends it, and the journal says the pool stopped. So
    // is an unheld retry whose call is not made yet.
    pending: open.some(
      (hold) =>
        (active(hold, now) && hold.state === "pending") || hold.state === "unheld" || expired(hold, now),
    ),
  };
}

/**
 * Tries the pool's held retries again: each pending one whose gate is open now is asked of its forge
 * (claims make concurrent callers ask once), and holds past `HOLD_MAX_SECONDS` end.
 */
export async function retryHeld(deps: RetryDeps, poolName: string): Promise<RetryOutcome[]> {
  const holds = deps.holds;
  if (!holds) return [];
  const outcomes: RetryOutcome[] = [];
  const runs = new Set<string>();
  let ended: string | null = null;
  for (const hold of await holds.open(poolName)) {
    const key: JobKey = { source: hold.source, id: hold.jobId };
    const what = heldJob(hold.source, hold.jobId);
    if (expired(hold, deps.now().getTime())) {
      if (await holds.end(poolName, key, "expired")) {
        ended = `the retry of ${what} did not start within ${HOLD_MAX_SECONDS / 60} minutes`;
      }
      continue;
    }
    if (hold.state !== "pending" && hold.state !== "unheld") continue;
    const job = await deps.ledger.get(key);
    if (job?.source === "gitlab" && needsRetry(job)) {
      outcomes.push(await retryAfterJobRecorded(deps, job));
    } else if (job?.source === "github" && needsRetry(job)) {
      const run = `${job.project}#${job.pipelineId}#${job.attempt}`;
      if (runs.has(run)) continue;
      runs.add(run);
      outcomes.push(await rerun(deps, job.project, job.pipelineId, job.attempt, false));
    } else if (job?.retry) {
      // Asked by another path (a crash between the call and the mark): held until its job runs, or,
      // unheld, done.
      if (hold.state === "unheld") await holds.end(poolName, key, "asked");
      else await holds.mark(poolName, key, "placed");
    } else if (await holds.end(poolName, key, "no retry is wanted")) {
      ended = `the retry of ${what} is not wanted any more`;
    }
  }
  if (ended) await noteEnded(deps, poolName, ended);
  return outcomes;
}

async function retryGitLab(deps: RetryDeps, job: Job, pool: PoolConfig | undefined): Promise<RetryOutcome> {
  const forge = deps.forges.gitlab;
  if (!forge || !job.projectId) {
    return { kind: "unavailable", reason: "no GitLab API is configured to retry jobs with" };
  }
  const held = !!pool && holding(deps, pool, job.retryNumber ?? 0);
  if (held && pool && !(await holdAndGate(deps, pool, job, true)).open)
    return { kind: "held", pool: pool.name };
  // Not held: recorded all the same, so that a failed call is tried again (`retryHeld`).
  if (!held && pool) await deps.holds?.begin(pool.name, job, "unheld");
  if (!(await deps.records.claimGitLab(job.id))) return { kind: "none" };
  let created: { id: string; status: string | null };
  try {
    created = await forge.retryJob(job.projectId, job.id);
  } catch (error) {
    await deps.records.settleGitLab(job.id, { error: message(error) });
    await deps.journal.write({
      pool: pool?.name ?? null,
      kind: "error",
      reason: `could not retry interrupted gitlab job ${job.id}: ${message(error)}; tried again at its next event${deps.holds && pool ? " or its pool's next heartbeat" : ""}`,
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
  if (pool && held) await placed(deps, pool.name, [job]);
  else if (pool) await deps.holds?.end(pool.name, job, "asked");
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
  if (pool && holding(deps, pool, job.retryNumber ?? 0)) {
    // The run may have completed already (webhooks come in any order): its re-run may be due now.
    const begun = await deps.holds?.begin(pool.name, job);
    if (begun?.began) await noteHolding(deps, pool.name, job);
  } else if (pool) await deps.holds?.begin(pool.name, job, "unheld");
  return rerun(deps, job.project, job.pipelineId, job.attempt, false);
}

type RunJob = { jobId: string; pool: string | null; retryNumber: number };

/** The run's interrupted jobs whose retries are held (`held`) or recorded unheld, each with its pool. */
const runJobs = (deps: RetryDeps, jobs: readonly RunJob[], held: boolean) =>
  jobs.flatMap((entry) => {
    const pool = deps.pools.find((p) => p.name === entry.pool);
    if (!pool || !deps.holds || holding(deps, pool, entry.retryNumber) !== held) return [];
    return [{ key: { source: "github" as const, id: entry.jobId }, pool }];
  });

/**
 * Re-runs a run attempt's failed jobs, once: when its record is awaiting and this caller claims it.
 * GitHub's 403 (not completed yet) leaves it awaiting its `workflow_run`. Held jobs of the run wait
 * for their pools' gates first; `due`: the run has just completed, so their holds begin again.
 */
async function rerun(
  deps: RetryDeps,
  repository: string,
  runId: string,
  attempt: number,
  due: boolean,
  /** Whether a refusal as not completed may be asked again once (see below). */
  mayAskAgain = true,
): Promise<RetryOutcome> {
  const run = await deps.records.run(repository, runId, attempt);
  if (!run) return { kind: "none" };
  // The run's record is written a write before its first interrupted job: that job's own call, which
  // follows, asks the re-run (and knows whether its pool holds it).
  if (!run.jobs.length) return { kind: "awaiting-run" };
  if (run.state === "done") {
    // Re-run already (a job whose failure arrived after its run's): it was retried with the others.
    await markRetried(deps, run.jobs, run.rerunAt ?? deps.now().toISOString());
    return { kind: "retried", newJobId: null };
  }
  const forge = deps.forges.github;
  if (!forge)
    return { kind: "unavailable", reason: "no GitHub credentials are configured to re-run jobs with" };
  const held = runJobs(deps, run.jobs, true);
  const unheld = runJobs(deps, run.jobs, false);
  for (const { key, pool } of held) {
    // A last retry's hold let go while the run had not completed: the re-run waits for the run's
    // completion, which holds the pool again, even when an earlier retry of the run asks it first.
    if (!due && (await deps.holds?.get(pool.name, key))?.state === "awaiting")
      return { kind: "awaiting-run" };
    if (!(await holdAndGate(deps, pool, key, due)).open) return { kind: "held", pool: pool.name };
  }
  // Unheld retries of a run that has just completed are due again (tried until the call is made).
  if (due) for (const { key, pool } of unheld) await deps.holds?.begin(pool.name, key, "unheld");
  if (!(await deps.records.claimRun(repository, runId, attempt))) return { kind: "awaiting-run" };
  let answer: "rerun" | "not-completed";
  try {
    answer = await forge.rerunFailedJobs(repository, runId);
  } catch (error) {
    await deps.records.settleRun(repository, runId, attempt, "awaiting", message(error));
    await deps.journal.write({
      pool: run.jobs[0]?.pool ?? null,
      kind: "error",
      reason: `could not re-run the failed jobs of ${repository} run ${runId}: ${message(error)}; tried again at the run's next event${held.length || unheld.length ? " or its pool's next heartbeat" : ""}`,
      details: { source: "github", run: runId, attempt },
    });
    return { kind: "failed", error: message(error) };
  }
  if (answer === "not-completed") {
    await deps.records.settleRun(repository, runId, attempt, "awaiting");
    // Not due before the run completes: its spot runners claim again meanwhile, and no unheld retry
    // is asked again until then.
    for (const { key, pool } of [...held, ...unheld]) await deps.holds?.mark(pool.name, key, "awaiting");
    for (const pool of new Set(held.map((entry) => entry.pool.name))) {
      await noteEnded(deps, pool, `${repository} run ${runId} has not completed; its re-run waits for it`);
    }
    // The run's completion may have arrived while this call held the claim: it could not take it,
    // and no later event comes. Ask once more now that the run is known to have completed.
    const after = await deps.records.run(repository, runId, attempt);
    if (mayAskAgain && after?.completedAt) return rerun(deps, repository, runId, attempt, true, false);
    return { kind: "awaiting-run" };
  }
  await deps.records.settleRun(repository, runId, attempt, "done");
  // A job whose failure was added while the re-run was asked is in the record now, not in `run`.
  const settled = await deps.records.run(repository, runId, attempt);
  const placedJobs = runJobs(deps, settled?.jobs ?? run.jobs, true);
  for (const pool of new Set(placedJobs.map((entry) => entry.pool.name))) {
    await placed(
      deps,
      pool,
      placedJobs.filter((entry) => entry.pool.name === pool).map((entry) => entry.key),
    );
  }
  for (const { key, pool } of runJobs(deps, settled?.jobs ?? run.jobs, false))
    await deps.holds?.end(pool.name, key, "asked");
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
  await deps.records.noteRunCompleted(run.repository, run.runId, run.attempt);
  return rerun(deps, run.repository, run.runId, run.attempt, true);
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
