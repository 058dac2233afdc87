import * as z from "zod";
import {
  type JobStatus,
  jobStatuses,
  type Source,
  type StoreOrigin,
  sources,
  storeOrigins,
} from "./vocabulary";

/**
 * The job ledger's model: one normalized job per forge job, the same for GitLab and GitHub.
 *
 * Events are merged with `applyEvent`, a join: it is commutative, associative and idempotent, so
 * the ledger reaches the same job whatever order (and however often) the forge delivers events.
 */

export { type JobStatus, jobStatuses, type Source, type StoreOrigin, sources, storeOrigins };

const statusRank: Record<JobStatus, number> = {
  waiting: 0,
  queued: 1,
  running: 2,
  // Both are terminal. If a forge ever reported both, `completed` carries more information.
  cancelled: 3,
  completed: 4,
};

export const isTerminal = (status: JobStatus): boolean => statusRank[status] >= statusRank.cancelled;

const isoTime = z.iso.datetime({ offset: true });

export const runnerSchema = z.object({
  id: z.string().nullable(),
  name: z.string().nullable(),
});
export type Runner = z.infer<typeof runnerSchema>;

export const jobSchema = z.object({
  source: z.enum(sources),
  id: z.string().min(1),
  project: z.string(),
  /** GitLab's numeric project id, needed for API calls; null for GitHub. */
  projectId: z.string().nullable(),
  pipelineId: z.string(),
  name: z.string(),
  /** GitHub `run_attempt` (1 = first) or GitLab `retries_count` (0 = first). */
  attempt: z.number().int().nonnegative(),
  /** Sorted, lower-cased labels (GitHub) or tags (GitLab). Meaningless while `labelsKnown` is false. */
  labels: z.array(z.string()),
  labelsKnown: z.boolean(),
  status: z.enum(jobStatuses),
  /** `success`, `failure`, `cancelled`, `skipped`, … (GitHub's vocabulary, GitLab's mapped onto it). */
  conclusion: z.string().nullable(),
  /** Why a job failed, when the forge says (GitLab `failure_reason`, e.g. `runner_system_failure`). */
  failureReason: z.string().nullable(),
  queuedAt: isoTime.nullable(),
  startedAt: isoTime.nullable(),
  finishedAt: isoTime.nullable(),
  runner: runnerSchema.nullable(),
  instanceId: z.string().nullable(),
  url: z.string().nullable(),
  /**
   * The instance this job ran on got a spot interruption warning while it ran (absent otherwise).
   * Set by `markJobsInterrupted`; the job is retried when the forge has ended it as failed.
   */
  interruption: z.object({ at: isoTime, instanceId: z.string().min(1).max(64) }).optional(),
  /**
   * Hearth asked the forge to retry this interrupted job: when, and the new job's id once known (a
   * GitHub re-run's jobs are known only when their webhooks arrive).
   */
  retry: z.object({ at: isoTime, newJobId: z.string().nullable() }).optional(),
  /** The interrupted job this one retries (its forge id). */
  retryOf: z.string().min(1).max(20).optional(),
  /** How many interruption retries led to this job: 1 for the retry of an original job. */
  retryNumber: z.number().int().min(1).max(100).optional(),
  /**
   * Where its store came from, decided once, when it started on an instance (`stores`): the origin,
   * or null when Hearth did not know the instance (such a job is not counted); absent until then.
   */
  store: z
    .object({
      origin: z.enum(storeOrigins).nullable(),
      instanceId: z.string().min(1).max(64),
      at: isoTime,
    })
    .optional(),
});
export type Job = z.infer<typeof jobSchema>;

/** What one webhook (or poll, or heartbeat) says about a job: a partial job at a status. */
export type JobEvent = Job;

export interface JobKey {
  source: Source;
  id: string;
}

export const jobKeyString = (key: JobKey): string => `${key.source}#${key.id}`;

