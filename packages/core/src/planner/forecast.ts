/**
 * What traffic a pool should expect, from the jobs that arrived recently. CI traffic comes in
 * pipelines (many jobs at once), follows the working day, and reuses a few cache keys a lot, so the
 * forecast keeps per pool: how big a burst gets, how many jobs were in the pool at once lately, how
 * often jobs arrive, and which cache keys are in use.
 *
 * `DemandHistory` is incremental (the simulator feeds it event by event); `forecastDemand` is the
 * pure function over a list of jobs that a control plane calls with jobs from the ledger. Both run
 * the same code.
 */

export interface Arrival {
  pool: string;
  /** Epoch milliseconds at which the job was queued. */
  at: number;
  cacheKey: string;
  /**
   * Epoch milliseconds at which it finished or was cancelled; null while it is queued or running.
   * Left out, the job counts for bursts and keys but not for the load (`loadJobs`, `peakJobs`),
   * which then only sees jobs whose finish is known.
   */
  finishedAt?: number | null;
}

export interface PoolDemand {
  /**
   * Jobs that may arrive together: the size of burst that a high quantile of the lookback's jobs
   * arrived in (weighted by jobs, not bursts: a wait target is over jobs, and a few wide pipelines
   * may carry most of them), what the pool should be able to start within seconds.
   */
  burstJobs: number;
  /** The largest burst over the lookback. */
  peakBurstJobs: number;
  /** The most jobs queued or running at once over the last peak window (a day by default). */
  peakJobs: number;
  /**
   * A high quantile, over the lookback's jobs, of the jobs queued or running while its burst
   * arrived (each burst's most at once, weighted by its jobs, as for `burstJobs`).
   */
  loadJobs: number;
  /** Jobs per hour over the rate window. */
  jobsPerHour: number;
  /** Cache keys used over the lookback, each with its number of jobs: what a warm store is worth. */
  keyWeights: Record<string, number>;
}

export type Demand = Record<string, PoolDemand>;

export interface ForecastOptions {
  /** Arrivals this close to the previous one belong to the same burst. */
  burstGapMs: number;
  /** How far back bursts and cache keys count. */
  lookbackMs: number;
  /** The quantile, over jobs, that `burstJobs` and `loadJobs` report. */
  burstQuantile: number;
  /** How far back `peakJobs` looks: a day covers the working day's peak. */
  peakWindowMs: number;
  /** The window of the arrival rate. */
  rateWindowMs: number;
  /** A job not finished this long after it arrived no longer counts as load (a lost webhook). */
  staleAfterMs: number;
}

export const defaultForecastOptions: ForecastOptions = {
  burstGapMs: 60_000,
  lookbackMs: 7 * 24 * 3600_000,
  burstQuantile: 0.9,
  peakWindowMs: 24 * 3600_000,
  rateWindowMs: 3600_000,
  staleAfterMs: 24 * 3600_000,
};

const bucketMs = 3600_000;

interface Burst {
  last: number;
  size: number;
  /** The most jobs queued or running during the burst. */
  load: number;
}

/** Weighted counts of small non-negative integers, for quantiles without sorting. */
class Histogram {
  private readonly counts: number[] = [];
  private total = 0;

  add(value: number, delta: number): void {
    this.counts[value] = (this.counts[value] ?? 0) + delta;
    this.total += delta;
  }

  /** The `q` quantile (nearest rank); 0 when empty. */
  quantile(q: number): number {
    if (this.total <= 0) return 0;
    const rank = Math.min(this.total, Math.max(1, Math.ceil(q * this.total)));
    let seen = 0;
    for (let value = 0; value < this.counts.length; value++) {
      seen += this.counts[value] ?? 0;
      if (seen >= rank) return value;
    }
    return this.counts.length - 1;
  }
}

interface PoolHistory {
  bursts: Burst[];
  burstHead: number;
  sizes: Histogram;
  loads: Histogram;
  /** Arrival times within the rate window, oldest first from `recentHead`. */
  recent: number[];
  recentHead: number;
  /** Jobs queued or running now, and the most at once per hour bucket. */
  level: number;
  peaks: { bucket: number; peak: number }[];
  /** Jobs per cache key over the lookback; handed out as is, so it is kept up to date in place. */
  keys: Record<string, number>;
  /** Key uses in arrival order, for expiry, oldest first from `keyLogHead`. */
  keyLog: { at: number; key: string }[];
  keyLogHead: number;
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byName = <T>([a]: [string, T], [b]: [string, T]): number => compare(a, b);

export class DemandHistory {
  private readonly pools = new Map<string, PoolHistory>();

  constructor(readonly options: ForecastOptions = defaultForecastOptions) {}

  /** Records a job's arrival. Events (arrivals and finishes) must come in time order. */
  observe(arrival: Arrival): void {
    const history = this.pool(arrival.pool);
    history.level++;
    const last = history.bursts[history.bursts.length - 1];
    if (
      last !== undefined &&
      history.bursts.length > history.burstHead &&
      arrival.at - last.last <= this.options.burstGapMs
    ) {
      history.sizes.add(last.size, -last.size);
      history.loads.add(last.load, -last.size);
      last.size++;
      last.last = arrival.at;
      last.load = Math.max(last.load, history.level);
    } else {
      history.bursts.push({ last: arrival.at, size: 1, load: history.level });
    }
    const burst = history.bursts[history.bursts.length - 1] as Burst;
    history.sizes.add(burst.size, burst.size);
    history.loads.add(burst.load, burst.size);
    history.recent.push(arrival.at);
    history.keys[arrival.cacheKey] = (history.keys[arrival.cacheKey] ?? 0) + 1;
    history.keyLog.push({ at: arrival.at, key: arrival.cacheKey });
    const bucket = Math.floor(arrival.at / bucketMs);
    const top = history.peaks[history.peaks.length - 1];
    if (top?.bucket === bucket) top.peak = Math.max(top.peak, history.level);
    else history.peaks.push({ bucket, peak: history.level });
  }

