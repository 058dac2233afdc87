import "./polyfills";
import { randomUUID } from "node:crypto";
import type { Clock } from "@hearth/core/clock";
import { sweepDefinition } from "@hearth/core/workflows";
import { StateMachine } from "aws-local-stepfunctions";
import type { Logger } from "../log";
import type { SweepRun, SweepTasks } from "../sweep";

/** Placeholder ARNs: locally each Task state runs the handler mapped to its name instead. */
const local = (name: string) => `arn:aws:lambda:us-east-1:000000000000:function:hearth-local-${name}`;

export const localSweepDefinition = sweepDefinition({
  survey: local("sweep"),
  act: local("sweep"),
  finish: local("sweep"),
  recordFailure: local("sweep"),
});

export interface LocalSweepOptions {
  tasks: SweepTasks;
  log: Logger;
  clock: Clock;
  /** A sweep every this many seconds (`reconciliation.sweepMinutes`); none when 0. */
  everySeconds: number;
  /** Runs the timer's sweeps as background work (local mode's `idle()` waits for them). */
  background: (task: () => Promise<void>) => void;
}

/**
 * The Sweep, run in process by aws-local-stepfunctions: the deployed definition, local handlers. One
 * sweep at a time: `run()` starts one once the one under way has finished and resolves with what it
 * found and did (`POST /sim/sweep`); the timer skips its turn while a sweep runs, as the next
 * scheduled one reads everything afresh anyway. Each execution's name, as Scheduler's in AWS, is a
 * new UUID: the sweep's id.
 */
export function createLocalSweep(options: LocalSweepOptions) {
  const machine = new StateMachine(localSweepDefinition as never, {
    validationOptions: { checkArn: true, checkPaths: true },
  });
  const { tasks, log } = options;
  let current: Promise<unknown> = Promise.resolve();
  let running = 0;
  let stopped = false;
  const aborts = new Set<() => void>();
  let runs = 0;

  async function execute(): Promise<SweepRun> {
    const sweepId = randomUUID();
    runs += 1;
    const execution = machine.run({} as never, {
      context: { Execution: { Name: sweepId } } as never,
      overrides: {
        taskResourceLocalHandlers: {
          Survey: (input) => tasks.survey(input) as never,
          "Act on one": (input) => tasks.act(input) as never,
          Finish: (input) => tasks.finish(input) as never,
          RecordFailure: (input) => tasks.recordFailure(input) as never,
        },
        retryIntervalOverrides: { Survey: 10, "Act on one": 10, Finish: 10, RecordFailure: 10 },
      },
    });
    aborts.add(execution.abort);
    try {
      return (await execution.result) as unknown as SweepRun;
    } finally {
      aborts.delete(execution.abort);
    }
  }

  function run(): Promise<SweepRun> {
    if (stopped) return Promise.reject(new Error("local mode is stopping: no sweep starts"));
    running += 1;
    const next = current.then(execute, execute).finally(() => {
      running -= 1;
    });
    current = next.catch(() => undefined);
    return next;
  }

  let stopTimer = () => {};
  const schedule = () => {
    if (options.everySeconds <= 0 || stopped) return;
    stopTimer = options.clock.after(options.everySeconds * 1000, () => {
      if (running === 0) {
        options.background(async () => {
          try {
            await run();
          } catch (error) {
            log.error("sweep failed", { error: error instanceof Error ? error.message : String(error) });
          }
        });
      }
      schedule();
    });
  };
  schedule();

  return {
    run,
    /** Sweeps started so far. */
    get runs() {
      return runs;
    },
    /** Stops the timer and the sweep under way; starts none after. */
    async stop(): Promise<void> {
      stopped = true;
      stopTimer();
      for (const abort of aborts) abort();
      await current;
    },
  };
}

export type LocalSweep = ReturnType<typeof createLocalSweep>;
