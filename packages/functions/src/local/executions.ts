import type { Logger } from "../log";

/** An execution aws-local-stepfunctions started: what a host watches of it. */
export interface StartedExecution {
  abort: () => void;
  result: Promise<unknown>;
}

/**
 * The executions of one state machine run in process: each run watched until it ends (a failure
 * logged), and each Task handler's promise tracked, so that a stop can abort every run and still let
 * the steps under way finish their writes. ScaleFleet and HandleInterruption share it.
 */
export function localExecutions(log: Logger, failure: string) {
  const running = new Set<Promise<unknown>>();
  const aborts = new Set<() => void>();
  const inFlight = new Set<Promise<unknown>>();
  return {
    /** A Task handler's work, tracked until it settles. */
    track<T>(work: Promise<T>): Promise<T> {
      inFlight.add(work);
      void work.then(
        () => inFlight.delete(work),
        () => inFlight.delete(work),
      );
      return work;
    },
    /** Watches a started execution; `fields` name it should it fail, `onEnd` runs once it ends. */
    watch(execution: StartedExecution, fields: Record<string, unknown>, onEnd?: () => void): void {
      aborts.add(execution.abort);
      const done = execution.result
        .catch((error: unknown) => {
          log.error(failure, { ...fields, error: error instanceof Error ? error.message : String(error) });
        })
        .finally(() => {
          running.delete(done);
          aborts.delete(execution.abort);
          onEnd?.();
        });
      running.add(done);
    },
    /** Resolves when no execution is in progress. */
    async idle(): Promise<void> {
      while (running.size) await Promise.allSettled([...running]);
    },
    /** Aborts every execution, then waits for the Task handlers under way. */
    async abortAll(): Promise<void> {
      for (const abort of aborts) abort();
      while (inFlight.size) await Promise.allSettled([...inFlight]);
    },
  };
}