/** Labels as the ledger stores them: trimmed, lower-cased, unique, sorted. */
export function normalizeLabels(labels: readonly string[]): string[] {
  return [
    ...new Set(labels.map((label) => label.trim().toLowerCase()).filter((label) => label !== "")),
  ].sort();
}

/** A stable key for a set of labels, used to index queued jobs. */
export const labelSetKey = (job: Pick<Job, "labels" | "labelsKnown">): string =>
  job.labelsKnown ? job.labels.join(",") : "?";

const maxString = (a: string, b: string): string => (a >= b ? a : b);

/** Prefer the known value; between two known values, the greater, so that the merge commutes. */
function either<T extends string>(a: T | null, b: T | null): T | null {
  if (a === null) return b;
  if (b === null) return a;
  return maxString(a, b) as T;
}

/** The earliest known time: timestamps only fill in, and replays never move them. */
function earliest(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  if (ta !== tb) return ta < tb ? a : b;
  return maxString(a, b);
}

function higherStatus(a: JobStatus, b: JobStatus): JobStatus {
  return statusRank[a] >= statusRank[b] ? a : b;
}

type Interrupted = NonNullable<Job["interruption"]>;
type StoreDecision = NonNullable<Job["store"]>;
type Retried = NonNullable<Job["retry"]>;

function mergeInterruption(a: Interrupted | undefined, b: Interrupted | undefined): Interrupted | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  const at = earliest(a.at, b.at) as string;
  // The notice that came first wins; the same time from two instances cannot happen, but must commute.
  if (a.at === b.at) return { at, instanceId: maxString(a.instanceId, b.instanceId) };
  return at === a.at ? a : b;
}

function mergeRetry(a: Retried | undefined, b: Retried | undefined): Retried | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return { at: earliest(a.at, b.at) as string, newJobId: either(a.newJobId, b.newJobId) };
}

/** The decision made first stands; two made at the same time (which the ledger never writes) must commute. */
function mergeStore(a: StoreDecision | undefined, b: StoreDecision | undefined): StoreDecision | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (a.at !== b.at) return earliest(a.at, b.at) === a.at ? a : b;
  return JSON.stringify(a) >= JSON.stringify(b) ? a : b;
}

/** The retry fields that are known, and only those: a job without them stays without the keys. */
function retryFields(a: Job, b: Job): Pick<Job, "interruption" | "retry" | "retryOf" | "retryNumber"> {
  const interruption = mergeInterruption(a.interruption, b.interruption);
  const retry = mergeRetry(a.retry, b.retry);
  const retryOf = either(a.retryOf ?? null, b.retryOf ?? null);
  const retryNumber = Math.max(a.retryNumber ?? 0, b.retryNumber ?? 0);
  return {
    ...(interruption ? { interruption } : {}),
    ...(retry ? { retry } : {}),
    ...(retryOf !== null ? { retryOf } : {}),
    ...(retryNumber > 0 ? { retryNumber } : {}),
  };
}

function storeField(a: Job, b: Job): Pick<Job, "store"> {
  const store = mergeStore(a.store, b.store);
  return store ? { store } : {};
}

function mergeRunner(a: Job, b: Job): Runner | null {
  if (a.runner === null) return b.runner;
  if (b.runner === null) return a.runner;
  return { id: either(a.runner.id, b.runner.id), name: either(a.runner.name, b.runner.name) };
}

