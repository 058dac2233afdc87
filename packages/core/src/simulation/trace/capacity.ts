/**
 * What stopped capacity costs at a short p95 wait, whatever the policy, under the fleet model of
 * traces/README.md. A job starts within the warm-resume floor (35 s) only on an instance that exists
 * when it arrives: running, or stopped and resumed in 25 s (a launch takes 75 s). So at the arrival of
 * at least `coverage` of the jobs, the pool's instances, running or stopped, must have a slot for each
 * job running then; those not running are stopped and pay `stoppedHourly`.
 *
 * The figures are loose on purpose, each assumption lowering them: every job starts on arrival and
 * runs its warm duration, instances pack jobs perfectly, and a store's warmth for cache keys is not
 * asked for. Three rules for how many instances a pool keeps, each a rule, not every policy:
 * - `constant`: a fixed number per pool, the cheapest numbers that give `coverage` of all the trace's
 *   jobs a slot (chosen jointly over up to `JOINT_POOLS` pools; beyond, each pool covers `coverage`
 *   of its own jobs, which raises the figure);
 * - `pastPeak`: the most jobs at once over the previous `pastHours` (24: a forecast from the last
 *   day's load);
 * - `comingPeak`: the most jobs at once over the next `comingHours` (1): foresight, which no policy
 *   has, for illustration (a stock of each minute's own load would cost nothing stopped);
 * - `hourOfDay`: a fixed number per pool for each hour of the day (hours counted from the trace's
 *   start), the cheapest numbers that give `coverage` of all the trace's jobs a slot, chosen with the
 *   whole trace known: the most that a forecast keeping one profile by time of day could save, since
 *   it learns that profile from days already past;
 * - `seasonal`: what a forecast by time of day learned from the days already past keeps: the most
 *   jobs at once within `spreadMinutes` (60) either side of the same time on each of the past `days`
 *   (7), or over the past `recentHours` (3) if that is more (a day unlike the last week's).
 */
import type { FleetModel } from "./model";
import type { Trace, TraceJob } from "./trace";

export const capacityRules = ["constant", "pastPeak", "comingPeak", "hourOfDay", "seasonal"] as const;
export type CapacityRule = (typeof capacityRules)[number];

export interface CapacityFloor {
  jobs: number;
  /** The oracle's cost: every job billed only while it runs, per slot, at the spot price. */
  oracleUsd: number;
  /** Per pool, the instances the `constant` rule keeps. */
  constantInstances: Record<string, number>;
  rules: Record<CapacityRule, { stoppedHours: number; stoppedUsd: number; coveredJobs: number }>;
}

/** Up to this many pools, the `constant` rule's numbers are chosen together (an exhaustive search). */
export const JOINT_POOLS = 3;

/** The load is sampled per minute: its most at once within each minute. */
const bucketSeconds = 60;

/** The `seasonal` rule's window: the same time on each of the past `days`, and the past `recentHours`. */
export interface SeasonalWindow {
  days: number;
  spreadMinutes: number;
  recentHours: number;
}