  /** Records that a job of `pool` finished (or was cancelled). */
  finish(pool: string, _at: number): void {
    const history = this.pool(pool);
    history.level = Math.max(0, history.level - 1);
  }

  /**
   * The forecast at `now` for every pool seen, in name order. Each `keyWeights` is the history's own
   * record, updated in place by later events: copy it to keep it.
   */
  forecast(now: number): Demand {
    const demand: Demand = {};
    for (const [name, history] of [...this.pools].sort(byName)) {
      this.expire(history, now);
      let peakJobs = history.level;
      const since = Math.floor((now - this.options.peakWindowMs) / bucketMs);
      for (const { bucket, peak } of history.peaks) if (bucket >= since) peakJobs = Math.max(peakJobs, peak);
      demand[name] = {
        burstJobs: history.sizes.quantile(this.options.burstQuantile),
        peakBurstJobs: history.sizes.quantile(1),
        peakJobs,
        loadJobs: history.loads.quantile(this.options.burstQuantile),
        jobsPerHour: ((history.recent.length - history.recentHead) * 3600_000) / this.options.rateWindowMs,
        keyWeights: history.keys,
      };
    }
    return demand;
  }

  private pool(name: string): PoolHistory {
    let history = this.pools.get(name);
    if (history === undefined) {
      history = {
        bursts: [],
        burstHead: 0,
        sizes: new Histogram(),
        loads: new Histogram(),
        recent: [],
        recentHead: 0,
        level: 0,
        peaks: [],
        // No prototype: a cache key may be any string, `__proto__` included.
        keys: Object.create(null) as Record<string, number>,
        keyLog: [],
        keyLogHead: 0,
      };
      this.pools.set(name, history);
    }
    return history;
  }

  private expire(history: PoolHistory, now: number): void {
    const horizon = now - this.options.lookbackMs;
    while (history.burstHead < history.bursts.length) {
      const burst = history.bursts[history.burstHead] as Burst;
      if (burst.last >= horizon) break;
      history.sizes.add(burst.size, -burst.size);
      history.loads.add(burst.load, -burst.size);
      history.burstHead++;
    }
    if (history.burstHead > 4096) {
      history.bursts.splice(0, history.burstHead);
      history.burstHead = 0;
    }
    const rateHorizon = now - this.options.rateWindowMs;
    while (
      history.recentHead < history.recent.length &&
      (history.recent[history.recentHead] as number) < rateHorizon
    ) {
      history.recentHead++;
    }
    if (history.recentHead > 4096) {
      history.recent.splice(0, history.recentHead);
      history.recentHead = 0;
    }
    const since = Math.floor((now - this.options.peakWindowMs) / bucketMs);
    let old = 0;
    while (old < history.peaks.length && (history.peaks[old] as { bucket: number }).bucket < since) old++;
    if (old > 0) history.peaks.splice(0, old);
    while (history.keyLogHead < history.keyLog.length) {
      const entry = history.keyLog[history.keyLogHead] as { at: number; key: string };
      if (entry.at >= horizon) break;
      history.keyLogHead++;
      const count = (history.keys[entry.key] ?? 1) - 1;
      if (count === 0) delete history.keys[entry.key];
      else history.keys[entry.key] = count;
    }
    if (history.keyLogHead > 4096) {
      history.keyLog.splice(0, history.keyLogHead);
      history.keyLogHead = 0;
    }
  }
}

/**
 * The forecast from the pools' recent jobs (any order), as a control plane computes it from the
 * ledger: arrivals up to `now`, and the finishes among them. Pass a week of jobs (the lookback).
 */
export function forecastDemand(
  jobs: readonly Arrival[],
  now: number,
  options: ForecastOptions = defaultForecastOptions,
): Demand {
  const history = new DemandHistory(options);
  type Event = { at: number; order: number; pool: string; arrival?: Arrival };
  const events: Event[] = [];
  for (const job of jobs) {
    if (job.at > now) continue;
    events.push({ at: job.at, order: 0, pool: job.pool, arrival: job });
    // Unknown: as if it finished at once. Null (still running): until it goes stale.
    const finishedAt =
      job.finishedAt === undefined ? job.at : (job.finishedAt ?? job.at + options.staleAfterMs);
    if (finishedAt <= now) events.push({ at: Math.max(job.at, finishedAt), order: 1, pool: job.pool });
  }
  // Arrivals before finishes at the same moment, then by pool and key, so any input order gives
  // the same forecast.
  events.sort(
    (a, b) =>
      a.at - b.at ||
      a.order - b.order ||
      compare(a.pool, b.pool) ||
      compare(a.arrival?.cacheKey ?? "", b.arrival?.cacheKey ?? ""),
  );
  for (const event of events) {
    if (event.arrival) history.observe(event.arrival);
    else history.finish(event.pool, event.at);
  }
  return history.forecast(now);
}
