import { type FleetInstance, plannerInstance, reportsOnTime } from "../fleet";
import type { Group, InstanceRecord, InstanceRegistry } from "../instances";
import { type Job, type JobKey, jobKeyString, type StoreOrigin } from "../jobs";
import type { Journal } from "../journal";
import type { Ledger } from "../ledger";
import { queuePosition } from "../ledger";
import type { StoredPollReport } from "../polling/report";
import { type PoolConfig, routeJob } from "../pools";
import { active as holdsPool, type RetryHolds } from "../retries/holds";
import { type RunnerRecords, type RunnerView, runnerViews } from "../runners";
import { type QueueSnapshot, routeQueue, type ScalingRecords } from "../scaling";
import {
  type DisplayState,
  type InstanceView,
  type JobView,
  type PoolStatus,
  QUEUED_PAGE,
  SERIES_LENGTH,
  SERIES_STEP_SECONDS,
  type Status,
  type StatusEvent,
  statusSchema,
} from "./index";

/**
 * The status document, built from what the control plane stores: the ledger, the instance
 * registry, the fleet as ScaleFleet last observed it, the journal and the per-minute samples. It
 * never calls the AWS APIs, so a page refreshing every few seconds costs a few DynamoDB reads.
 */

export interface StatusDeps {
  pools: readonly PoolConfig[];
  ledger: Ledger;
  registry: InstanceRegistry;
  journal: Journal;
  scalingRecords: ScalingRecords;
  /** What Hearth recorded of the runners it registered; absent, instances list no runner. */
  runnerRecords?: RunnerRecords | undefined;
  /** The pools' retry holds; absent, the document says nothing of them. */
  retryHolds?: Pick<RetryHolds, "open"> | undefined;
  /** The last poll's report; absent, the document has no polling figure. */
  pollReport?: () => Promise<StoredPollReport | undefined>;
  now: () => Date;
  /** Index items a request reads to count the queue itself (default `QUICK_READ`). */
  quickRead?: number;
}

const LIST_LIMIT = 100;
/**
 * Index items one request reads to count the queue itself. A longer queue is counted by the last
 * full read (ScaleFleet's Observe, the minute tick), and paged through its label sets' partitions.
 */
const QUICK_READ = 400;
/** Latest arrivals read for the running and finished lists. */
const RECENT_READ = 500;
const FINISHED_LIMIT = 50;
const EVENT_LIMIT = 50;

const seconds = (from: string | null, to: number | string | null): number | null => {
  if (!from || to === null) return null;
  const end = typeof to === "number" ? to : Date.parse(to);
  return Math.max(0, Math.round((end - Date.parse(from)) / 1000));
};

/** Only plain http(s) links, without credentials, reach the page. */
function safeUrl(url: string | null): string | null {
  if (!url) return null;
  try {
    const parsed = new URL(url);
    if (!/^https?:$/.test(parsed.protocol) || parsed.username || parsed.password) return null;
    return parsed.toString();
  } catch {
    return null;
  }
}

function jobView(job: Job, pools: readonly PoolConfig[], now: number): JobView {
  const route = routeJob(job, pools);
  const active = job.status === "queued" || job.status === "running";
  return {
    source: job.source,
    id: job.id,
    project: job.project,
    name: job.name,
    labels: job.labels,
    pool: "pool" in route ? route.pool : null,
    status: job.status,
    conclusion: job.conclusion,
    failureReason: job.failureReason?.slice(0, 100) ?? null,
    instanceId: job.instanceId,
    // A job waiting for a person has waited as long as a queued one has.
    waitSeconds: seconds(
      job.queuedAt,
      job.startedAt ?? (job.status === "queued" || job.status === "waiting" ? now : null),
    ),
    runSeconds: seconds(job.startedAt, job.finishedAt ?? (active ? now : null)),
    url: safeUrl(job.url),
    queuedAt: job.queuedAt,
    interruptedAt: job.interruption?.at ?? null,
    retry: job.retry ?? null,
    retryOf: job.retryOf ?? null,
    origin: job.store?.origin ?? null,
  };
}

