import { describeScope, type RunnerScope } from "../github-api";
import { gitlabSystemId } from "../gitlab-api";
import { type JobKey, jobKeyString, partialEvent } from "../jobs";
import type { PoolConfig } from "../pools";
import { retireInstanceRunners } from "../runners";
import { checkSweepId, type SweepAction, type SweepActOutcome, type SweepDeps, sweepActionSchema } from ".";
import { governedGitHub, listManagers, readableAtForge, readForgeJob, scopeOf, Unknown } from "./forge";
import { isOrphan } from "./survey";

/**
 * The Act step, one due action at a time: a single fresh read of the thing, then the action, or
 * `cleared` when the read says it no longer qualifies, or `refused` when acting could harm work (a
 * busy runner, a job its forge has not ended) or the read could not be made. A dry run journals what
 * it would do and does nothing. Whatever the outcome, the mark goes unless the action was refused.
 */

const text = (error: unknown) => (error instanceof Error ? error.message : String(error));

type Verdict = { kind: "act" } | { kind: "cleared"; why: string } | { kind: "refused"; why: string };

const act = (): Verdict => ({ kind: "act" });
const cleared = (why: string): Verdict => ({ kind: "cleared", why });
const refused = (why: string): Verdict => ({ kind: "refused", why });

function poolNamed(deps: SweepDeps, name: string | null): PoolConfig | undefined {
  return deps.pools.find((pool) => pool.name === name);
}

/** The runner's instance runs (or may run) an agent: it exists, and is not stopped in the warm pool. */
async function instanceLive(deps: SweepDeps, instanceId: string): Promise<boolean> {
  const member = await deps.fleet.lookup(instanceId);
  if (member) return member.lifecycle !== "stopped" && member.lifecycle !== "terminating";
  return deps.fleet.exists(instanceId);
}

async function checkGhostRunner(deps: SweepDeps, action: SweepAction): Promise<Verdict> {
  const github = deps.runners.github;
  if (!github) return refused("no GitHub credentials are configured");
  const scope = scopeOf(action.detail);
  const runners = github(scope);
  const getRunner = runners.getRunner?.bind(runners);
  if (!getRunner) return refused("this GitHub client cannot read a runner");
  const { runner } = await governedGitHub(deps, runners, action.subject, () =>
    getRunner(Number(action.detail.runnerId)),
  );
  if (!runner) return cleared("GitHub has no such runner any more");
  if (runner.name !== action.detail.name) return cleared(`runner ${runner.id} is now ${runner.name}`);
  if (runner.busy) return refused("the runner is busy with a job");
  if (runner.status !== "offline") return cleared("the runner is online");
  if (await instanceLive(deps, String(action.detail.instanceId))) return cleared("its instance is live");
  return act();
}

async function deleteGhostRunner(deps: SweepDeps, action: SweepAction): Promise<SweepActOutcome> {
  const github = deps.runners.github;
  const scope = scopeOf(action.detail);
  const runnerId = Number(action.detail.runnerId);
  const result = await (github as NonNullable<typeof github>)(scope).deleteRunner(runnerId);
  if (result === "busy") return { kind: "refused", action, why: "GitHub says the runner is busy with a job" };
  // What Hearth still recorded of the runner goes with it.
  const instanceId = String(action.detail.instanceId);
  if (typeof action.detail.slot === "number")
    await deps.runners.records.clear(instanceId, action.detail.slot, runnerId);
  for (const removal of await deps.runners.records.removals()) {
    if (removal.forge === "github" && removal.runnerId === runnerId)
      await deps.runners.records.deleteRemoval(removal);
  }
  return {
    kind: "done",
    action,
    calls: [`DeleteRunner(scope=${describeScope(scope)}, id=${runnerId}) → ${result}`],
  };
}

/**
 * Whether the forge has ended every job the ledger (or the instance's last report) has on it. A job
 * the forge cannot be asked about, or that it still runs, keeps the instance.
 */
async function jobsEnded(deps: SweepDeps, instanceId: string, reported: readonly JobKey[]): Promise<Verdict> {
  const jobs = new Map((await deps.ledger.runningOn(instanceId)).map((job) => [jobKeyString(job), job]));
  for (const key of reported) {
    if (jobs.has(jobKeyString(key))) continue;
    const job = await deps.ledger.get(key);
    if (job) jobs.set(jobKeyString(key), job);
    else return refused(`it reported ${key.source} job ${key.id}, which the ledger does not know`);
  }
  for (const [key, job] of jobs) {
    if (!readableAtForge(job)) return refused(`its job ${key} cannot be read from its forge`);
    const read = await readForgeJob(deps, job);
    if (read === "gone") continue;
    const status = read.event?.status;
    if (status !== "completed" && status !== "cancelled")
      return refused(`its forge has not ended job ${key} (${status ?? "unknown"})`);
  }
  return act();
}

