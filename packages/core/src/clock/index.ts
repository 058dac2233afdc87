/**
 * Time, injectable: local mode runs on the wall clock, tests and the end-to-end suite on a fake one
 * they advance by hand, so minutes of fleet behaviour take milliseconds and never flake.
 */
export interface Clock {
  /** Wall-clock epoch milliseconds: may step when the machine's time is synchronised. */
  now(): number;
  /**
   * Milliseconds from an arbitrary origin on a clock that never steps (monotonic): for intervals,
   * which a step of the wall clock must neither stretch nor cut short. Timers (`after`) run on it.
   */
  elapsed(): number;
  /** Runs `task` once `ms` have passed; returns a function that cancels it. */
  after(ms: number, task: () => void | Promise<void>): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  elapsed: () => performance.now(),
  after(ms, task) {
    const timer = setTimeout(() => void task(), Math.max(0, ms));
    timer.unref?.();
    return () => clearTimeout(timer);
  },
};

interface Timer {
  at: number;
  seq: number;
  task: () => void | Promise<void>;
}

/** A clock that moves only when told to, running due timers in order (and awaiting each). */
export class FakeClock implements Clock {
  private current: number;
  /** How far the wall clock was stepped (`stepWallClock`) from the time that never steps. */
  private wallOffset = 0;
  private seq = 0;
  private timers: Timer[] = [];

  constructor(start: number | Date = Date.parse("2026-01-05T09:00:00.000Z")) {
    this.current = typeof start === "number" ? start : start.getTime();
  }

  now(): number {
    return this.current + this.wallOffset;
  }

  elapsed(): number {
    return this.current;
  }

  /** Steps the wall clock by `ms` (either way), as a time synchronisation does; timers keep their time. */
  stepWallClock(ms: number): void {
    this.wallOffset += ms;
  }

  after(ms: number, task: () => void | Promise<void>): () => void {
    const timer = { at: this.current + Math.max(0, ms), seq: this.seq++, task };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Moves time forward by `ms`, running every timer that falls due on the way, in time order. */
  async advance(ms: number): Promise<void> {
    const end = this.current + ms;
    for (;;) {
      const next = this.timers
        .filter((timer) => timer.at <= end)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.timers = this.timers.filter((timer) => timer !== next);
      this.current = Math.max(this.current, next.at);
      await next.task();
    }
    this.current = end;
  }

  /** Timers still waiting, for assertions. */
  get pending(): number {
    return this.timers.length;
  }
}