/** The window over which the page counts where the pools' stores came from. */
export const STORE_WINDOW_SECONDS = 24 * 3600;

/**
 * Per pool, where the stores of the jobs that started in the window came from. A job counts for
 * the pool of the instance it started on (its origin was decided against that pool's stores); a job
 * without an origin (not started, or on an instance Hearth does not know) is not counted.
 */
export function storeOriginCounts(
  jobs: readonly Job[],
  pools: readonly PoolConfig[],
  poolOf: (instanceId: string) => string | undefined,
  now: number,
): Map<string, NonNullable<PoolStatus["stores"]>> {
  const since = now - STORE_WINDOW_SECONDS * 1000;
  const counts = new Map<string, Record<StoreOrigin, number>>(
    pools.map((pool) => [pool.name, { warm: 0, substituted: 0, cold: 0 }]),
  );
  for (const job of jobs) {
    const decision = job.store;
    if (!decision?.origin || Date.parse(decision.at) < since) continue;
    const route = routeJob(job, pools);
    const pool = poolOf(decision.instanceId) ?? ("pool" in route ? route.pool : undefined);
    const count = pool === undefined ? undefined : counts.get(pool);
    if (count) count[decision.origin] += 1;
  }
  return new Map(
    [...counts].map(([pool, count]) => {
      const started = count.warm + count.substituted + count.cold;
      return [
        pool,
        { windowSeconds: STORE_WINDOW_SECONDS, ...count, warmHitRate: started ? count.warm / started : null },
      ];
    }),
  );
}

function instanceView(
  instance: FleetInstance,
  record: InstanceRecord | undefined,
  pool: PoolConfig,
  now: number,
  runners: RunnerView[],
) {
  const seen = plannerInstance(instance, record, pool, now);
  let state: DisplayState;
  if (seen.heartbeatOverdue) state = "suspect";
  else if (seen.state === "ready") state = seen.busySlots > 0 ? "busy" : "ready";
  else if (seen.state === "stopping" || seen.state === "stopped") state = "stopped";
  else if (seen.state === "terminating") return undefined;
  else state = seen.state;
  const running = state !== "stopped";
  const view: InstanceView = {
    id: instance.id,
    pool: pool.name,
    group: instance.group,
    market: instance.market,
    instanceType: instance.instanceType ?? "",
    az: instance.az,
    state,
    busySlots: seen.busySlots,
    slots: seen.slots,
    uptimeSeconds: running ? (seconds(instance.launchedAt, now) ?? 0) : 0,
    warmCacheKeys: record?.cacheKeys.length ?? 0,
    storeBytes: record?.storeBytes ?? null,
    freeDiskBytes: record?.freeDiskBytes ?? null,
    // Only a fresh report: a resumed store's lag from before its stop, or a silent one's, is not now's.
    pushLagSeconds:
      running && reportsOnTime(record?.lastHeartbeatAt ?? null, now)
        ? (record?.pushLagSeconds ?? null)
        : null,
    lastHeartbeatSeconds: running && record?.lastHeartbeatAt ? seconds(record.lastHeartbeatAt, now) : null,
    runners,
    ...(seen.waitsForCapacity ? { waitsForCapacity: true as const } : {}),
  };
  return view;
}

/**
 * The queue as one request can afford to see it: read whole when short, or else as the last full
 * read counted it (`snapshot`), with nothing listed.
 */
async function queueView(deps: StatusDeps) {
  const few = await deps.ledger.queuedIfFew(deps.quickRead ?? QUICK_READ);
  if (few !== undefined) {
    const { routed, summary, unroutable } = routeQueue(few, deps.pools);
    return {
      routed,
      unroutable: { count: unroutable.length, jobs: unroutable.map(({ job }) => job) },
      count: (pool: string) => summary.count(pool),
      oldest: (pool: string) => summary.oldest(pool),
      snapshot: undefined,
    };
  }
  const snapshot: QueueSnapshot = (await deps.scalingRecords.queue()) ?? {
    at: deps.now().toISOString(),
    pools: {},
    unroutable: 0,
    labelSets: [],
  };
  return {
    routed: undefined,
    unroutable: { count: snapshot.unroutable, jobs: [] },
    count: (pool: string) => snapshot.pools[pool]?.count ?? 0,
    oldest: (pool: string) => snapshot.pools[pool]?.oldestQueuedAt ?? null,
    snapshot,
  };
}

