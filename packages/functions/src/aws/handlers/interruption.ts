import type { LambdaContext } from "hono/aws-lambda";
import { handleInterruptionTasks } from "../../interruptions";
import { type AwsRuntime, createAwsRuntime } from "../runtime";

/**
 * HandleInterruption's task Lambda: one function for the four Task states of the state machine
 * (`@hearth/core/workflows`, `handleInterruptionDefinition`), as they share their links and
 * permissions. The step follows from the execution's state: no claim yet → Claim; claimed → Drain;
 * drained → Settle; an `error` caught → RecordFailure. Local mode maps each state to its task instead.
 */
export function createInterruptionHandler(runtime: AwsRuntime = createAwsRuntime()) {
  const tasks = handleInterruptionTasks(runtime.hearth.interruptions, runtime.log);
  return async (event: unknown, context?: LambdaContext): Promise<unknown> => {
    if (context) runtime.logger.addContext(context);
    const state = (event && typeof event === "object" ? event : {}) as Record<string, unknown>;
    if ("error" in state) return tasks.recordFailure(event);
    if ("progress" in state) return tasks.settle(event);
    if ("claim" in state) {
      const progress = await tasks.drain(event);
      const claim = state.claim as { previous?: unknown };
      // Counted once per instance: an escalation (a warning after a rebalance) is the same interruption.
      if (claim.previous === null) runtime.metrics().interruption(progress.pool);
      return progress;
    }
    return tasks.claim(event);
  };
}
