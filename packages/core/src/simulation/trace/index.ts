import { defaultPools, isRouted, type PoolConfig, poolConfigSchema, routeJob } from "../../pools";
import { Random } from "../rules";
import { EventQueue } from "./events";
import { Fleet, SimJob } from "./fleet";
import { type FleetModel, fleetModelSchema } from "./model";
import { autogitPolicy } from "./policies/autogit";
import { ephemeralPolicy } from "./policies/ephemeral";
import { ghrPolicy } from "./policies/ghr";
import { defaultHearthOptions, type HearthOptions, hearthPolicy } from "./policies/hearth";
import { oracleCost } from "./policies/oracle";
import { staticPolicy } from "./policies/static";
import { terraformNixosPolicy } from "./policies/terraform-nixos";
import type { PolicyContext, PolicyFactory } from "./policy";
import type { Trace, TraceJob } from "./trace";

export {
  type CapacityFloor,
  type CapacityRule,
  capacityFloor,
  capacityRules,
  defaultSeasonalWindow,
  type SeasonalWindow,
  seasonalPeak,
  slidingMax,
} from "./capacity";
export { dominanceGaps, dominanceMisses, type PolicyFigures, WAIT_FLOOR_SECONDS } from "./dominance";
export type { FleetModel } from "./model";
export { defaultFleetModel, fleetModelSchema } from "./model";
export { type ForgeChoice, forgeChoices } from "./policies/hearth-interruptions";
export type { Trace, TraceJob } from "./trace";
export { parseTrace, TraceError, traceWarnings } from "./trace";

/**
 * The simulator: replays a trace through one policy on the fleet model of
 * `traces/README.md`, deterministically for a seed.
 */

export const basePolicyNames = [
  "hearth",
  "static",
  "terraform-nixos",
  "autogit",
  "ephemeral",
  "ghr",
  "oracle",
] as const;
type BasePolicyName = (typeof basePolicyNames)[number];

/**
 * The baselines with the binary cache: any team can add an S3 substituter (and a post-build hook that
 * pushes to it), so each baseline is compared with and without it.
 */
export const cachedBaselineNames = [
  "static+cache",
  "terraform-nixos+cache",
  "autogit+cache",
  "ephemeral+cache",
  "ghr+cache",
] as const;

export const policyNames = [...basePolicyNames, ...cachedBaselineNames] as const;
export type PolicyName = (typeof policyNames)[number];

/** The policy a name runs, and whether it has the binary cache unless told otherwise. */
export function policyVariant(name: PolicyName): { base: BasePolicyName; binaryCache: boolean } {
  if (name.endsWith("+cache"))
    return { base: name.slice(0, -"+cache".length) as BasePolicyName, binaryCache: true };
  // Hearth's runner image substitutes from the stage's cache and pushes every build to it
  // (nixos/modules/binary-cache.nix, enabled in nixos/configuration.nix; infra sets the URL).
  return { base: name as BasePolicyName, binaryCache: name === "hearth" };
}

export const isPolicyName = (name: string): name is PolicyName =>
  (policyNames as readonly string[]).includes(name);

/** One row of `npm run simulate -- --json`, exactly as the traces README defines it. */
export interface SimResult {
  policy: PolicyName;
  trace: string;
  jobs: number;
  /** Seconds from arrival to the job's first start. */
  waitP50: number;
  waitP95: number;
  waitMax: number;
  costUsd: number;
  /** Hours instances ran (launching, in service or draining); stopped hours are not included. */
  instanceHours: number;
  /** Share of started jobs whose first start was on a store warm for their cache key. */
  warmHitRate: number;
  interruptedJobs: number;
  /** Jobs that never finished, unroutable ones included. */
  lostJobs: number;
}

/** Figures beyond the README's, for people and tests. */
export interface SimDetails {
  unroutable: { jobId: string; reason: string }[];
  stoppedHours: number;
  /** The simulated time at which the run ended (the last job finished, or the horizon). */
  endSeconds: number;
  resorted: boolean;
  interruptions: InterruptionFigures;
  stores: StoreFigures;
}

/** Where each job's store came from at its first start, and how many warm hits were achievable. */
export interface StoreFigures {
  /** The run had the binary cache. */
  binaryCache: boolean;
  warm: number;
  substituted: number;
  cold: number;
  /** Jobs whose key an instance of their pool had finished before their first start. */
  achievable: number;
  /** Warm hits among the achievable ones. */
  warmOfAchievable: number;
  /** Store volumes attached to new instances, persistent spot interruptions that stopped, failed starts. */
  volumeAttaches: number;
  interruptionStops: number;
  failedStarts: number;
}