export const defaultSeasonalWindow: SeasonalWindow = { days: 7, spreadMinutes: 60, recentHours: 3 };

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
  windows: { pastHours?: number; comingHours?: number; seasonal?: SeasonalWindow } = {},
): CapacityFloor {
  const pastHours = windows.pastHours ?? 24;
  const comingHours = windows.comingHours ?? 1;
  const seasonal = windows.seasonal ?? defaultSeasonalWindow;
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
      pastPeak: { stoppedHours: 0, stoppedUsd: 0, coveredJobs: 0 },
      comingPeak: { stoppedHours: 0, stoppedUsd: 0, coveredJobs: 0 },
      hourOfDay: { stoppedHours: 0, stoppedUsd: 0, coveredJobs: 0 },
      seasonal: { stoppedHours: 0, stoppedUsd: 0, coveredJobs: 0 },
    },
  };
  const pools = [...byPool].sort(([a], [b]) => (a < b ? -1 : 1));
  const choices: { pool: string; options: ConstantOption[]; own: number }[] = [];
  const hourly: ConstantOption[][] = [];
  for (const [pool, jobs] of pools) {
    const load = poolLoad(jobs, buckets);
    floor.jobs += load.arrivals.length;
    const behind = slidingMax(load.peak, Math.round((pastHours * 3600) / bucketSeconds), "behind");
    const ahead = slidingMax(load.peak, Math.round((comingHours * 3600) / bucketSeconds), "ahead");
    const sameTime = seasonalPeak(load.peak, seasonal);
    const stock: Record<"pastPeak" | "comingPeak" | "seasonal", (bucket: number) => number> = {
      pastPeak: (b) => instances(behind[b] as number),
      comingPeak: (b) => instances(ahead[b] as number),
      seasonal: (b) => instances(sameTime[b] as number),
    };
    for (const rule of ["pastPeak", "comingPeak", "seasonal"] as const) {
      const figures = floor.rules[rule];
      let stopped = 0;
      for (let b = 0; b < buckets; b++)
        stopped += Math.max(0, stock[rule](b) - instances(load.peak[b] as number));
      figures.stoppedHours += (stopped * bucketSeconds) / 3600;
      for (const arrival of load.arrivals)
        if (arrival.load <= slots * stock[rule](arrival.bucket)) figures.coveredJobs++;
    }
    const sorted = load.arrivals.map((arrival) => arrival.load).sort((a, b) => a - b);
    const own = instances(sorted[Math.max(0, Math.ceil(coverage * sorted.length) - 1)] ?? 0);
    choices.push({ pool, options: constantOptions(load, sorted, slots), own });
    for (let hour = 0; hour < HOURS_PER_DAY; hour++) {
      const inHour = (b: number) => Math.floor((b * bucketSeconds) / 3600) % HOURS_PER_DAY === hour;
      const loads = load.arrivals
        .filter((arrival) => inHour(arrival.bucket))
        .map((arrival) => arrival.load)
        .sort((a, b) => a - b);
      const peak = load.peak.filter((_, b) => inHour(b));
      hourly.push(constantOptions({ peak, arrivals: [] }, loads, slots));
    }
  }
  const hourOfDay = cheapestCoveringMany(hourly, Math.ceil(coverage * floor.jobs));
  floor.rules.hourOfDay.stoppedHours = (hourOfDay.stoppedMinutes * bucketSeconds) / 3600;
  floor.rules.hourOfDay.coveredJobs = hourOfDay.covered;
  const picked =
    choices.length <= JOINT_POOLS
      ? cheapestCovering(
          choices.map((choice) => choice.options),
          Math.ceil(coverage * floor.jobs),
        )
      : choices.map((choice) => choice.own);
  choices.forEach((choice, index) => {
    const count = picked[index] as number;
    const option = choice.options[count] as ConstantOption;
    floor.constantInstances[choice.pool] = count;
    floor.rules.constant.stoppedHours += (option.stoppedMinutes * bucketSeconds) / 3600;
    floor.rules.constant.coveredJobs += option.covered;
  });
  for (const rule of capacityRules)
    floor.rules[rule].stoppedUsd = floor.rules[rule].stoppedHours * model.stoppedHourly;
  return floor;
}

/** A pool kept at a fixed number of instances: the stopped minutes it pays, and the jobs it gives a slot. */
interface ConstantOption {
  stoppedMinutes: number;
  covered: number;
}

/** For each fixed number of instances, from none to enough for the pool's largest load. */
function constantOptions(load: PoolLoad, sortedLoads: readonly number[], slots: number): ConstantOption[] {
  const running = load.peak.map((peak) => Math.ceil(peak / slots));
  const most = Math.ceil((sortedLoads[sortedLoads.length - 1] ?? 0) / slots);
  // Minutes with each number of instances running.
  const minutes = new Array<number>(Math.max(most, ...running) + 2).fill(0);
  for (const r of running) minutes[r] = (minutes[r] as number) + 1;
  const options: ConstantOption[] = [];
  let stopped = 0;
  let below = 0;
  let covered = 0;
  for (let count = 0; count <= most; count++) {
    // One more instance than `count - 1`: stopped in every minute that runs fewer than `count`.
    if (count > 0) stopped += below;
    below += minutes[count] as number;
    while (covered < sortedLoads.length && (sortedLoads[covered] as number) <= slots * count) covered++;
    options.push({ stoppedMinutes: stopped, covered });
  }
  return options;
}

