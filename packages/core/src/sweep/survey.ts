import { BOOT_GRACE_MS, type FleetInstance, HEARTBEAT_OVERDUE_MS } from "../fleet";
import { describeScope, type RunnerScope } from "../github-api";
import { gitlabSystemId } from "../gitlab-api";
import type { InstanceRecord } from "../instances";
import { isTerminal, type Job, jobKeyString } from "../jobs";
import { type PoolConfig, routeJob } from "../pools";
import { retryAfterJobRecorded } from "../retries";
import {
  checkSweepId,
  type SweepAction,
  type SweepClass,
  type SweepDeps,
  type SweepReason,
  type SweepSurvey,
  sweepClasses,
} from ".";
import {
  listManagers,
  listScopeRunners,
  parseHearthRunnerName,
  readableAtForge,
  readForgeJob,
  scopeDetail,
  Unknown,
} from "./forge";
import type { SweepMark } from "./marks";

/**
 * The sweep's survey: the three listings (the ledger, the cloud, the forges), joined on the ids
 * recorded at registration, and what they say about each thing. Reading a stuck job's state from its
 * forge and applying it is done here (it only tells the ledger what the forge says). Everything
 * destructive is only marked; a mark from an earlier sweep that still holds is due, for the Act step.
 * When any listing is unknown, nothing is marked, cleared or due.
 */

/** Ledger items read at most for the running jobs: a bounded read whatever the ledger holds. */
const RUNNING_READ_LIMIT = 5000;
/**
 * Stuck jobs read from their forges per sweep at most: the rest wait for the next sweep, so that the
 * reads never take the budget the listings need.
 */
export const STUCK_READS_PER_SWEEP = 25;
/**
 * Actions due per sweep at most: the survey travels through Step Functions (256 KB a state), and the
 * marks beyond stay marked, due to the next sweep.
 */
export const DUE_PER_SWEEP = 100;
/** A job the forge ends past its timeout is read from the forge after this much more. */
const FORGE_TIMEOUT_SLACK_MS = 10 * 60_000;

/** What the cloud says of one instance of a pool. */
interface CloudInstance {
  instance: FleetInstance;
  /** A group holds it (Auto Scaling's view); else only EC2 knows it, by Hearth's tags. */
  inGroup: boolean;
}

interface Listings {
  /** By instance id, every pool's instances. */
  cloud: Map<string, CloudInstance>;
  records: Map<string, InstanceRecord>;
  running: Job[];
  unknown: { listing: string; reason: string }[];
  /** The GitHub runners listed under each instance's name (`hearth-<instance>-<slot>`), online or not. */
  runnersByInstance: Map<string, { id: number; busy: boolean }[]>;
}

export type Candidate = Omit<SweepAction, "markedAt">;

const text = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Silent since: the later of its launch (or resume) and its last heartbeat. */
export function silentSince(
  instance: Pick<FleetInstance, "launchedAt">,
  record: InstanceRecord | undefined,
): number {
  const launched = Date.parse(instance.launchedAt);
  const beat = record?.lastHeartbeatAt ? Date.parse(record.lastHeartbeatAt) : Number.NEGATIVE_INFINITY;
  return Math.max(launched, beat);
}

/**
 * An orphan: running (in a group and in service; or, out of every group, anything but terminating),
 * and silent past the boot deadline. A stopped warm-pool instance, one on its way in or out, is not.
 */
export function isOrphan(cloud: CloudInstance, record: InstanceRecord | undefined, now: number): boolean {
  const { instance, inGroup } = cloud;
  const running = inGroup ? instance.lifecycle === "in-service" : instance.lifecycle !== "terminating";
  return running && now - silentSince(instance, record) > BOOT_GRACE_MS;
}

async function listCloudAndLedger(deps: SweepDeps): Promise<Listings> {
  const listings: Listings = {
    cloud: new Map(),
    records: new Map(),
    running: [],
    unknown: [],
    runnersByInstance: new Map(),
  };
  for (const pool of deps.pools) {
    try {
      const observed = await deps.fleet.observe(pool);
      if (!deps.fleet.tagged) throw new Error("this fleet driver cannot list the instances Hearth tagged");
      const tagged = await deps.fleet.tagged(pool);
      for (const instance of tagged) listings.cloud.set(instance.id, { instance, inGroup: false });
      for (const instance of observed.instances) listings.cloud.set(instance.id, { instance, inGroup: true });
    } catch (error) {
      listings.unknown.push({ listing: `cloud:${pool.name}`, reason: text(error) });
    }
    for (const record of await deps.registry.inPool(pool.name)) listings.records.set(record.id, record);
  }
  const running = await deps.ledger.runningOnInstances(RUNNING_READ_LIMIT);
  if (!running.complete) {
    listings.unknown.push({
      listing: "ledger:running-jobs",
      reason: `more than ${RUNNING_READ_LIMIT} jobs running on instances`,
    });
  }
  listings.running = running.jobs;
  return listings;
}