/** What spot interruptions cost a run. */
export interface InterruptionFigures {
  /** The spot interruption rate the run used (per instance-hour): the model's times the multiplier. */
  ratePerHour: number;
  /** Jobs whose run was cut short at least once (the README's `interruptedJobs`). */
  interruptedJobs: number;
  /** Runs cut short (a job interrupted twice counts twice). */
  interruptions: number;
  /** Times an interrupted job was queued again. */
  retries: number;
  /** Times an interrupted job started again on a spot instance (it could be interrupted again). */
  restartsOnSpot: number;
  /** Interrupted jobs never queued again (retries spent): part of `lostJobs`. */
  lostToInterruptions: number;
  /** Seconds from each cut to the job's next start, over the interrupted jobs that started again. */
  extraWaitTotal: number;
  extraWaitP50: number;
  extraWaitP95: number;
  extraWaitMax: number;
  /** Seconds of runs cut short: work done again. */
  redoneSeconds: number;
}

export interface SimulateOptions {
  policy: PolicyName;
  seed?: number;
  model?: Partial<FleetModel>;
  /** Pool configs to route to and plan with; defaults to `defaultPools`. */
  pools?: readonly PoolConfig[];
  hearth?: Partial<HearthOptions>;
  /** Jobs not finished this long after the last arrival are lost. */
  horizonSeconds?: number;
  /** Multiplies the model's spot interruption rate (`--interruption-rate-multiplier`); default 1. */
  interruptionRateMultiplier?: number;
  /**
   * The binary cache: on or off for this run; by default a `+cache` variant and Hearth (whose product
   * pushes to and substitutes from the stage's cache) have it, the baselines do not.
   */
  binaryCache?: boolean;
  /** Called once the policy has started, before the first event: to schedule extra events in tests. */
  onStart?: (fleet: Fleet, clock: EventQueue, jobs: readonly SimJob[]) => void;
}

const factories: Record<Exclude<BasePolicyName, "oracle">, (options: SimulateOptions) => PolicyFactory> = {
  hearth: (options) => hearthPolicy({ ...defaultHearthOptions, ...options.hearth }),
  static: () => staticPolicy,
  "terraform-nixos": () => terraformNixosPolicy,
  autogit: () => autogitPolicy,
  ephemeral: () => ephemeralPolicy,
  ghr: () => ghrPolicy,
};

/** Pool settings a what-if run changes on every pool: the simulator's flags, its reports, tests. */
export interface PoolSettingsChange {
  warm?: Partial<PoolConfig["warm"]>;
  idleTimeouts?: Partial<PoolConfig["idleTimeouts"]>;
}

/** `pools` with `change` made to each, checked again by the pool schema. */
export function withPoolSettings(pools: readonly PoolConfig[], change: PoolSettingsChange): PoolConfig[] {
  return pools.map((pool) =>
    poolConfigSchema.parse({
      ...pool,
      warm: { ...pool.warm, ...change.warm },
      idleTimeouts: { ...pool.idleTimeouts, ...change.idleTimeouts },
    }),
  );
}

/** The pool configs the simulator plans with: the model's boot times, slots and maximum (it bills with the model's prices). */
export function poolsForModel(pools: readonly PoolConfig[], model: FleetModel): PoolConfig[] {
  return pools.map((pool) =>
    poolConfigSchema.parse({
      ...pool,
      slotsPerInstance: model.slotsPerInstance,
      maxInstances: model.maxInstancesPerPool,
      boot: { coldSeconds: model.coldBootSeconds, warmSeconds: model.warmBootSeconds },
    }),
  );
}

/** Trace labels route as a GitHub job's would; a job without labels routes as an untagged GitLab job. */
export function routeTraceJob(job: TraceJob, pools: readonly PoolConfig[]) {
  return routeJob(
    { source: job.labels.length === 0 ? "gitlab" : "github", labels: job.labels, labelsKnown: true },
    pools,
  );
}

export interface SimRun {
  fleet: Fleet;
  jobs: SimJob[];
  unroutable: SimDetails["unroutable"];
  model: FleetModel;
  /** When the run ended: the last job finished, or the horizon passed. */
  endSeconds: number;
  binaryCache: boolean;
}