/** Pools with their instances, as the page and the per-minute samples see them. */
export async function poolStatuses(deps: StatusDeps) {
  const now = deps.now().getTime();
  const runnerRecords = deps.runnerRecords;
  const [queue, perPool, removals] = await Promise.all([
    queueView(deps),
    Promise.all(
      deps.pools.map((pool) =>
        Promise.all([
          deps.scalingRecords.fleet(pool.name),
          deps.registry.inPool(pool.name),
          runnerRecords ? runnerRecords.inPool(pool.name) : Promise.resolve([]),
          deps.retryHolds ? deps.retryHolds.open(pool.name) : Promise.resolve([]),
        ]),
      ),
    ),
    runnerRecords ? runnerRecords.removals() : Promise.resolve([]),
  ]);
  const pools: PoolStatus[] = [];
  const instances: InstanceView[] = [];
  for (const [index, pool] of deps.pools.entries()) {
    const [fleet, records, slotRunners, holds] = perPool[index] ?? [undefined, [], [], []];
    const holding = holds.filter((hold) => holdsPool(hold, now));
    const known = new Map(records.map((record) => [record.id, record]));
    const views: InstanceView[] = [];
    for (const instance of fleet?.instances ?? []) {
      const record = known.get(instance.id);
      const runners = runnerViews(
        instance.id,
        slotRunners.filter((runner) => runner.instanceId === instance.id),
        removals,
        record?.gitlabManager ?? null,
      );
      const view = instanceView(instance, record, pool, now, runners);
      if (view) views.push(view);
    }
    const byState = (state: DisplayState) => views.filter((view) => view.state === state).length;
    // A store a spot interruption stopped waits for EC2: shown stopped, but none of the warm pool.
    const waitingForCapacity = (fleet?.instances ?? []).filter(
      (instance) => instance.stoppedByInterruption === true,
    ).length;
    const serving = views.filter((view) => view.state !== "stopped");
    const group = (name: Group) => fleet?.groups.find((g) => g.group === name);
    const oldestAt = queue.oldest(pool.name);
    const oldest = oldestAt === null ? null : Math.max(0, Math.round((now - oldestAt) / 1000));
    pools.push({
      name: pool.name,
      labels: pool.labels,
      architecture: pool.architecture,
      capacity: {
        warm: {
          desired: group("warm")?.desired ?? 0,
          actual: serving.filter((v) => v.group === "warm").length,
          market: pool.warm.market,
        },
        burst: {
          desired: group("burst")?.desired ?? 0,
          actual: serving.filter((v) => v.group === "burst").length,
        },
        warmPool: {
          target: group("warm")?.warmPoolSize ?? 0,
          stopped: Math.max(0, byState("stopped") - waitingForCapacity),
        },
      },
      instances: {
        launching: byState("launching"),
        ready: byState("ready"),
        busy: byState("busy"),
        draining: byState("draining"),
        stopped: byState("stopped"),
        suspect: byState("suspect"),
      },
      slots: {
        total: serving.reduce((sum, view) => sum + view.slots, 0),
        busy: serving.reduce((sum, view) => sum + view.busySlots, 0),
      },
      queued: queue.count(pool.name),
      running: serving.reduce((sum, view) => sum + view.busySlots, 0),
      oldestQueuedSeconds: oldest,
      maxInstances: pool.maxInstances,
      ...(holding.length
        ? {
            heldForRetries: {
              jobs: holding.length,
              since: holding.map((hold) => hold.since).reduce((a, b) => (a < b ? a : b)),
            },
          }
        : {}),
    });
    instances.push(...views);
  }
  return { pools, instances, queue };
}

function eventView(entry: Awaited<ReturnType<Journal["latest"]>>[number]): StatusEvent {
  const details: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(entry.details)) {
    if (value === null) continue;
    details[key] = typeof value === "number" ? value : String(value).slice(0, 500);
  }
  if (entry.calls.length) details.calls = entry.calls.join("; ").slice(0, 500);
  return {
    time: entry.time,
    pool: entry.pool,
    kind: entry.kind,
    reason: entry.reason.slice(0, 1000),
    details,
  };
}

