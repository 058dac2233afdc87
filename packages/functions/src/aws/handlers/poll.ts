import type { PollReport } from "@hearth/core/polling";
import type { LambdaContext } from "hono/aws-lambda";
import { type AwsRuntime, createAwsRuntime } from "../runtime";

/**
 * Polling for missed webhooks (an EventBridge Scheduler rate, `reconciliation.pollMinutes`): one
 * poll (core's `pollOnce`), then its figures per forge as metrics. A listing the forge would not
 * answer is the poll's news (journaled, on the status page), not a function error.
 */
export async function runPoll(runtime: AwsRuntime): Promise<PollReport> {
  const report = await runtime.hearth.poll();
  const metrics = runtime.metrics();
  for (const forge of report.forges) {
    if (forge.status !== "polled") {
      runtime.log.info("another poll holds the forge's lease; this one left it", { forge: forge.forge });
      continue;
    }
    metrics.poll(forge.forge, {
      calls: forge.calls,
      budgetLeft: forge.tokens.length ? Math.min(...forge.tokens.map((token) => token.shareLeft)) : 0,
      found: forge.queued,
      unknown: report.unknown.filter((listing) => listing.forge === forge.forge).length,
    });
  }
  return report;
}

export function createPollHandler(runtime: AwsRuntime = createAwsRuntime()) {
  return async (_event: unknown, context?: LambdaContext): Promise<void> => {
    if (context) runtime.logger.addContext(context);
    await runPoll(runtime);
  };
}
