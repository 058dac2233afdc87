import "./polyfills";
import type { InterruptionNotice } from "@hearth/core/interruptions";
import { handleInterruptionDefinition, handleInterruptionExecutionName } from "@hearth/core/workflows";
import { StateMachine } from "aws-local-stepfunctions";
import type { HandleInterruptionTasks } from "../interruptions";
import type { Logger } from "../log";
import { localExecutions } from "./executions";

/** Placeholder ARNs: locally each Task state runs the handler mapped to its name instead. */
const local = (name: string) => `arn:aws:lambda:us-east-1:000000000000:function:hearth-local-${name}`;

export const localHandleInterruptionDefinition = handleInterruptionDefinition({
  claim: local("interruption-claim"),
  drain: local("interruption-drain"),
  settle: local("interruption-settle"),
  recordFailure: local("interruption-record-failure"),
});

export interface LocalHandleInterruptionOptions {
  tasks: HandleInterruptionTasks;
  log: Logger;
  /** Overrides every Wait (milliseconds); undefined waits as the definition says. */
  waitMs?: number;
}

/**
 * HandleInterruption, run in process by aws-local-stepfunctions: the deployed definition, local
 * handlers. Executions are named as in AWS (instance and notice kind): a second start of a name is
 * `already-started`, as StartExecution's ExecutionAlreadyExists.
 */
export function createLocalHandleInterruption(options: LocalHandleInterruptionOptions) {
  const machine = new StateMachine(localHandleInterruptionDefinition as never, {
    validationOptions: { checkArn: true, checkPaths: true },
  });
  const names = new Set<string>();
  const runs = localExecutions(options.log, "handle interruption run failed");
  const { track } = runs;
  const { tasks } = options;
  let stopped = false;

  return {
    /** Starts an execution for the notice (returns once it has started). */
    async start(notice: InterruptionNotice): Promise<"started" | "already-started"> {
      const name = handleInterruptionExecutionName(notice.instanceId, notice.kind);
      if (stopped || names.has(name)) return "already-started";
      names.add(name);
      const execution = machine.run({ notice } as never, {
        noThrowOnAbort: true,
        overrides: {
          taskResourceLocalHandlers: {
            Claim: (input) => track(tasks.claim(input)) as never,
            Drain: (input) => track(tasks.drain(input)) as never,
            Settle: (input) => track(tasks.settle(input)) as never,
            RecordFailure: (input) => track(tasks.recordFailure(input)) as never,
          },
          ...(options.waitMs !== undefined ? { waitTimeOverrides: { Wait: options.waitMs } } : {}),
          retryIntervalOverrides: { Claim: 10, Drain: 10, Settle: 10, RecordFailure: 10 },
        },
      });
      runs.watch(execution, { instance: notice.instanceId });
      return "started";
    },
    /** Resolves when no execution is in progress. */
    idle: runs.idle,
    /** Executions started so far, by name. */
    get executions(): string[] {
      return [...names];
    },
    /** Stops every execution and lets the steps under way finish; starts none after. */
    async stop(): Promise<void> {
      stopped = true;
      await runs.abortAll();
    },
  };
}

export type LocalHandleInterruption = ReturnType<typeof createLocalHandleInterruption>;