export function simulate(trace: Trace, options: SimulateOptions): SimResult & { details: SimDetails } {
  const run = runSimulation(trace, options);
  const { jobs, unroutable, model } = run;
  const details = (stoppedHours: number): SimDetails => ({
    unroutable,
    stoppedHours,
    endSeconds: run.endSeconds,
    resorted: trace.resorted,
    interruptions: interruptionFigures(run),
    stores: storeFigures(run),
  });
  if (variant(options).base === "oracle") {
    // Like every policy, the oracle runs until the horizon: a job still running then is lost, and
    // billed until then.
    const { cost, slotSeconds, finished } = oracleCost(jobs, model, run.endSeconds);
    return {
      ...summarize(options.policy, trace, jobs.length, unroutable.length, new Float64Array(jobs.length), {
        started: jobs.length,
        costUsd: cost,
        instanceHours: slotSeconds / model.slotsPerInstance / 3600,
        warmStarts: jobs.length,
        interruptedJobs: 0,
        finished,
      }),
      details: details(0),
    };
  }
  const totals = run.fleet.totals();
  const waits = new Float64Array(jobs.length);
  let started = 0;
  let warmStarts = 0;
  for (const [index, job] of jobs.entries()) {
    // A job that never started waited at least until the run ended (the horizon): counted so, a
    // run that starts nothing does not report waits of 0.
    if (job.firstStartAt < 0) {
      waits[index] = Math.max(0, run.endSeconds - job.trace.createdAt);
      continue;
    }
    waits[index] = job.firstStartAt - job.trace.createdAt;
    started++;
    if (job.warmStart) warmStarts++;
  }
  return {
    ...summarize(options.policy, trace, jobs.length, unroutable.length, waits, {
      started,
      costUsd: totals.cost,
      instanceHours: totals.runningSeconds / 3600,
      warmStarts,
      interruptedJobs: run.fleet.interruptedJobs,
      finished: run.fleet.finishedJobs,
    }),
    details: details(totals.stoppedSeconds / 3600),
  };
}

function variant(options: SimulateOptions): { base: BasePolicyName; binaryCache: boolean } {
  const { base, binaryCache } = policyVariant(options.policy);
  return { base, binaryCache: options.binaryCache ?? binaryCache };
}

/** Where the stores of a run's first starts came from. */
export function storeFigures(run: SimRun): StoreFigures {
  const figures: StoreFigures = {
    binaryCache: run.binaryCache,
    warm: 0,
    substituted: 0,
    cold: 0,
    achievable: 0,
    warmOfAchievable: 0,
    volumeAttaches: run.fleet.volumeAttaches,
    interruptionStops: run.fleet.interruptionStops,
    failedStarts: run.fleet.failedStarts,
  };
  for (const job of run.jobs) {
    if (job.firstStartAt < 0) continue;
    figures[job.store]++;
    if (job.achievable) {
      figures.achievable++;
      if (job.warmStart) figures.warmOfAchievable++;
    }
  }
  return figures;
}

/** Interruptions, retries, their extra wait and the jobs they lost, from a run's jobs. */
export function interruptionFigures(run: SimRun): InterruptionFigures {
  const waits: number[] = [];
  let interruptions = 0;
  let redone = 0;
  let lost = 0;
  let total = 0;
  for (const job of run.jobs) {
    if (job.interruptions === 0) continue;
    interruptions += job.interruptions;
    redone += job.redoneSeconds;
    if (job.state === "lost") lost++;
    // A job that never started again has no extra wait to measure (it is lost, or the run ended).
    else if (job.cutAt < 0) {
      waits.push(job.extraWaitSeconds);
      total += job.extraWaitSeconds;
    }
  }
  const sorted = Float64Array.from(waits).sort();
  return {
    ratePerHour: run.model.spotInterruptionsPerHour,
    interruptedJobs: run.fleet.interruptedJobs,
    interruptions,
    retries: run.fleet.retries,
    restartsOnSpot: run.fleet.restartsOnSpot,
    lostToInterruptions: lost,
    extraWaitTotal: total,
    extraWaitP50: percentile(sorted, 0.5),
    extraWaitP95: percentile(sorted, 0.95),
    extraWaitMax: sorted.length > 0 ? (sorted[sorted.length - 1] as number) : 0,
    redoneSeconds: redone,
  };
}

