import "./polyfills";
import { scaleFleetDefinition } from "@hearth/core/workflows";
import { StateMachine } from "aws-local-stepfunctions";
import type { Logger } from "../log";
import type { ScaleFleetTasks } from "../scale";

/** Placeholder ARNs: locally each Task state runs the handler mapped to its name instead. */
const local = (name: string) => `arn:aws:lambda:us-east-1:000000000000:function:hearth-local-${name}`;

export const localScaleFleetDefinition = scaleFleetDefinition({
  observe: local("observe"),
  plan: local("plan"),
  apply: local("apply"),
  finish: local("finish"),
  recordFailure: local("record-failure"),
});

export interface LocalWorkflowOptions {
  tasks: ScaleFleetTasks;
  log: Logger;
  /** Iterations per run; tests use 1 and drive time themselves. */
  maxIterations: number;
  /** Overrides every Wait (milliseconds); undefined waits as the definition says. */
  waitMs?: number;
}

/** ScaleFleet, run in process by aws-local-stepfunctions: the deployed definition, local handlers. */
export function createLocalScaleFleet(options: LocalWorkflowOptions) {
  const machine = new StateMachine(localScaleFleetDefinition as never, {
    validationOptions: { checkArn: true, checkPaths: true },
  });
  const running = new Set<Promise<unknown>>();
  const aborts = new Set<() => void>();
  const { tasks } = options;
  let executions = 0;

  return {
    /** Starts a run for `pool` (like StartExecution: returns once it has started). */
    async start(pool: string, holder: string): Promise<void> {
      executions += 1;
      const execution = machine.run(
        { pool, holder, iteration: 0, maxIterations: options.maxIterations },
        {
          noThrowOnAbort: true,
          overrides: {
            taskResourceLocalHandlers: {
              Observe: (input) => tasks.observe(input) as never,
              Plan: (input) => tasks.plan(input) as never,
              Apply: (input) => tasks.apply(input) as never,
              Finish: (input) => tasks.finish(input) as never,
              RecordFailure: (input) => tasks.recordFailure(input) as never,
            },
            ...(options.waitMs !== undefined ? { waitTimeOverrides: { Wait: options.waitMs } } : {}),
            retryIntervalOverrides: { Observe: 10, Plan: 10, Apply: 10, Finish: 10, RecordFailure: 10 },
          },
        },
      );
      aborts.add(execution.abort);
      const done = execution.result
        .catch((error: unknown) => {
          options.log.error("scale fleet run failed", {
            pool,
            error: error instanceof Error ? error.message : String(error),
          });
        })
        .finally(() => {
          running.delete(done);
          aborts.delete(execution.abort);
        });
      running.add(done);
    },
    /** Resolves when no run is in progress. */
    async idle(): Promise<void> {
      while (running.size) await Promise.allSettled([...running]);
    },
    get executions() {
      return executions;
    },
    stop(): void {
      for (const abort of aborts) abort();
    },
  };
}

export type LocalScaleFleet = ReturnType<typeof createLocalScaleFleet>;