/** A cloud instance that runs (or may run) an agent: anything but terminating or stopped. */
const live = (cloud: CloudInstance | undefined): boolean =>
  cloud !== undefined && cloud.instance.lifecycle !== "terminating" && cloud.instance.lifecycle !== "stopped";

async function ghostRunners(deps: SweepDeps, listings: Listings, candidates: Candidate[]): Promise<void> {
  const github = deps.runners.github;
  if (!github) return;
  // One listing per repository or organization: an organization's listing holds every runner group's.
  const scopes = new Map<string, { scope: RunnerScope; pool: PoolConfig }>();
  for (const pool of deps.pools) {
    if (!pool.github) continue;
    const listed =
      "repository" in pool.github ? pool.github.repository : `organization ${pool.github.organization}`;
    if (!scopes.has(listed)) scopes.set(listed, { scope: pool.github, pool });
  }
  for (const { scope, pool } of scopes.values()) {
    const described = describeScope(scope);
    const listing = `github-runners:${described}`;
    let runners: Awaited<ReturnType<typeof listScopeRunners>>;
    try {
      runners = await listScopeRunners(deps, github(scope), listing);
    } catch (error) {
      listings.unknown.push({ listing, reason: text(error) });
      continue;
    }
    for (const runner of runners) {
      const owner = parseHearthRunnerName(runner.name);
      if (!owner) continue;
      const ofInstance = listings.runnersByInstance.get(owner.instanceId) ?? [];
      ofInstance.push({ id: runner.id, busy: runner.busy });
      listings.runnersByInstance.set(owner.instanceId, ofInstance);
      // Only Hearth's own runners, and only those nothing runs: an online or busy runner is in use.
      if (runner.status !== "offline" || runner.busy) continue;
      if (live(listings.cloud.get(owner.instanceId))) continue;
      candidates.push({
        class: "ghost-runner",
        subject: `github-runner:${described}:${runner.id}`,
        pool:
          listings.cloud.get(owner.instanceId)?.instance.pool ??
          listings.records.get(owner.instanceId)?.pool ??
          pool.name,
        reason: "no-live-instance",
        detail: {
          ...scopeDetail(scope),
          runnerId: runner.id,
          name: runner.name,
          instanceId: owner.instanceId,
          slot: owner.slot,
        },
      });
    }
  }
}

function orphanInstances(deps: SweepDeps, listings: Listings, candidates: Candidate[]): void {
  const now = deps.now().getTime();
  for (const [id, cloud] of listings.cloud) {
    const record = listings.records.get(id);
    if (!isOrphan(cloud, record, now)) continue;
    const runners = listings.runnersByInstance.get(id) ?? [];
    // A runner of it that GitHub says is busy: it runs a job, whatever its heartbeats say.
    if (runners.some((runner) => runner.busy)) continue;
    candidates.push({
      class: "orphan-instance",
      subject: `instance:${id}`,
      pool: cloud.instance.pool,
      reason: "no-heartbeat-past-boot-deadline",
      detail: {
        instanceId: id,
        inGroup: cloud.inGroup ? 1 : 0,
        lastHeartbeatAt: record?.lastHeartbeatAt ?? null,
        launchedAt: cloud.instance.launchedAt,
        // Its runners as listed, read again before it goes (the slot records may not hold them all).
        githubRunnerIds: runners.map((runner) => runner.id).join(","),
      },
    });
  }
}

async function offlineManagers(deps: SweepDeps, listings: Listings, candidates: Candidate[]): Promise<void> {
  const port = deps.runners.gitlab;
  if (!port || !deps.gitlab) return;
  for (const pool of deps.pools) {
    const token = port.tokenOf(pool.name);
    if (!pool.gitlab || !token) continue;
    const listing = `gitlab-managers:${pool.name}`;
    // The managers of the pool's instances that exist (a stopped one resumes as the same manager): the
    // id Hearth derives, and the one the agent reported, should they ever differ.
    const systemIds = new Set(
      [...listings.cloud.values()]
        .filter((cloud) => cloud.instance.pool === pool.name && cloud.instance.lifecycle !== "terminating")
        .flatMap((cloud) => [
          gitlabSystemId(cloud.instance.id),
          listings.records.get(cloud.instance.id)?.gitlabManager?.systemId ?? "",
        ]),
    );
    try {
      const recorded = [...listings.records.values()].find(
        (record) => record.pool === pool.name && record.gitlabManager?.runnerId,
      )?.gitlabManager?.runnerId;
      const runnerId = recorded ?? (await port.managers.runnerId(token));
      for (const manager of await listManagers(deps, runnerId, listing)) {
        if (manager.status === "online" || systemIds.has(manager.systemId)) continue;
        candidates.push({
          class: "offline-manager",
          subject: `gitlab-manager:${pool.name}:${manager.systemId}`,
          pool: pool.name,
          reason: "manager-of-gone-instance",
          detail: { systemId: manager.systemId, runnerId, status: manager.status },
        });
      }
    } catch (error) {
      listings.unknown.push({ listing, reason: text(error instanceof Unknown ? error.message : error) });
    }
  }
}

