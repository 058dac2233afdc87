import type { QueuedGroup } from "./types";

/**
 * How many cache keys a pool's queue keeps by name. The rest are counted in one group: the planner
 * uses the keys only to resume stores warm for them, and a pool has at most `maxInstances` (≤ 1000)
 * stopped stores of 12 keys each, so the largest groups carry what matters. 100 groups of keys up to
 * 512 characters stay near 60 KB, well inside a Step Functions state (256 KB).
 */
export const QUEUE_GROUPS_PER_POOL = 100;

export interface QueuedJobView {
  pool: string;
  cacheKey: string;
  /** Epoch milliseconds. */
  queuedAt: number;
  /** The job is the last retry of an interrupted one (`lastRetry`): it prefers on-demand capacity. */
  retry?: boolean;
}

/**
 * Counts queued jobs by pool and cache key as they are added, keeping no job: a queue of any length
 * costs one entry per distinct key.
 */
export class QueueSummary {
  private readonly pools = new Map<string, Map<string, { count: number; oldest: number }>>();
  private readonly retryCounts = new Map<string, number>();

  add(job: QueuedJobView): void {
    if (job.retry) this.retryCounts.set(job.pool, (this.retryCounts.get(job.pool) ?? 0) + 1);
    let keys = this.pools.get(job.pool);
    if (keys === undefined) {
      keys = new Map();
      this.pools.set(job.pool, keys);
    }
    const group = keys.get(job.cacheKey);
    if (group === undefined) keys.set(job.cacheKey, { count: 1, oldest: job.queuedAt });
    else {
      group.count++;
      if (job.queuedAt < group.oldest) group.oldest = job.queuedAt;
    }
  }

  /** Queued jobs in `pool`. */
  count(pool: string): number {
    let total = 0;
    for (const group of this.pools.get(pool)?.values() ?? []) total += group.count;
    return total;
  }

  /** Queued jobs in `pool` that are the last retries of interrupted ones. */
  retries(pool: string): number {
    return this.retryCounts.get(pool) ?? 0;
  }

  /** Epoch milliseconds of the oldest queued job in `pool` (a job without a time is not counted); null if none. */
  oldest(pool: string): number | null {
    let oldest: number | null = null;
    for (const group of this.pools.get(pool)?.values() ?? []) {
      if (group.oldest > 0 && (oldest === null || group.oldest < oldest)) oldest = group.oldest;
    }
    return oldest;
  }

  /**
   * The groups of `pool` (or of every pool), at most `limit` named ones per pool: the largest, then
   * the oldest, then by key; the rest in one group with `cacheKey` null. Independent of the order
   * jobs were added in.
   */
  groups(pool?: string, limit = QUEUE_GROUPS_PER_POOL): QueuedGroup[] {
    const names = pool === undefined ? [...this.pools.keys()].sort() : [pool];
    const result: QueuedGroup[] = [];
    for (const name of names) {
      const keys = this.pools.get(name);
      if (keys === undefined) continue;
      const sorted = [...keys.entries()];
      // Observe summarises the queue at every iteration, and most queues hold one key or none.
      if (sorted.length > 1)
        sorted.sort(
          ([a, x], [b, y]) => y.count - x.count || x.oldest - y.oldest || (a < b ? -1 : a > b ? 1 : 0),
        );
      const all = sorted.length <= limit;
      for (const [cacheKey, group] of all ? sorted : sorted.slice(0, limit)) {
        result.push({ pool: name, cacheKey, count: group.count, oldestQueuedAt: group.oldest });
      }
      if (!all) {
        const rest = sorted.slice(limit);
        result.push({
          pool: name,
          cacheKey: null,
          count: rest.reduce((sum, [, group]) => sum + group.count, 0),
          oldestQueuedAt: rest.reduce(
            (min, [, group]) => Math.min(min, group.oldest),
            Number.POSITIVE_INFINITY,
          ),
        });
      }
    }
    return result;
  }
}

/** The planner's view of a list of queued jobs: see `QueueSummary.groups`. */
export function summarizeQueue(jobs: Iterable<QueuedJobView>, limit = QUEUE_GROUPS_PER_POOL): QueuedGroup[] {
  const summary = new QueueSummary();
  for (const job of jobs) summary.add(job);
  return summary.groups(undefined, limit);
}
