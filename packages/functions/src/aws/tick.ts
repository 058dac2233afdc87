import type { Job } from "@hearth/core/jobs";
import { queuedByPool, refreshForecast, requestScale } from "@hearth/core/scaling";
import { recordSamples } from "@hearth/core/status/build";
import type { LambdaContext } from "hono/aws-lambda";
import { type AwsRuntime, createAwsRuntime, executionName } from "./runtime";

/**
 * The minute tick (an EventBridge Scheduler cron), as local mode's timer: refresh the demand forecast
 * when it is ten minutes old, report the queue, start ScaleFleet for every pool (idle instances age
 * out, and jobs whose webhook never came get served), and record the status page's samples.
 */

export const FORECAST_EVERY_MS = 10 * 60_000;

/** Seconds the oldest of `jobs` has been queued, 0 when there is none. */
export function oldestWaitSeconds(jobs: readonly Pick<Job, "queuedAt">[], now: number): number {
  const times = jobs.flatMap((job) => (job.queuedAt ? [Date.parse(job.queuedAt)] : []));
  return times.length ? Math.max(0, (now - Math.min(...times)) / 1000) : 0;
}

export async function runTick(runtime: AwsRuntime): Promise<void> {
  const deps = runtime.scalingDeps;
  const { pools, log } = { pools: runtime.pools(), log: runtime.log };
  const now = deps.now().getTime();
  const failures: string[] = [];
  const attempt = async (what: string, work: () => Promise<unknown>) => {
    try {
      await work();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      log.error("tick step failed", { step: what, error: message });
      failures.push(`${what}: ${message}`);
    }
  };

  await attempt("forecast", async () => {
    const stored = await Promise.all(pools.map((pool) => deps.poolStates.forecast(pool.name)));
    if (stored.some((forecast) => !forecast || now - Date.parse(forecast.at) >= FORECAST_EVERY_MS)) {
      await refreshForecast(deps);
    }
  });

  await attempt("queue", async () => {
    // Resolves the GitLab tags webhooks could not (up to a bound per tick) before routing.
    const { byPool, unroutable } = await queuedByPool(deps);
    const metrics = runtime.metrics();
    for (const pool of pools) {
      const queued = byPool.get(pool.name) ?? [];
      metrics.queue(pool.name, queued.length, oldestWaitSeconds(queued, now));
    }
    const stranded = unroutable.map(({ job }) => job);
    metrics.unroutable(stranded.length, oldestWaitSeconds(stranded, now));
    if (unroutable.length) {
      log.warn("unroutable jobs queued", {
        count: unroutable.length,
        reasons: [...new Set(unroutable.map(({ reason }) => reason))].slice(0, 5).join("; "),
      });
    }
  });

  for (const pool of pools) {
    await attempt(`scale ${pool.name}`, async () => {
      const start = runtime.startScaleFleet();
      const outcome = await requestScale(deps, pool.name, start, executionName(pool.name), {
        covered: false,
      });
      log.info("tick scale", { pool: pool.name, outcome });
    });
  }

  await attempt("samples", () => recordSamples(deps));

  // Counted as a function error, so that a tick that keeps failing raises the Lambda errors alarm.
  if (failures.length) throw new Error(`tick failed: ${failures.join(" | ")}`);
}

export function createTickHandler(runtime: AwsRuntime = createAwsRuntime()) {
  return async (_event: unknown, context?: LambdaContext): Promise<void> => {
    if (context) runtime.logger.addContext(context);
    await runTick(runtime);
  };
}

export const handler = createTickHandler();
