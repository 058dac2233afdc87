import type { LambdaContext } from "hono/aws-lambda";
import { type AwsRuntime, createAwsRuntime } from "../runtime";

/**
 * The minute tick (an EventBridge Scheduler cron): core's `tick`, then its figures as metrics and
 * its failures as a function error.
 */
export async function runTick(runtime: AwsRuntime): Promise<void> {
  const { log } = runtime;
  const summary = await runtime.hearth.tick();
  const metrics = runtime.metrics();
  for (const pool of summary.queue) metrics.queue(pool.pool, pool.queued, pool.oldestWaitSeconds);
  for (const store of summary.stores) metrics.stores(store.pool, store);
  metrics.unroutable(summary.unroutable.count, summary.unroutable.oldestWaitSeconds);
  if (summary.unroutable.count) {
    log.warn("unroutable jobs queued", {
      count: summary.unroutable.count,
      reasons: summary.unroutable.reasons.join("; "),
    });
  }
  for (const run of summary.runs) log.info("tick scale", { pool: run.pool, outcome: run.outcome });
  for (const failure of summary.failures) log.error("tick step failed", { error: failure });
  // Counted as a function error, so that a tick that keeps failing raises the Lambda errors alarm.
  if (summary.failures.length) throw new Error(`tick failed: ${summary.failures.join(" | ")}`);
}

export function createTickHandler(runtime: AwsRuntime = createAwsRuntime()) {
  return async (_event: unknown, context?: LambdaContext): Promise<void> => {
    if (context) runtime.logger.addContext(context);
    await runTick(runtime);
  };
}
