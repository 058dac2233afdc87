import * as z from "zod/mini";
// Only the dependency-free vocabularies: the page bundles this module.
import { groups, markets } from "../instances/vocabulary";
import { jobStatuses, sources, storeOrigins } from "../jobs/vocabulary";
import { journalKinds } from "../journal/kinds";
import { runnerViewStates } from "../runners/vocabulary";

/**
 * The status document: what `GET /api/status` answers and the status page draws.
 *
 * It is a view for people, built from the ledger, the fleet and the event log. It carries no secret:
 * no field holds a token, a webhook URL or a runner registration, and parsing strips every key the
 * schema does not name, so a handler that parses before it answers cannot leak one by accident.
 *
 * Written with zod/mini (the same zod, a tree-shakable API) because the page bundles this schema to
 * check what the API answers; the chaining API would make the page's JS several times larger.
 */

/**
 * How the page tells an instance's life apart, derived by `buildStatus` from Auto Scaling's
 * `Lifecycle` and the agent's `RunnerState`. `suspect` has missed its heartbeats.
 */
export const displayStates = ["launching", "ready", "busy", "draining", "stopped", "suspect"] as const;
export type DisplayState = (typeof displayStates)[number];

const isoTime = z.iso.datetime({ offset: true });
const count = z.int().check(z.nonnegative());
const seconds = z.number().check(z.nonnegative());
const name = z.string().check(z.minLength(1), z.maxLength(200));
const nonEmpty = z.string().check(z.minLength(1));

/**
 * A link to the job on its forge. Only http(s), and never with credentials in it: the page renders
 * it as a link, so anything here is shown to whoever can read the status.
 */
const jobUrl = z.url({ protocol: /^https?$/ }).check(
  z.refine((value) => {
    const url = new URL(value);
    return url.username === "" && url.password === "";
  }, "a job URL must not carry credentials"),
);

export const jobViewSchema = z.object({
  source: z.enum(sources),
  /** The forge's job id. */
  id: nonEmpty,
  project: z.string(),
  name: z.string(),
  labels: z.array(z.string()),
  /** The pool the job routes to; null when no pool can run it, or its labels are not known yet. */
  pool: z.nullable(z.string()),
  status: z.enum(jobStatuses),
  conclusion: z.nullable(z.string()),
  /**
   * Why the forge failed it (GitLab's `build_failure_reason`: `job_execution_timeout` for a job past
   * its runner's `maximum_timeout`, the pool's `maxJobMinutes`); null otherwise.
   */
  failureReason: z.nullable(z.string().check(z.maxLength(100))),
  /** The instance that runs or ran it. */
  instanceId: z.nullable(z.string()),
  /** Queued until started, or until now while still queued. */
  waitSeconds: z.nullable(seconds),
  /** Started until finished, or until now while still running. */
  runSeconds: z.nullable(seconds),
  url: z.nullable(jobUrl),
  queuedAt: z.nullable(isoTime),
  /** When a spot warning for its instance interrupted it; absent or null if none did. */
  interruptedAt: z.optional(z.nullable(isoTime)),
  /** Hearth asked its forge to retry it (interrupted): when, and the new job's id once known. */
  retry: z.optional(z.nullable(z.object({ at: isoTime, newJobId: z.nullable(nonEmpty) }))),
  /** The interrupted job this one retries (the forge's id). */
  retryOf: z.optional(z.nullable(nonEmpty)),
  /**
   * Where its Nix store came from, decided when it started on an instance: `warm`, `substituted`
   * (from the stage's binary cache, an inference) or `cold`; null before it started, or when it
   * started on an instance Hearth does not know.
   */
  origin: z.optional(z.nullable(z.enum(storeOrigins))),
});
export type JobView = z.infer<typeof jobViewSchema>;

const desiredActual = z.object({ desired: count, actual: count });