/** When a run ends at the latest: jobs not finished by then are lost. */
function horizonOf(jobs: readonly SimJob[], options: SimulateOptions): number {
  const lastArrival = jobs.at(-1)?.trace.createdAt ?? 0;
  return lastArrival + (options.horizonSeconds ?? 30 * 24 * 3600);
}

/** Runs the simulation and returns its raw state, for diagnostics and tests. */
export function runSimulation(trace: Trace, options: SimulateOptions): SimRun {
  const multiplier = options.interruptionRateMultiplier ?? 1;
  if (!(multiplier >= 0 && Number.isFinite(multiplier)))
    throw new Error(`the interruption rate multiplier must be a non-negative number, got ${multiplier}`);
  const parsed = fleetModelSchema.parse({ ...options.model });
  const model = { ...parsed, spotInterruptionsPerHour: parsed.spotInterruptionsPerHour * multiplier };
  const seed = options.seed ?? 1;
  const pools = poolsForModel(options.pools ?? defaultPools, model);
  const clock = new EventQueue();
  const fleet = new Fleet(
    clock,
    model,
    pools.map((pool) => pool.name),
    Random.stream(seed, "spot-interruptions"),
    Random.stream(seed, "claims"),
  );
  const { base, binaryCache } = variant(options);
  fleet.binaryCache = binaryCache;
  fleet.zoneChoice = Random.stream(seed, "zones");
  fleet.spotStarts = Random.stream(seed, "spot-starts");
  const unroutable: SimDetails["unroutable"] = [];
  const jobs: SimJob[] = [];
  for (const job of trace.jobs) {
    const route = routeTraceJob(job, pools);
    if (!isRouted(route)) {
      unroutable.push({ jobId: job.id, reason: route.unroutable });
      continue;
    }
    const pool = fleet.pools[pools.findIndex((candidate) => candidate.name === route.pool)];
    if (pool === undefined) throw new Error(`routed to an unknown pool ${route.pool}`);
    jobs.push(new SimJob(jobs.length, job, pool));
  }
  const horizon = horizonOf(jobs, options);
  if (base === "oracle") {
    const end = jobs.reduce(
      (latest, job) => Math.max(latest, job.trace.createdAt + job.trace.warmSeconds),
      0,
    );
    return { fleet, jobs, unroutable, model, endSeconds: Math.min(end, horizon), binaryCache };
  }

  let done = false;
  fleet.total = jobs.length;
  fleet.onAllFinished = () => {
    done = true;
    clock.halt();
  };
  const context: PolicyContext = { fleet, clock, model, pools, jobs, seed, active: () => !done };
  const policy = factories[base](options)(context);
  fleet.observer = policy.observer;
  policy.start();
  options.onStart?.(fleet, clock, jobs);
  // Arrivals are chained (each schedules the next) to keep the event queue small.
  const arrive = (index: number) => {
    const job = jobs[index] as SimJob;
    fleet.enqueue(job);
    const next = jobs[index + 1];
    if (next !== undefined) clock.at(next.trace.createdAt, () => arrive(index + 1));
  };
  const first = jobs[0];
  if (first !== undefined) {
    clock.at(first.trace.createdAt, () => arrive(0));
    clock.run(horizon);
    // Jobs left unfinished: the run lasted until the horizon, and every policy pays until then, even
    // one with no event of its own to get there by (a fixed fleet).
    if (!done) clock.advanceTo(horizon);
  }
  done = true;
  return { fleet, jobs, unroutable, model, endSeconds: clock.now, binaryCache };
}

function summarize(
  policy: PolicyName,
  trace: Trace,
  routed: number,
  unroutable: number,
  waits: Float64Array,
  figures: {
    /** Jobs that started at least once: the share of warm starts is over them. */
    started: number;
    costUsd: number;
    instanceHours: number;
    warmStarts: number;
    interruptedJobs: number;
    finished: number;
  },
): SimResult {
  waits.sort();
  return {
    policy,
    trace: trace.name,
    jobs: routed + unroutable,
    waitP50: percentile(waits, 0.5),
    waitP95: percentile(waits, 0.95),
    waitMax: waits.length > 0 ? (waits[waits.length - 1] as number) : 0,
    costUsd: figures.costUsd,
    instanceHours: figures.instanceHours,
    warmHitRate: figures.started > 0 ? figures.warmStarts / figures.started : 0,
    interruptedJobs: figures.interruptedJobs,
    lostJobs: routed - figures.finished + unroutable,
  };
}

/** Nearest-rank percentile of sorted values; 0 for none. */
export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}
