import type { LambdaContext } from "hono/aws-lambda";
import { sweepTasks } from "../../sweep";
import { type AwsRuntime, createAwsRuntime } from "../runtime";

/**
 * The sweep's task Lambda: one function for the Task states of the Sweep state machine
 * (`@hearth/core/workflows`, `sweepDefinition`), as they share their links and permissions. The step
 * follows from the state it is given: an `error` caught → RecordFailure; an `action` → Act (one Map
 * item); a `survey` → Finish; else (`{ sweepId }`) → Survey. Local mode maps each state to its task.
 */
export function createSweepHandler(runtime: AwsRuntime = createAwsRuntime()) {
  const tasks = sweepTasks(() => runtime.hearth.sweep(), runtime.log);
  return async (event: unknown, context?: LambdaContext): Promise<unknown> => {
    if (context) runtime.logger.addContext(context);
    const state = (event && typeof event === "object" ? event : {}) as Record<string, unknown>;
    if ("error" in state) return tasks.recordFailure(event);
    if ("action" in state) return tasks.act(event);
    if ("survey" in state) return tasks.finish(event);
    return tasks.survey(event);
  };
}
