import { needsTagLookup } from "../ingest";
import { type Job, type JobEvent, jobStatuses } from "../jobs";
import type { Ledger, RecordOutcome } from "../ledger";
import { type PoolConfig, routeJob } from "../pools";

/**
 * What polling found goes into the ledger by the webhooks' own path: `ledger.record`, which merges
 * the event into the job (a join, so order and repetition do not matter) and writes only what is new.
 * A polled event carries no delivery id: a job a webhook already told of reads as `unchanged`, costs
 * one read and no write, and is scaled for once.
 */

export interface PolledIngest {
  /** Events by what the ledger did with them. */
  outcomes: Record<RecordOutcome, number>;
  /** Jobs the ledger learnt something new of, as recorded: what a webhook's retries step is given. */
  recorded: Job[];
  /**
   * Jobs this poll made demand: new to the ledger as queued, turned queued, or queued with labels
   * now known (a GitLab job whose hook had no tags). What a webhook would have scaled for.
   */
  newlyQueued: Job[];
  /** The pools of those jobs, each once, sorted: scale them as for a webhook. */
  pools: string[];
  /** Newly queued jobs no pool takes (a GitHub-hosted label, labels no pool has). */
  unroutable: Job[];
  /** Newly queued GitLab jobs whose tags are still unknown: `afterJobRecorded` looks them up. */
  tagsUnknown: Job[];
}

const becameDemand = (job: Job, previous: Job | undefined): boolean =>
  job.status === "queued" &&
  (previous === undefined || previous.status !== "queued" || (!previous.labelsKnown && job.labelsKnown));

/** An ingest of nothing: what a poll adds each forge's ingest to. */
export const emptyPolledIngest = (): PolledIngest => ({
  outcomes: { recorded: 0, unchanged: 0, duplicate: 0 },
  recorded: [],
  newlyQueued: [],
  pools: [],
  unroutable: [],
  tagsUnknown: [],
});

export async function ingestPolledEvents(
  ledger: Ledger,
  pools: readonly PoolConfig[],
  events: readonly JobEvent[],
): Promise<PolledIngest> {
  const result = emptyPolledIngest();
  const poolNames = new Set<string>();
  for (const event of events) {
    const { outcome, job, previous } = await ledger.record(event);
    result.outcomes[outcome] += 1;
    if (outcome === "recorded" && job) result.recorded.push(job);
    if (outcome !== "recorded" || !job || !becameDemand(job, previous)) continue;
    result.newlyQueued.push(job);
    if (needsTagLookup(job)) {
      result.tagsUnknown.push(job);
      continue;
    }
    const route = routeJob(job, pools);
    if ("pool" in route) poolNames.add(route.pool);
    else result.unroutable.push(job);
  }
  result.pools = [...poolNames].sort();
  return result;
}

export interface ActiveProjectsOptions {
  /** A project with a job queued this recently is active, whatever the job's status now; 15 by default. */
  recentMinutes?: number;
  /** A job waiting, queued or running makes its project active if it was queued this recently; 24 by default. */
  inFlightHours?: number;
  /** Ledger items read at most per question, so that the cost is bounded; 5,000 by default. */
  readLimit?: number;
}

/**
 * The projects (GitHub repositories) of one forge that polling lists, by the ledger: those with jobs
 * in flight first (their queued jobs are the ones a lost webhook leaves waiting), then those with
 * recent traffic (a run that just started may have jobs no webhook announced).
 */
export async function activeProjects(
  ledger: Ledger,
  source: Job["source"],
  now: Date,
  options: ActiveProjectsOptions = {},
): Promise<string[]> {
  const readLimit = options.readLimit ?? 5000;
  const inFlight = await ledger.latestArrivals(
    new Date(now.getTime() - (options.inFlightHours ?? 24) * 3_600_000),
    ["waiting", "queued", "running"],
    readLimit,
  );
  const recent = await ledger.latestArrivals(
    new Date(now.getTime() - (options.recentMinutes ?? 15) * 60_000),
    jobStatuses,
    readLimit,
  );
  const projects = new Set<string>();
  for (const job of [...inFlight, ...recent]) if (job.source === source) projects.add(job.project);
  return [...projects];
}
