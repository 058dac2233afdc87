import type { Clock } from "@hearth/core/clock";
import type { Logger } from "../log";

/**
 * Local mode's minute tick: a timer on the host's clock, with a first tick at once (so the status page
 * shows the fleet from the start). A failed tick is logged and the next one comes as planned.
 * Returns how to stop it.
 */
export function startTicker(options: {
  clock: Clock;
  seconds: number;
  tick: () => Promise<unknown>;
  /** Runs the first tick without holding up the start. */
  background: (task: () => Promise<void>) => void;
  log: Logger;
  /** What the timer runs, for its failure's log line ("tick" by default; the poll's timer says "poll"). */
  name?: string;
}): () => void {
  const { clock, seconds, log } = options;
  const tick = async () => {
    try {
      await options.tick();
    } catch (error) {
      log.error(`${options.name ?? "tick"} failed`, {
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };
  let stop = () => {};
  let stopped = false;
  options.background(tick);
  const schedule = () => {
    stop = clock.after(seconds * 1000, async () => {
      await tick();
      if (!stopped) schedule();
    });
  };
  schedule();
  return () => {
    stopped = true;
    stop();
  };
}
