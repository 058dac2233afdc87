import type { Observation } from "@hearth/core/scaling";
import type { LambdaContext } from "hono/aws-lambda";
import { scaleFleetTasks } from "../../scale";
import { countByState } from "../metrics";
import { type AwsRuntime, createAwsRuntime } from "../runtime";

/**
 * ScaleFleet's task Lambdas: each Task state of the state machine (`@hearth/core/workflows`) invokes
 * one of these with the execution's state and gets back that step's result, as local mode's
 * aws-local-stepfunctions handlers do. Errors are thrown with their name (`Hearth.Throttled`, …), which
 * Step Functions matches in the definition's `Retry` and `Catch`.
 *
 * One module, five handlers; each function's bundle holds the same code, and each reads only the
 * links its own step needs (the planner: just the pools).
 */
export function createScaleHandlers(runtime: AwsRuntime = createAwsRuntime()) {
  const tasks = scaleFleetTasks(runtime.hearth.scaling, runtime.log);
  const invoke =
    <T>(step: (input: unknown) => Promise<T>) =>
    async (event: unknown, context?: LambdaContext): Promise<T> => {
      if (context) runtime.logger.addContext(context);
      return step(event);
    };
  return {
    observe: invoke(async (input) => {
      const result = await tasks.observe(input);
      if (!result.leaseLost) {
        const observation = result as Observation & { leaseLost: false };
        runtime.metrics().capacity(observation.pool, countByState(observation.instances));
      }
      return result;
    }),
    plan: invoke(tasks.plan),
    apply: invoke(async (input) => {
      const applied = await tasks.apply(input);
      if (applied.calls.length) {
        const { pool } = input as { pool: string };
        runtime.metrics().decision(pool);
      }
      return applied;
    }),
    finish: invoke(tasks.finish),
    recordFailure: invoke(tasks.recordFailure),
  };
}