/** The count per pool, one of each pool's `options`, that covers `needed` jobs for the fewest stopped minutes. */
function cheapestCovering(options: readonly ConstantOption[][], needed: number): number[] {
  // The most each pool after `index` can still cover, to stop a branch that cannot reach `needed`.
  const rest = options.map((_, index) =>
    options.slice(index + 1).reduce((sum, pool) => sum + (pool[pool.length - 1]?.covered ?? 0), 0),
  );
  let best: { cost: number; counts: number[] } | null = null;
  const counts: number[] = [];
  const search = (index: number, cost: number, covered: number) => {
    if (best !== null && cost >= best.cost) return;
    if (index === options.length) {
      if (covered >= needed) best = { cost, counts: [...counts] };
      return;
    }
    const pool = options[index] as ConstantOption[];
    for (let count = 0; count < pool.length; count++) {
      const option = pool[count] as ConstantOption;
      if (covered + option.covered + (rest[index] as number) < needed) continue;
      counts.push(count);
      search(index + 1, cost + option.stoppedMinutes, covered + option.covered);
      counts.pop();
    }
  };
  search(0, 0, 0);
  // With every pool at its most, every job has a slot: a choice always exists.
  return (
    (best as { cost: number; counts: number[] } | null)?.counts ?? options.map((pool) => pool.length - 1)
  );
}

const HOURS_PER_DAY = 24;

/**
 * One option of each group, covering at least `needed` jobs for the fewest stopped minutes: exact,
 * by the fewest minutes for each number of jobs covered so far (for many groups, where
 * `cheapestCovering`'s search would not end).
 */
function cheapestCoveringMany(groups: readonly ConstantOption[][], needed: number): ConstantOption {
  // fewest[c]: the fewest stopped minutes that cover c jobs (needed or more counted as needed), and
  // the jobs they cover.
  let fewest: (ConstantOption | undefined)[] = [{ stoppedMinutes: 0, covered: 0 }];
  for (const options of groups) {
    const next: (ConstantOption | undefined)[] = new Array(needed + 1);
    fewest.forEach((sofar, c) => {
      if (sofar === undefined) return;
      for (const option of options) {
        const at = Math.min(needed, c + option.covered);
        const minutes = sofar.stoppedMinutes + option.stoppedMinutes;
        const best = next[at];
        if (best === undefined || minutes < best.stoppedMinutes)
          next[at] = { stoppedMinutes: minutes, covered: sofar.covered + option.covered };
      }
    });
    fewest = next;
  }
  // With every group at its most, every job has a slot: a choice always exists.
  return fewest[needed] ?? { stoppedMinutes: 0, covered: 0 };
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

/**
 * For each minute, the most of `peak` within `spreadMinutes` either side of the same minute on each of
 * the past `days` (minutes before the trace's start count as none), or over the past `recentHours`.
 */
export function seasonalPeak(peak: readonly number[], window: SeasonalWindow): number[] {
  const day = Math.round((24 * 3600) / bucketSeconds);
  const spread = Math.round((window.spreadMinutes * 60) / bucketSeconds);
  // A day's window of a day or more would reach the present: foresight, not a forecast.
  if (spread >= day)
    throw new RangeError(`a seasonal spread of ${window.spreadMinutes} min reaches the present`);
  const width = 2 * spread + 1;
  // around[c]: the most over [c - spread, c + spread], clipped to the trace.
  const ahead = slidingMax(peak, width, "ahead");
  const around = (c: number) => {
    if (c - spread >= 0) return ahead[c - spread] as number;
    let most = 0;
    for (let i = 0; i <= Math.min(peak.length - 1, c + spread); i++) most = Math.max(most, peak[i] as number);
    return most;
  };
  const recent = slidingMax(peak, Math.round((window.recentHours * 3600) / bucketSeconds), "behind");
  return peak.map((_, b) => {
    let most = recent[b] as number;
    for (let d = 1; d <= window.days; d++) {
      const c = b - d * day;
      if (c + spread < 0) break;
      most = Math.max(most, around(c));
    }
    return most;
  });
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
