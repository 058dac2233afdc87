import "./polyfills";
import type { InterruptionNotice } from "@hearth/core/interruptions";
import { handleInterruptionDefinition, handleInterruptionExecutionName } from "@hearth/core/workflows";
import { StateMachine } from "aws-local-stepfunctions";
import type { HandleInterruptionTasks } from "../interruptions";
import type { Logger } from "../log";

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
  const running = new Set<Promise<unknown>>();
  const aborts = new Set<() => void>();
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(work: Promise<T>): Promise<T> => {
    inFlight.add(work);
    void work.then(
      () => inFlight.delete(work),
      () => inFlight.delete(work),
    );
    return work;
  };
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
      aborts.add(execution.abort);
      const done = execution.result
        .catch((error: unknown) => {
          options.log.error("handle interruption run failed", {
            instance: notice.instanceId,
            error: error instanceof Error ? error.message : String(error),
          });
        })
        .finally(() => {
          running.delete(done);
          aborts.delete(execution.abort);
        });
      running.add(done);
      return "started";
    },
    /** Resolves when no execution is in progress. */
    async idle(): Promise<void> {
      while (running.size) await Promise.allSettled([...running]);
    },
    /** Executions started so far, by name. */
    get executions(): string[] {
      return [...names];
    },
    /** Stops every execution and lets the steps under way finish; starts none after. */
    async stop(): Promise<void> {
      stopped = true;
      for (const abort of aborts) abort();
      while (inFlight.size) await Promise.allSettled([...inFlight]);
    },
  };
}

export type LocalHandleInterruption = ReturnType<typeof createLocalHandleInterruption>;
