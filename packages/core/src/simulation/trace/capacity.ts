/**
 * What stopped capacity costs at a short p95 wait, whatever the policy, under the fleet model of
 * traces/README.md. A job starts within the warm-resume floor (35 s) only on an instance that exists
 * when it arrives: running, or stopped and resumed in 25 s (a launch takes 75 s). So at the arrival of
 * at least `coverage` of the jobs, the pool's instances, running or stopped, must have a slot for each
 * job running then; those not running are stopped and pay `stoppedHourly`.
 *
 * The figures are loose on purpose, each assumption lowering them: every job starts on arrival and
 * runs its warm duration, instances pack jobs perfectly, and a store's warmth for cache keys is not
 * asked for. Three rules for how many instances a pool keeps:
 * - `constant`: a fixed number, the fewest that give `coverage` of the pool's jobs a slot;
 * - `lastDay`: the most jobs at once over the previous 24 hours (a forecast from recent load);
 * - `nextHour`: the most jobs at once over the coming hour: foresight no policy has, a bound for any
 *   forecast of load.
 */
import type { FleetModel } from "./model";
import type { Trace, TraceJob } from "./trace";

export const capacityRules = ["constant", "lastDay", "nextHour"] as const;
export type CapacityRule = (typeof capacityRules)[number];

export interface CapacityFloor {
  jobs: number;
  /** The oracle's cost: every job billed only while it runs, per slot, at the spot price. */
  oracleUsd: number;
  /** Per pool, the instances the `constant` rule keeps. */
  constantInstances: Record<string, number>;
  rules: Record<CapacityRule, { stoppedHours: number; stoppedUsd: number; coveredJobs: number }>;
}

/** The load is sampled per minute: its most at once within each minute. */
const bucketSeconds = 60;

interface PoolLoad {
  /** The most jobs running at once within each minute. */
  peak: number[];
  /** Each job's minute of arrival and the jobs running then, itself included. */
  arrivals: { bucket: number; load: number }[];
}

/** The floors of `trace`, whose jobs run in the pools `poolOf` names (null: routed nowhere). */
export function capacityFloor(
  trace: Trace,
  poolOf: (job: TraceJob) => string | null,
  model: FleetModel,
  coverage = 0.95,
): CapacityFloor {
  const slots = model.slotsPerInstance;
  const instances = (jobs: number) => Math.ceil(jobs / slots);
  const byPool = new Map<string, { at: number; seconds: number }[]>();
  let end = 0;
  let busySeconds = 0;
  for (const job of trace.jobs) {
    const pool = poolOf(job);
    if (pool === null) continue;
    const list = byPool.get(pool) ?? [];
    list.push({ at: job.createdAt, seconds: job.warmSeconds });
    byPool.set(pool, list);
    end = Math.max(end, job.createdAt + job.warmSeconds);
    busySeconds += job.warmSeconds;
  }
  const buckets = Math.floor(end / bucketSeconds) + 1;
  const floor: CapacityFloor = {
    jobs: 0,
    oracleUsd: (busySeconds / 3600) * (model.spotHourly / slots),
    constantInstances: {},
    rules: {
      constant: { stoppedHours: 0, stoppedUsd: 0, coveredJobs: 0 },
      lastDay: { stoppedHours: 0, stoppedUsd: 0, coveredJobs: 0 },
      nextHour: { stoppedHours: 0, stoppedUsd: 0, coveredJobs: 0 },
    },
  };
  for (const [pool, jobs] of [...byPool].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const load = poolLoad(jobs, buckets);
    floor.jobs += load.arrivals.length;
    const sorted = load.arrivals.map((arrival) => arrival.load).sort((a, b) => a - b);
    const fixed = instances(sorted[Math.max(0, Math.ceil(coverage * sorted.length) - 1)] ?? 0);
    floor.constantInstances[pool] = fixed;
    const behind = slidingMax(load.peak, (24 * 3600) / bucketSeconds, "behind");
    const ahead = slidingMax(load.peak, 3600 / bucketSeconds, "ahead");
    const stock: Record<CapacityRule, (bucket: number) => number> = {
      constant: () => fixed,
      lastDay: (b) => instances(behind[b] as number),
      nextHour: (b) => instances(ahead[b] as number),
    };
    for (const rule of capacityRules) {
      const figures = floor.rules[rule];
      let stopped = 0;
      for (let b = 0; b < buckets; b++)
        stopped += Math.max(0, stock[rule](b) - instances(load.peak[b] as number));
      figures.stoppedHours += (stopped * bucketSeconds) / 3600;
      for (const arrival of load.arrivals)
        if (arrival.load <= slots * stock[rule](arrival.bucket)) figures.coveredJobs++;
    }
  }
  for (const rule of capacityRules)
    floor.rules[rule].stoppedUsd = floor.rules[rule].stoppedHours * model.stoppedHourly;
  return floor;
}

function poolLoad(jobs: readonly { at: number; seconds: number }[], buckets: number): PoolLoad {
  // Arrivals (+1) and finishes (-1) in time order, a finish before an arrival at the same moment.
  const events: [number, number][] = [];
  for (const job of jobs) events.push([job.at, 1], [job.at + job.seconds, -1]);
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const peak = new Array<number>(buckets).fill(0);
  const arrivals: PoolLoad["arrivals"] = [];
  let level = 0;
  let bucket = 0;
  for (const [at, change] of events) {
    const b = Math.min(buckets - 1, Math.floor(at / bucketSeconds));
    // The level carries into the minutes without events.
    for (; bucket < b; bucket++) peak[bucket + 1] = Math.max(peak[bucket + 1] as number, level);
    level += change;
    peak[b] = Math.max(peak[b] as number, level);
    if (change > 0) arrivals.push({ bucket: b, load: level });
  }
  return { peak, arrivals };
}

/** The most of `values` over the `width` entries before each one (`behind`), or from it on (`ahead`). */
export function slidingMax(values: readonly number[], width: number, side: "behind" | "ahead"): number[] {
  const n = values.length;
  const out = new Array<number>(n).fill(0);
  // Indices whose values decrease from front to back: the front is the window's largest.
  const window: number[] = [];
  const at = (index: number) => values[index] as number;
  const push = (index: number) => {
    while (window.length && at(window[window.length - 1] as number) <= at(index)) window.pop();
    window.push(index);
  };
  if (side === "ahead") {
    for (let b = n - 1; b >= 0; b--) {
      push(b);
      while ((window[0] as number) >= b + width) window.shift();
      out[b] = at(window[0] as number);
    }
  } else {
    for (let b = 0; b < n; b++) {
      while (window.length && (window[0] as number) < b - width) window.shift();
      out[b] = window.length ? at(window[0] as number) : 0;
      push(b);
    }
  }
  return out;
}
