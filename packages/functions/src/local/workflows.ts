import "./polyfills";
import { scaleFleetDefinition } from "@hearth/core/workflows";
import { StateMachine } from "aws-local-stepfunctions";
import type { Logger } from "../log";
import type { ScaleFleetTasks } from "../scale";
import { localExecutions } from "./executions";

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
  /** Frees a run's lease when the process stops it (the run never reaches Finish). */
  release: (pool: string, holder: string) => Promise<void>;
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
  const runs = localExecutions(options.log, "scale fleet run failed");
  const { track } = runs;
  /** Runs in progress, by their lease holder: a clean stop frees their leases. */
  const holders = new Map<string, string>();
  const { tasks } = options;
  let executions = 0;
  /** Set by `stop`: a webhook still being answered while the server closes must not start a run. */
  let stopped = false;

  return {
    /** Starts a run for `pool` (like StartExecution: returns once it has started). */
    async start(pool: string, holder: string, how?: { supersede?: boolean }): Promise<void> {
      if (stopped) {
        // The caller took the lease for this run; nothing will release it if the run never starts.
        await options.release(pool, holder);
        return;
      }
      executions += 1;
      const execution = machine.run(
        {
          pool,
          holder,
          iteration: 0,
          maxIterations: options.maxIterations,
          ...(how?.supersede ? { supersede: true } : {}),
        },
        {
          noThrowOnAbort: true,
          overrides: {
            taskResourceLocalHandlers: {
              Observe: (input) => track(tasks.observe(input)) as never,
              Plan: (input) => track(tasks.plan(input)) as never,
              Apply: (input) => track(tasks.apply(input)) as never,
              Finish: (input) => track(tasks.finish(input)) as never,
              RecordFailure: (input) => track(tasks.recordFailure(input)) as never,
            },
            ...(options.waitMs !== undefined ? { waitTimeOverrides: { Wait: options.waitMs } } : {}),
            retryIntervalOverrides: { Observe: 10, Plan: 10, Apply: 10, Finish: 10, RecordFailure: 10 },
          },
        },
      );
      holders.set(holder, pool);
      runs.watch(execution, { pool }, () => holders.delete(holder));
    },
    /** Resolves when no run is in progress. */
    idle: runs.idle,
    get executions() {
      return executions;
    },
    /** Stops every run, lets the steps under way finish, and frees the runs' leases; starts none after. */
    async stop(): Promise<void> {
      stopped = true;
      const stoppedRuns = [...holders];
      await runs.abortAll();
      for (const [holder, pool] of stoppedRuns) {
        await options.release(pool, holder).catch((error: unknown) => {
          options.log.warn("could not free a ScaleFleet lease", {
            pool,
            error: error instanceof Error ? error.message : String(error),
          });
        });
      }
    },
  };
}

export type LocalScaleFleet = ReturnType<typeof createLocalScaleFleet>;