export const poolStatusSchema = z.object({
  name,
  labels: z.array(z.string()),
  /** The EC2 architecture of the pool's instances: `x86_64` or `arm64`. */
  architecture: nonEmpty,
  capacity: z.object({
    /**
     * The warm group; `actual` counts instances in service or pending, not the stopped ones.
     * `market` is what it runs on (the pool's `warm.market`; absent in a document from before it).
     */
    warm: z.object({ desired: count, actual: count, market: z.optional(z.enum(markets)) }),
    /** The spot group. */
    burst: desiredActual,
    /** The warm group's pool of stopped instances, which resume with their Nix store. */
    warmPool: z.object({ target: count, stopped: count }),
  }),
  /** Instances of the pool by state. */
  instances: z.object({
    launching: count,
    ready: count,
    busy: count,
    draining: count,
    stopped: count,
    suspect: count,
  }),
  /** Job slots on instances that can run jobs (not stopped), and how many are busy. */
  slots: z.object({ total: count, busy: count }),
  queued: count,
  running: count,
  /** Null when nothing is queued. */
  oldestQueuedSeconds: z.nullable(seconds),
  maxInstances: count,
  /**
   * The pool holds its spot runners for interrupted jobs' retries (they take no job, so that a retry
   * lands on on-demand capacity): how many retries, and since when the oldest hold. Absent otherwise.
   */
  heldForRetries: z.optional(z.object({ jobs: count, since: isoTime })),
  /**
   * Where the stores of the pool's jobs came from, over the jobs that started in the last
   * `windowSeconds` (among the latest arrivals the document reads): how many ran warm, substituted and
   * cold, and the warm-hit rate, warm / (warm + substituted + cold), null when none started.
   */
  stores: z.optional(
    z.object({
      windowSeconds: count,
      warm: count,
      substituted: count,
      cold: count,
      warmHitRate: z.nullable(z.number().check(z.gte(0), z.lte(1))),
    }),
  ),
});
export type PoolStatus = z.infer<typeof poolStatusSchema>;

export const instanceViewSchema = z.object({
  id: nonEmpty,
  pool: name,
  group: z.enum(groups),
  market: z.enum(markets),
  instanceType: z.string(),
  az: z.string(),
  state: z.enum(displayStates),
  busySlots: count,
  slots: count,
  /** Since the instance last started; 0 while stopped. */
  uptimeSeconds: seconds,
  /** How many job cache keys its Nix store is warm for. */
  warmCacheKeys: count,
  /** The size of its Nix store in bytes, as its agent last reported; null before the first report. */
  storeBytes: z.nullable(count),
  /** Free disk on its store's file system, as its agent last reported (a stopped store keeps it); null if not reported. */
  freeDiskBytes: z.optional(z.nullable(count)),
  /**
   * How long the oldest of its builds has waited to be pushed to the binary cache (0: none waits), as
   * its agent reported within the last 90 s; null otherwise (stopped, booting, silent, or not reported).
   * Both figures are absent from an API older than them.
   */
  pushLagSeconds: z.optional(z.nullable(seconds)),
  /** Seconds since the agent's last heartbeat; null before the first one, or while stopped. */
  lastHeartbeatSeconds: z.nullable(seconds),
  /**
   * Stopped by a spot interruption, store kept: only EC2 starts it again, when spot capacity
   * returns, so it is none of the warm pool (absent otherwise).
   */
  waitsForCapacity: z.optional(z.literal(true)),
  /**
   * The runners Hearth registered for it: each slot's GitHub runner, deletions still owed, and its
   * GitLab runner manager. Ids and names only: a registration is never here.
   */
  runners: z.array(
    z.object({
      forge: z.enum(sources),
      runnerId: z.nullable(count),
      name: z.string().check(z.maxLength(200)),
      slot: z.nullable(count),
      state: z.enum(runnerViewStates),
      job: z.nullable(z.object({ source: z.enum(sources), id: nonEmpty })),
      systemId: z.optional(z.string().check(z.maxLength(100))),
    }),
  ),
});
export type InstanceView = z.infer<typeof instanceViewSchema>;

/** A scalar, so that details stay a short record for people and never carry a payload. */
const detailValue = z.union([z.string().check(z.maxLength(500)), z.number()]);

export const statusEventSchema = z.object({
  time: isoTime,
  /** Null for fleet-wide events (an error not tied to a pool). */
  pool: z.nullable(z.string()),
  kind: z.enum(journalKinds),
  /** One sentence: why Hearth did this. */
  reason: z.string().check(z.minLength(1), z.maxLength(1000)),
  details: z.optional(z.record(z.string(), detailValue)),
});
export type StatusEvent = z.infer<typeof statusEventSchema>;

/** One value per minute; null where nothing was recorded (e.g. before the control plane started). */
const perMinute = z.array(z.nullable(z.number().check(z.nonnegative())));