async function checkOrphan(deps: SweepDeps, action: SweepAction): Promise<Verdict> {
  const instanceId = String(action.detail.instanceId);
  const member = await deps.fleet.lookup(instanceId);
  let cloud: Parameters<typeof isOrphan>[0];
  if (member) cloud = { instance: member, inGroup: true };
  else {
    const pool = poolNamed(deps, action.pool);
    const tagged = pool && deps.fleet.tagged ? await deps.fleet.tagged(pool) : [];
    const instance = tagged.find((candidate) => candidate.id === instanceId);
    if (!instance) return cleared("the instance is gone");
    cloud = { instance, inGroup: false };
  }
  const record = await deps.registry.get(instanceId);
  if (!isOrphan(cloud, record, deps.now().getTime()))
    return cleared(`it is ${cloud.instance.lifecycle}, or it reported within the boot deadline`);
  // Never an instance whose runner is busy: its recorded runners, and those the survey listed.
  const github = deps.runners.github;
  const toRead = new Map<number, RunnerScope>();
  for (const slot of await deps.runners.records.ofInstance(instanceId)) {
    if (slot.runnerId === null) continue;
    if (slot.state === "running") return refused(`its runner ${slot.name} runs a job`);
    toRead.set(slot.runnerId, slot.scope);
  }
  const poolScope = poolNamed(deps, action.pool)?.github;
  for (const listed of String(action.detail.githubRunnerIds ?? "").split(",")) {
    const runnerId = Number(listed);
    if (listed !== "" && Number.isSafeInteger(runnerId) && poolScope && !toRead.has(runnerId))
      toRead.set(runnerId, poolScope);
  }
  for (const [runnerId, scope] of toRead) {
    if (!github) return refused("no GitHub credentials are configured to read its runners");
    const runners = github(scope);
    const getRunner = runners.getRunner?.bind(runners);
    if (!getRunner) return refused("this GitHub client cannot read a runner");
    const { runner } = await governedGitHub(deps, runners, action.subject, () => getRunner(runnerId));
    if (runner?.busy) return refused(`its runner ${runner.name} is busy with a job`);
  }
  return jobsEnded(deps, instanceId, record?.runningJobs ?? []);
}

async function terminateOrphan(deps: SweepDeps, action: SweepAction): Promise<SweepActOutcome> {
  const instanceId = String(action.detail.instanceId);
  const pool = poolNamed(deps, action.pool);
  if (!pool) return { kind: "refused", action, why: `pool ${action.pool} is not configured` };
  // Its runners first: a runner Hearth registered is never left without its instance.
  const calls = [
    ...(await retireInstanceRunners(deps.runners, { instanceId, pool: pool.name, how: "terminated" })).calls,
  ];
  // In a group, it is taken out first (the group launches its replacement), so that terminating it
  // is not undone by the group.
  if (await deps.fleet.lookup(instanceId)) calls.push(...(await deps.fleet.detach(pool, instanceId)));
  calls.push(...(await deps.fleet.terminate(instanceId)));
  return { kind: "done", action, calls };
}

const jobKeyOf = (action: SweepAction): JobKey => ({
  source: action.detail.source === "gitlab" ? "gitlab" : "github",
  id: String(action.detail.id),
});

async function checkStaleJob(deps: SweepDeps, action: SweepAction): Promise<Verdict> {
  const key = jobKeyOf(action);
  const job = await deps.ledger.get(key);
  if (job?.status !== "running") return cleared(`the ledger has it ${job?.status ?? "gone"}`);
  if (job.instanceId && (await instanceLive(deps, job.instanceId))) {
    const record = await deps.registry.get(job.instanceId);
    if (record?.runningJobs.some((running) => running.source === key.source && running.id === key.id))
      return cleared(`${job.instanceId} reports it running`);
  }
  if (readableAtForge(job)) {
    const read = await readForgeJob(deps, job);
    if (read !== "gone") return cleared(`its forge knows it (${read.event?.status ?? "unknown"})`);
  }
  return act();
}

async function closeStaleJob(deps: SweepDeps, action: SweepAction): Promise<SweepActOutcome> {
  const key = jobKeyOf(action);
  const at = deps.now().toISOString();
  // Through the ledger's own merge: a finished status outranks running, and the job then expires
  // with the ledger's finished jobs (its delivery ids with it). A later real event still merges in.
  const { outcome } = await deps.ledger.record(
    partialEvent(key, {
      status: "cancelled",
      conclusion: "stale",
      failureReason: `closed by the sweep: ${action.reason}`,
      finishedAt: at,
    }),
  );
  return { kind: "done", action, calls: [`CloseJob(${jobKeyString(key)}) → ${outcome}`] };
}

async function checkManager(deps: SweepDeps, action: SweepAction): Promise<Verdict> {
  const systemId = String(action.detail.systemId);
  const pool = poolNamed(deps, action.pool);
  if (!pool) return refused(`pool ${action.pool} is not configured`);
  const managers = await listManagers(deps, Number(action.detail.runnerId), action.subject);
  const manager = managers.find((candidate) => candidate.systemId === systemId);
  if (!manager) return cleared("GitLab has no such manager any more");
  if (manager.status === "online") return cleared("the manager is online");
  if (!deps.fleet.tagged) return refused("this fleet driver cannot list the instances Hearth tagged");
  const tagged = await deps.fleet.tagged(pool);
  if (
    tagged.some(
      (instance) => instance.lifecycle !== "terminating" && gitlabSystemId(instance.id) === systemId,
    )
  )
    return cleared("its instance exists");
  return act();
}