/** Merge two views of the same job. Commutative, associative, idempotent. */
export function mergeJobs(a: Job, b: Job): Job {
  if (a.source !== b.source || a.id !== b.id) {
    throw new Error(`cannot merge ${jobKeyString(a)} with ${jobKeyString(b)}`);
  }
  const status = higherStatus(a.status, b.status);
  const known = [a, b].filter((job) => job.labelsKnown);
  const labels = normalizeLabels(known.flatMap((job) => job.labels));
  // The conclusion belongs to the terminal event that won.
  const terminal = [a, b].filter((job) => job.status === status && isTerminal(status));
  const conclusion = terminal.reduce<string | null>((acc, job) => either(acc, job.conclusion), null);
  return {
    source: a.source,
    id: a.id,
    project: either(a.project || null, b.project || null) ?? "",
    projectId: either(a.projectId, b.projectId),
    pipelineId: either(a.pipelineId || null, b.pipelineId || null) ?? "",
    name: either(a.name || null, b.name || null) ?? "",
    attempt: Math.max(a.attempt, b.attempt),
    labels,
    labelsKnown: a.labelsKnown || b.labelsKnown,
    status,
    conclusion: isTerminal(status) ? conclusion : null,
    failureReason: isTerminal(status) ? either(a.failureReason, b.failureReason) : null,
    queuedAt: earliest(a.queuedAt, b.queuedAt),
    startedAt: earliest(a.startedAt, b.startedAt),
    finishedAt: earliest(a.finishedAt, b.finishedAt),
    runner: mergeRunner(a, b),
    instanceId: either(a.instanceId, b.instanceId),
    url: either(a.url, b.url),
    ...retryFields(a, b),
    ...storeField(a, b),
  };
}

/**
 * An event that knows only the job's key and the given fields: what a heartbeat or a poll reports
 * about a job whose webhooks it has not seen. Merged, it fills in nothing it does not know.
 */
export function partialEvent(key: JobKey, fields: Partial<Omit<JobEvent, "source" | "id">>): JobEvent {
  return {
    source: key.source,
    id: key.id,
    project: "",
    projectId: null,
    pipelineId: "",
    name: "",
    attempt: 0,
    labels: [],
    labelsKnown: false,
    status: "waiting",
    conclusion: null,
    failureReason: null,
    queuedAt: null,
    startedAt: null,
    finishedAt: null,
    runner: null,
    instanceId: null,
    url: null,
    ...fields,
  };
}

/** The ledger's transition function: the job after `event`, given what the ledger held. */
export function applyEvent(current: Job | undefined, event: JobEvent): Job {
  return current === undefined ? mergeJobs(event, event) : mergeJobs(current, event);
}

/** True when both describe the same job state (so a write would change nothing). */
export function sameJob(a: Job, b: Job): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(job: Job): Job {
  // Key order fixed by the schema, so that equal jobs stringify equally.
  return jobSchema.parse(job);
}

/**
 * GitHub runners that Hearth starts are named `hearth-<instance id>-<slot>` (`runnerIdentity`;
 * `<instance id>-<slot>` before), so a job's runner tells which instance runs it.
 */
export function instanceFromRunnerName(name: string | null): string | null {
  if (name === null) return null;
  const match = /^(?:hearth-)?(i-[0-9a-f]{8,17})(?:-\d{1,3})?$/.exec(name);
  return match?.[1] ?? null;
}

/** The longest cache key kept whole: what a heartbeat may report, and what an instance record holds. */
export const CACHE_KEY_MAX_LENGTH = 300;

/**
 * Jobs that share a cache key share a build closure, so an instance that ran one has a warm store for
 * the next. A job's key is its project and name (for matrix jobs, the name includes the entry). A key
 * longer than `CACHE_KEY_MAX_LENGTH` (a project and a name may be a thousand characters each) is cut
 * and named by a hash of the whole, so that a store's record of a dozen keys stays small.
 */
export const cacheKeyOf = (job: Pick<Job, "project" | "name">): string => {
  const key = `${job.project}/${job.name}`;
  if (key.length <= CACHE_KEY_MAX_LENGTH) return key;
  return `${key.slice(0, CACHE_KEY_MAX_LENGTH - 16)}#${hash53(key).toString(16).padStart(14, "0")}`;
};

/**
 * A 53-bit string hash (cyrb53, public domain): no `node:crypto`, as the status page bundles this
 * module's neighbours. For naming long keys apart, not for security.
 */
function hash53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}