export const poolSeriesSchema = z
  .object({
    /** Queued jobs routed to the pool. */
    queued: perMinute,
    /** Job slots on instances in service: what the queue is measured against. */
    capacity: perMinute,
    /** Busy job slots. */
    busy: perMinute,
  })
  .check(
    z.refine(
      (series) =>
        series.capacity.length === series.queued.length && series.busy.length === series.queued.length,
      "queued, capacity and busy must have one value per step each",
    ),
  );
export type PoolSeries = z.infer<typeof poolSeriesSchema>;

export const seriesSchema = z.object({
  stepSeconds: z.int().check(z.positive()),
  /** The time of each pool's first value; value i is at `start + i * stepSeconds`. */
  start: isoTime,
  pools: z.record(z.string(), poolSeriesSchema),
});
export type Series = z.infer<typeof seriesSchema>;

const forges = ["github", "gitlab"] as const;

/**
 * The last poll of the forges for missed webhooks: when, its calls, each token's budget left, what it
 * found, and the listings it could not read (whose jobs are then unknown, never "none").
 */
export const pollingSchema = z.object({
  at: isoTime,
  calls: count,
  found: count,
  /** Jobs the ledger learnt something new of. */
  recorded: count,
  /** Jobs that became demand through the poll. */
  queued: count,
  redelivered: count,
  /** Failed GitHub deliveries whose payload the poll read from the delivery log. */
  deliveriesRead: count,
  forges: z.array(
    z.object({
      forge: z.enum(forges),
      status: z.enum(["polled", "skipped"]),
      calls: count,
      tokens: z.array(
        z.object({
          /** The rate bucket's name (`app:<id>`, `installation:<id>`, `gitlab`): no secret. */
          token: z.string().check(z.maxLength(200)),
          calls: count,
          /** Calls reconciliation may still make in the window, by its share. */
          shareLeft: count,
          /** What the forge last said is left of the whole budget; null before it said. */
          forgeRemaining: z.nullable(count),
          limit: count,
        }),
      ),
    }),
  ),
  unknownCount: count,
  /** The first unknown listings. */
  unknown: z.array(
    z.object({
      forge: z.enum(forges),
      listing: z.string().check(z.maxLength(300)),
      reason: z.string().check(z.maxLength(300)),
    }),
  ),
});
export type PollingView = z.infer<typeof pollingSchema>;

export const statusSchema = z.object({
  generatedAt: isoTime,
  /** `local`, or the SST stage. */
  stage: nonEmpty,
  pools: z.array(poolStatusSchema),
  /** Queued jobs no pool can run. `count` may exceed `jobs.length` when the list is cut short. */
  unroutable: z.object({ count, jobs: z.array(jobViewSchema) }),
  instances: z.array(instanceViewSchema),
  jobs: z.object({
    /** Every queued job routed to a pool, across pools: the size of the whole queue. */
    queuedCount: count,
    /** A page of the queued jobs routed to a pool, oldest first (`QUEUED_PAGE` at most). */
    queued: z.array(jobViewSchema),
    /**
     * The cursor of the next page of queued jobs (`GET /api/status?cursor=<next>`), null on the
     * last page. It names the last job of this page, so a job started meanwhile shifts nothing.
     */
    next: z.nullable(z.string().check(z.minLength(1), z.maxLength(1000))),
    running: z.array(jobViewSchema),
    /** Recently finished (completed or cancelled), latest first. */
    finished: z.array(jobViewSchema),
    /**
     * GitHub jobs held by a deployment's protection rules (a reviewer, a wait timer), among the
     * latest arrivals of the last day, latest first: known, but not demand. Absent from an older
     * API's document.
     */
    waiting: z.optional(z.array(jobViewSchema)),
  }),
  /** Latest first. */
  events: z.array(statusEventSchema),
  /** The last hour, per minute and per pool. */
  series: seriesSchema,
  /** The last poll for missed webhooks; null before the first one. */
  polling: z.optional(z.nullable(pollingSchema)),
});
export type Status = z.infer<typeof statusSchema>;

/** Queued jobs per page of the document. */
export const QUEUED_PAGE = 100;

/** The series step Hearth records: one value a minute. */
export const SERIES_STEP_SECONDS = 60;
/** How many steps the document carries: the last hour. */
export const SERIES_LENGTH = 60;