export class StatusCursorError extends Error {}

export const encodeCursor = (job: Job): string =>
  Buffer.from(queuePosition(job), "utf8").toString("base64url");

function decodeCursor(cursor: string): string {
  const decoded = /^[A-Za-z0-9_-]{1,1000}$/.test(cursor)
    ? Buffer.from(cursor, "base64url").toString("utf8")
    : "";
  if (!/^[^#]*#(github|gitlab)#.+$/.test(decoded)) {
    throw new StatusCursorError("cursor is not one this API gave: use the `jobs.next` of a status document");
  }
  return decoded;
}

/** One page of the queued jobs routed to a pool, oldest first, after the cursor's position. */
async function queuedPage(
  deps: StatusDeps,
  queue: Awaited<ReturnType<typeof queueView>>,
  after: string | undefined,
): Promise<{ jobs: Job[]; next: string | null; total: number }> {
  const { routed, snapshot } = queue;
  if (routed !== undefined) {
    let first = 0;
    if (after !== undefined) {
      let low = 0;
      let high = routed.length;
      while (low < high) {
        const middle = (low + high) >>> 1;
        if (queuePosition((routed[middle] as (typeof routed)[number]).job) <= after) low = middle + 1;
        else high = middle;
      }
      first = low;
    }
    const jobs = routed.slice(first, first + QUEUED_PAGE).map(({ job }) => job);
    const last = jobs.at(-1);
    const next = last !== undefined && first + QUEUED_PAGE < routed.length ? encodeCursor(last) : null;
    return { jobs, next, total: routed.length };
  }
  // A long queue: the oldest of each label set's partition, merged. Jobs of a label set that routes
  // for one forge and not the other are skipped; the cursor moves past them all the same.
  const total = Object.values(snapshot?.pools ?? {}).reduce((sum, pool) => sum + pool.count, 0);
  const read = await deps.ledger.queuedAfter(snapshot?.labelSets ?? [], after, QUEUED_PAGE);
  const jobs = read.jobs.filter((job) => "pool" in routeJob(job, deps.pools));
  const last = read.jobs.at(-1);
  return { jobs, next: read.more && last !== undefined ? encodeCursor(last) : null, total };
}

/** The last poll as the page shows it: the stored report, cut to what the schema names. */
function pollingView(report: StoredPollReport): NonNullable<Status["polling"]> {
  return {
    at: report.at,
    calls: report.calls,
    found: report.found,
    recorded: report.recorded,
    queued: report.queued,
    redelivered: report.redelivered,
    // A report stored before the poll read deliveries has no count of them.
    deliveriesRead: report.deliveriesRead ?? 0,
    forges: report.forges.map((forge) => ({
      forge: forge.forge,
      status: forge.status,
      calls: forge.calls,
      tokens: forge.tokens.map((token) => ({
        token: token.token.slice(0, 200),
        calls: token.calls,
        shareLeft: token.shareLeft,
        forgeRemaining: token.forgeRemaining,
        limit: token.limit,
      })),
    })),
    unknownCount: report.unknownCount,
    unknown: report.unknown.map((listing) => ({
      forge: listing.forge,
      listing: listing.listing.slice(0, 300),
      reason: listing.reason.slice(0, 300),
    })),
  };
}

export interface StatusOptions {
  /** `jobs.next` of an earlier document: the page of queued jobs after it. */
  cursor?: string;
}

export async function buildStatus(
  deps: StatusDeps,
  stage: string,
  options: StatusOptions = {},
): Promise<Status> {
  const after = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
  const nowDate = deps.now();
  const now = nowDate.getTime();
  const start = new Date(
    Math.floor(now / 60_000) * 60_000 - (SERIES_LENGTH - 1) * SERIES_STEP_SECONDS * 1000,
  );
  // The reads do not depend on each other: one round trip's time, not the sum.
  const [{ pools, instances, queue }, recent, events, samplesByPool, pollReport] = await Promise.all([
    poolStatuses(deps),
    // Only jobs held for approval, running or finished, among the latest arrivals: the day's may be
    // tens of thousands.
    deps.ledger.latestArrivals(
      new Date(now - 24 * 3600_000),
      ["waiting", "running", "completed", "cancelled"],
      RECENT_READ,
    ),
    deps.journal.latest(EVENT_LIMIT),
    Promise.all(deps.pools.map((pool) => deps.scalingRecords.samples(pool.name, start))),
    deps.pollReport?.(),
  ]);

  // Running jobs: those the instances report, and any the ledger saw start in the last day.
  const running = new Map<string, Job>();
  for (const job of recent) if (job.status === "running") running.set(jobKeyString(job), job);
  const records = (await Promise.all(deps.pools.map((pool) => deps.registry.inPool(pool.name)))).flat();
  const reported = records
    .flatMap((record) => record.runningJobs as JobKey[])
    .filter((key) => !running.has(jobKeyString(key)))
    .slice(0, LIST_LIMIT);
  for (const job of await Promise.all(reported.map((key) => deps.ledger.get(key)))) {
    if (job?.status === "running") running.set(jobKeyString(job), job);
  }
  const finished = recent
    .filter((job) => job.status === "completed" || job.status === "cancelled")
    .sort((a, b) => (b.finishedAt ?? "").localeCompare(a.finishedAt ?? ""))
    .slice(0, FINISHED_LIMIT);
  // GitHub jobs held by a deployment's protection rules (a reviewer, a wait timer): shown, never
  // demand. Latest first. GitLab's waiting jobs are not: most wait for an earlier stage, and they have
  // no arrival time (nor a place in the arrivals' index) until they are queued.
  const waiting = recent
    .filter((job) => job.status === "waiting" && job.source === "github")
    .sort((a, b) => (b.queuedAt ?? "").localeCompare(a.queuedAt ?? ""))
    .slice(0, LIST_LIMIT);
  const page = await queuedPage(deps, queue, after);

  const series: Status["series"] = {
    stepSeconds: SERIES_STEP_SECONDS,
    start: start.toISOString(),
    pools: {},
  };
  for (const [index, pool] of deps.pools.entries()) {
    const samples = new Map((samplesByPool[index] ?? []).map((s) => [s.minute, s]));
    const at = (i: number) =>
      samples.get(new Date(start.getTime() + i * SERIES_STEP_SECONDS * 1000).toISOString());
    const values = (pick: (s: NonNullable<ReturnType<typeof at>>) => number) =>
      Array.from({ length: SERIES_LENGTH }, (_, i) => {
        const sample = at(i);
        return sample ? pick(sample) : null;
      });
    series.pools[pool.name] = {
      queued: values((s) => s.queued),
      capacity: values((s) => s.capacity),
      busy: values((s) => s.busy),
    };
  }

  const view = (job: Job) => jobView(job, deps.pools, now);
  const poolOfInstance = new Map(records.map((record) => [record.id, record.pool]));
  const origins = storeOriginCounts(
    [...new Map([...recent, ...running.values()].map((job) => [jobKeyString(job), job])).values()],
    deps.pools,
    (id) => poolOfInstance.get(id),
    now,
  );
  const document: Status = {
    generatedAt: nowDate.toISOString(),
    stage,
    pools: pools.map((pool) => {
      const stores = origins.get(pool.name);
      return stores ? { ...pool, stores } : pool;
    }),
    unroutable: {
      count: queue.unroutable.count,
      jobs: queue.unroutable.jobs.slice(0, LIST_LIMIT).map(view),
    },
    instances,
    jobs: {
      queuedCount: page.total,
      queued: page.jobs.map(view),
      next: page.next,
      running: [...running.values()].slice(0, LIST_LIMIT).map(view),
      finished: finished.map(view),
      waiting: waiting.map(view),
    },
    events: events.map(eventView),
    series,
    ...(deps.pollReport ? { polling: pollReport ? pollingView(pollReport) : null } : {}),
  };
  // Parsing strips anything the schema does not name: nothing else can reach the page.
  return statusSchema.parse(document);
}
