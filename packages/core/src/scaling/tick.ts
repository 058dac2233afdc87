import { type PoolStoreHealth, poolStoreHealth } from "../instances/store-health";
import type { Job } from "../jobs";
import type { QueueSummary } from "../planner";
import type { ScalingDeps } from "./deps";
import { refreshForecast } from "./forecast";
import { queuedByPool } from "./observe";
import type { PoolState } from "./records";
import { requestScale, type ScaleRequest } from "./request";

/**
 * The minute tick, the same in AWS (an EventBridge Scheduler cron) and locally (a timer): refresh the
 * demand forecast when it is ten minutes old, route the queue (resolving GitLab tags webhooks could
 * not), sum up each pool's store health (`poolStoreHealth`), and start ScaleFleet for every pool
 * that has something to do: queued jobs, instances in service (idle ones age out), or no run for ten
 * minutes (to reconcile). An idle pool costs no run.
 */

export const FORECAST_EVERY_MS = 10 * 60_000;
export const RECONCILE_EVERY_MS = 10 * 60_000;

export interface TickSummary {
  queue: Array<{ pool: string; queued: number; oldestWaitSeconds: number }>;
  unroutable: { count: number; oldestWaitSeconds: number; reasons: string[] };
  /** Per pool with an instance reporting: its worst store health. */
  stores: Array<{ pool: string } & PoolStoreHealth>;
  runs: Array<{ pool: string; outcome: ScaleRequest | "idle" }>;
  failures: string[];
}

/** Seconds the oldest of `jobs` has been queued, 0 when there is none. */
export function oldestWaitSeconds(jobs: readonly Pick<Job, "queuedAt">[], now: number): number {
  let oldest = Number.POSITIVE_INFINITY;
  for (const job of jobs) if (job.queuedAt) oldest = Math.min(oldest, Date.parse(job.queuedAt));
  return Number.isFinite(oldest) ? Math.max(0, (now - oldest) / 1000) : 0;
}

/** Whether a pool needs a ScaleFleet run now. */
export function poolNeedsRun(
  state: PoolState | undefined,
  active: boolean,
  queued: number,
  now: number,
): boolean {
  if (queued > 0 || active || !state) return true;
  if (now - Date.parse(state.at) >= RECONCILE_EVERY_MS) return true;
  return state.desiredWarm + state.desiredBurst > 0;
}

export async function tick(
  deps: ScalingDeps,
  start: (pool: string, holder: string) => Promise<void>,
  holder: (pool: string) => string,
): Promise<TickSummary> {
  const now = deps.now().getTime();
  const summary: TickSummary = {
    queue: [],
    unroutable: { count: 0, oldestWaitSeconds: 0, reasons: [] },
    stores: [],
    runs: [],
    failures: [],
  };
  const attempt = async (what: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      summary.failures.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  await attempt("forecast", async () => {
    const stored = await Promise.all(deps.pools.map((pool) => deps.scalingRecords.forecast(pool.name)));
    if (stored.some((forecast) => !forecast || now - Date.parse(forecast.at) >= FORECAST_EVERY_MS)) {
      await refreshForecast(deps);
    }
  });

  let queue: QueueSummary | undefined;
  await attempt("queue", async () => {
    const routed = await queuedByPool(deps);
    queue = routed.summary;
    const stranded = routed.unroutable.map(({ job }) => job);
    summary.unroutable = {
      count: stranded.length,
      oldestWaitSeconds: oldestWaitSeconds(stranded, now),
      reasons: [...new Set(routed.unroutable.map(({ reason }) => reason))].slice(0, 5),
    };
    for (const pool of deps.pools) {
      const oldest = routed.summary.oldest(pool.name);
      summary.queue.push({
        pool: pool.name,
        queued: routed.summary.count(pool.name),
        oldestWaitSeconds: oldest === null ? 0 : Math.max(0, (now - oldest) / 1000),
      });
    }
  });

  await attempt("stores", async () => {
    const records = await Promise.all(deps.pools.map((pool) => deps.registry.inPool(pool.name)));
    deps.pools.forEach((pool, index) => {
      const health = poolStoreHealth(records[index] ?? [], now);
      if (health.reporting > 0) summary.stores.push({ pool: pool.name, ...health });
    });
  });

  for (const pool of deps.pools) {
    await attempt(`scale ${pool.name}`, async () => {
      const [state, fleet] = await Promise.all([
        deps.scalingRecords.get(pool.name),
        deps.scalingRecords.fleet(pool.name),
      ]);
      const active = (fleet?.instances ?? []).some((i) =>
        ["pending", "in-service", "stopping"].includes(i.lifecycle),
      );
      const queued = queue?.count(pool.name) ?? 0;
      if (!poolNeedsRun(state, active, queued, now)) {
        summary.runs.push({ pool: pool.name, outcome: "idle" });
        return;
      }
      const outcome = await requestScale(deps, pool.name, start, holder(pool.name), {
        covered: false,
        // A run under way observes on its own; the tick has nothing new to tell it.
        wake: false,
      });
      summary.runs.push({ pool: pool.name, outcome });
    });
  }
  return summary;
}