async function deleteManager(deps: SweepDeps, action: SweepAction): Promise<SweepActOutcome> {
  const port = deps.runners.gitlab;
  const token = port?.tokenOf(action.pool ?? "");
  if (!port || !token)
    return { kind: "refused", action, why: `no GitLab runner token for pool ${action.pool}` };
  const systemId = String(action.detail.systemId);
  const result = await port.managers.deleteManager(token, systemId);
  for (const removal of await deps.runners.records.removals()) {
    if (removal.forge === "gitlab" && removal.systemId === systemId && removal.pool === action.pool)
      await deps.runners.records.deleteRemoval(removal);
  }
  return { kind: "done", action, calls: [`DeleteRunnerManager(system_id=${systemId}) → ${result}`] };
}

const steps: Record<
  SweepAction["class"],
  | {
      check(deps: SweepDeps, action: SweepAction): Promise<Verdict>;
      run(deps: SweepDeps, action: SweepAction): Promise<SweepActOutcome>;
      would: string;
    }
  | undefined
> = {
  "ghost-runner": { check: checkGhostRunner, run: deleteGhostRunner, would: "delete the runner" },
  "orphan-instance": {
    check: checkOrphan,
    run: terminateOrphan,
    would: "delete its runners and terminate the instance",
  },
  "stale-job": { check: checkStaleJob, run: closeStaleJob, would: "close the job" },
  "offline-manager": { check: checkManager, run: deleteManager, would: "delete the manager" },
  // Stuck jobs are read and applied in the survey: never due.
  "stuck-job": undefined,
};

export async function sweepAct(
  deps: SweepDeps,
  input: { sweepId: string; action: SweepAction },
): Promise<SweepActOutcome> {
  const sweepId = checkSweepId(input?.sweepId, "sweepAct");
  const parsed = sweepActionSchema.safeParse(input?.action);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `sweepAct: not a sweep action (at ${issue?.path.join(".") || "(root)"}: ${issue?.message})`,
    );
  }
  // The fresh read starts from what polling and the survey spent.
  await deps.budget?.refresh();
  // Only what an earlier sweep marked: an action made up elsewhere is refused, and the mark (what the
  // sweep itself recorded), not the input, says what to read and act on.
  const mark = await deps.marks.get(parsed.data.subject);
  const action: SweepAction = mark
    ? {
        class: mark.class,
        subject: mark.subject,
        pool: mark.pool,
        reason: mark.reason,
        detail: mark.detail,
        markedAt: mark.markedAt,
      }
    : parsed.data;
  const step = steps[action.class];
  let outcome: SweepActOutcome;
  if (!mark || mark.sweepId === sweepId || mark.class !== parsed.data.class)
    outcome = { kind: "refused", action, why: "no earlier sweep marked it" };
  else if (!step) outcome = { kind: "refused", action, why: `${action.class} is not acted on` };
  else {
    try {
      const verdict = await step.check(deps, action);
      if (verdict.kind === "cleared") outcome = { kind: "cleared", action, why: verdict.why };
      else if (verdict.kind === "refused") outcome = { kind: "refused", action, why: verdict.why };
      else if (deps.settings.dryRun) outcome = { kind: "dry-run", action };
      else outcome = await step.run(deps, action);
    } catch (error) {
      outcome = {
        kind: "refused",
        action,
        why: error instanceof Unknown ? `the fresh read failed: ${error.message}` : text(error),
      };
    }
  }
  if (outcome.kind === "done" || outcome.kind === "cleared") await deps.marks.clear(action.subject);
  const base = { sweepId, class: action.class, code: action.reason, subject: action.subject };
  switch (outcome.kind) {
    case "done":
      await deps.journal.write({
        pool: action.pool,
        kind: "sweep",
        reason: `${action.class} ${action.subject} (${action.reason}): ${step?.would ?? "acted"}, after a fresh read`,
        details: { ...base, outcome: "done" },
        calls: outcome.calls,
      });
      break;
    case "dry-run":
      await deps.journal.write({
        pool: action.pool,
        kind: "sweep",
        reason: `dry run: would ${step?.would ?? "act on"} ${action.subject} (${action.class}: ${action.reason})`,
        details: { ...base, outcome: "dry-run", dryRun: true },
      });
      break;
    case "cleared":
    case "refused":
      await deps.journal.write({
        pool: action.pool,
        kind: "sweep",
        reason: `${outcome.kind === "cleared" ? "cleared" : "refused"} ${action.subject} (${action.class}): ${outcome.why}`,
        details: { ...base, outcome: outcome.kind },
      });
      break;
  }
  return outcome;
}