/** Why a running job looks stuck, if it does. */
function stuckReason(deps: SweepDeps, listings: Listings, job: Job, now: number): SweepReason | undefined {
  if (!job.instanceId) return undefined;
  const cloud = listings.cloud.get(job.instanceId);
  if (!live(cloud)) return "instance-gone";
  const record = listings.records.get(job.instanceId);
  const started = Date.parse(job.startedAt ?? job.queuedAt ?? "") || 0;
  const reported = record?.runningJobs.some((key) => key.source === job.source && key.id === job.id) ?? false;
  const beat = record?.lastHeartbeatAt ? Date.parse(record.lastHeartbeatAt) : null;
  if (!reported && beat !== null && beat - started > HEARTBEAT_OVERDUE_MS) return "not-reported-by-instance";
  const pool =
    deps.pools.find((p) => p.name === cloud?.instance.pool) ??
    (() => {
      const route = routeJob(job, deps.pools);
      return "pool" in route ? deps.pools.find((p) => p.name === route.pool) : undefined;
    })();
  if (pool && job.startedAt && now - started > pool.maxJobMinutes * 60_000 + FORGE_TIMEOUT_SLACK_MS)
    return "silent-past-forge-timeout";
  return undefined;
}

/**
 * Stuck jobs: read from the forge and applied through the ledger's idempotent path (as a webhook
 * would be), then retried where the retries say so. A job the forge cannot be asked about (first seen
 * in a heartbeat) or no longer has is stale: a candidate to close.
 */
async function stuckJobs(
  deps: SweepDeps,
  listings: Listings,
  candidates: Candidate[],
): Promise<{ applied: number }> {
  const now = deps.now().getTime();
  let applied = 0;
  let reads = 0;
  const deferred: string[] = [];
  for (const job of listings.running) {
    const reason = stuckReason(deps, listings, job, now);
    if (!reason) continue;
    const key = jobKeyString(job);
    const stale = (why: SweepReason) =>
      candidates.push({
        class: "stale-job",
        subject: `job:${key}`,
        pool: listings.cloud.get(job.instanceId ?? "")?.instance.pool ?? null,
        reason: why,
        detail: { source: job.source, id: job.id, instanceId: job.instanceId, stuck: reason },
      });
    if (!readableAtForge(job)) {
      stale("never-finished");
      continue;
    }
    // Not a listing: a read that fails, or waits for the next sweep, leaves the job as it is and
    // keeps nothing else from being swept.
    if (reads >= STUCK_READS_PER_SWEEP) {
      deferred.push(`job:${key}: more than ${STUCK_READS_PER_SWEEP} stuck jobs this sweep`);
      continue;
    }
    reads += 1;
    let read: Awaited<ReturnType<typeof readForgeJob>>;
    try {
      read = await readForgeJob(deps, job);
    } catch (error) {
      deferred.push(`job:${key}: ${text(error)}`);
      continue;
    }
    if (read === "gone") {
      stale("unknown-to-forge");
      continue;
    }
    if (!read.event) continue;
    const { outcome, job: recorded } = await deps.ledger.record(read.event);
    if (outcome !== "recorded" || !recorded) continue;
    applied += 1;
    await deps.journal.write({
      pool: listings.cloud.get(job.instanceId ?? "")?.instance.pool ?? null,
      kind: "sweep",
      reason: `stuck ${job.source} job ${job.id} (${reason}): its forge says ${recorded.status}; applied`,
      details: { class: "stuck-job", code: reason, subject: `job:${key}`, status: recorded.status },
    });
    if (isTerminal(recorded.status) && deps.retries) await retryAfterJobRecorded(deps.retries, recorded);
  }
  if (deferred.length > 0) {
    await deps.journal.write({
      pool: null,
      kind: "sweep",
      reason: `${deferred.length} stuck job${deferred.length === 1 ? "" : "s"} not read from the forge this sweep; the next sweep tries again`,
      details: { code: "stuck-job-deferred", jobs: deferred.join("; ").slice(0, 1000) },
    });
  }
  return { applied };
}

