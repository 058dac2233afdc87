import { cacheKeyOf } from "../jobs";
import { type Arrival, forecastDemand } from "../planner";
import { routeJob } from "../pools";
import type { ScalingDeps } from "./deps";

/** The forecast from last week's arrivals, stored per pool; refreshed by the minute tick. */
export async function refreshForecast(
  deps: Pick<ScalingDeps, "ledger" | "pools" | "scalingRecords" | "now">,
) {
  const now = deps.now();
  const since = new Date(now.getTime() - 7 * 86_400_000);
  const arrivals: Arrival[] = [];
  for (const job of await deps.ledger.arrivedSince(since)) {
    const route = routeJob(job, deps.pools);
    if ("pool" in route && job.queuedAt) {
      arrivals.push({
        pool: route.pool,
        at: Date.parse(job.queuedAt),
        cacheKey: cacheKeyOf(job),
        finishedAt: job.finishedAt ? Date.parse(job.finishedAt) : null,
      });
    }
  }
  const demand = forecastDemand(arrivals, now.getTime());
  await deps.scalingRecords.putForecast(demand, now);
  return demand;
}