const zero = (): Record<SweepClass, number> =>
  Object.fromEntries(sweepClasses.map((name) => [name, 0])) as Record<SweepClass, number>;

export async function sweepSurvey(deps: SweepDeps, input: { sweepId: string }): Promise<SweepSurvey> {
  const sweepId = checkSweepId(input?.sweepId, "sweepSurvey");
  if (!deps.budget) return surveyNow(deps, sweepId);
  const survey = await deps.budget.during(`sweep:${sweepId}`, () => surveyNow(deps, sweepId));
  if (survey) return survey;
  // A poll kept the forges' budget the whole time: listing now could spend past the share.
  const busy = emptySurvey(deps, sweepId);
  busy.unknown.push({ listing: "budget", reason: "a poll held the forges' reconciliation leases" });
  await journalUnknown(deps, busy);
  return busy;
}

const emptySurvey = (deps: SweepDeps, sweepId: string): SweepSurvey => ({
  sweepId,
  complete: false,
  unknown: [],
  marked: zero(),
  due: [],
  cleared: 0,
  applied: 0,
  dryRun: deps.settings.dryRun,
});

async function journalUnknown(deps: SweepDeps, survey: SweepSurvey): Promise<void> {
  const { sweepId } = survey;
  await deps.journal.write({
    pool: null,
    kind: "sweep",
    reason: `sweep ${sweepId}: ${survey.unknown.length} listing${survey.unknown.length === 1 ? "" : "s"} unknown; nothing marked or acted on`,
    details: {
      sweepId,
      unknown: survey.unknown
        .map((item) => `${item.listing}: ${item.reason}`)
        .join("; ")
        .slice(0, 1000),
    },
  });
}

async function surveyNow(deps: SweepDeps, sweepId: string): Promise<SweepSurvey> {
  const dryRun = deps.settings.dryRun;
  const survey = emptySurvey(deps, sweepId);
  const listings = await listCloudAndLedger(deps);
  const candidates: Candidate[] = [];
  const cloudAndLedgerKnown = listings.unknown.length === 0;
  // The forges' listings first: the stuck jobs' reads take only what budget is left.
  await ghostRunners(deps, listings, candidates);
  await offlineManagers(deps, listings, candidates);
  orphanInstances(deps, listings, candidates);
  // Stuck jobs need only the cloud and the ledger: their forge reads tell the ledger, never act.
  if (cloudAndLedgerKnown) survey.applied = (await stuckJobs(deps, listings, candidates)).applied;
  survey.unknown = listings.unknown;
  if (survey.unknown.length > 0) {
    await journalUnknown(deps, survey);
    return survey;
  }
  survey.complete = true;

  const now = deps.now().toISOString();
  const marks = new Map((await deps.marks.all()).map((mark) => [mark.subject, mark]));
  const seen = new Set<string>();
  for (const candidate of candidates) {
    if (seen.has(candidate.subject)) continue;
    seen.add(candidate.subject);
    const earlier = marks.get(candidate.subject);
    const mark: SweepMark = {
      ...candidate,
      markedAt: earlier?.markedAt ?? now,
      sweepId: earlier?.sweepId ?? sweepId,
      seenAt: now,
    };
    await deps.marks.put(mark);
    if (earlier && earlier.sweepId !== sweepId && survey.due.length < DUE_PER_SWEEP) {
      const { sweepId: _sweep, seenAt: _seen, ...action } = mark;
      survey.due.push(action);
      continue;
    }
    if (earlier) continue;
    survey.marked[candidate.class] += 1;
    await deps.journal.write({
      pool: candidate.pool,
      kind: "sweep",
      reason: `marked ${candidate.subject} (${candidate.class}: ${candidate.reason}); the next sweep acts if it still holds`,
      details: {
        sweepId,
        class: candidate.class,
        code: candidate.reason,
        subject: candidate.subject,
        dryRun,
      },
    });
  }
  for (const [subject, mark] of marks) {
    if (seen.has(subject)) continue;
    await deps.marks.clear(subject);
    survey.cleared += 1;
    await deps.journal.write({
      pool: mark.pool,
      kind: "sweep",
      reason: `cleared ${subject} (${mark.class}): it no longer qualifies`,
      details: { sweepId, class: mark.class, code: "no-longer-qualifies", subject },
    });
  }
  return survey;
}
