/**
 * The simulator's clock: a binary min-heap of timed callbacks. Ties run in scheduling order, so a
 * run is deterministic without relying on the heap's internal order.
 */
export class EventQueue {
  private times: number[] = [];
  private seqs: number[] = [];
  private actions: (() => void)[] = [];
  private nextSeq = 0;
  private halted = false;
  now = 0;

  get size(): number {
    return this.times.length;
  }

  at(time: number, action: () => void): void {
    if (!(time >= this.now)) throw new Error(`cannot schedule at ${time}, before now (${this.now})`);
    this.times.push(time);
    this.seqs.push(this.nextSeq++);
    this.actions.push(action);
    this.up(this.times.length - 1);
  }

  after(delay: number, action: () => void): void {
    this.at(this.now + delay, action);
  }

  /** Makes `run` return after the current event. */
  halt(): void {
    this.halted = true;
  }

  /** Moves the clock on to `time` (not back) without running anything. */
  advanceTo(time: number): void {
    if (time > this.now) this.now = time;
  }

  /** Runs events in time order until none is left, the next is later than `until`, or `halt()`. */
  run(until = Number.POSITIVE_INFINITY): void {
    this.halted = false;
    while (this.times.length > 0 && !this.halted) {
      const time = this.times[0] as number;
      if (time > until) break;
      const action = this.pop();
      this.now = time;
      action();
    }
  }

  private less(i: number, j: number): boolean {
    const ti = this.times[i] as number;
    const tj = this.times[j] as number;
    return ti < tj || (ti === tj && (this.seqs[i] as number) < (this.seqs[j] as number));
  }

  private swap(i: number, j: number): void {
    const { times, seqs, actions } = this;
    const time = times[i] as number;
    times[i] = times[j] as number;
    times[j] = time;
    const seq = seqs[i] as number;
    seqs[i] = seqs[j] as number;
    seqs[j] = seq;
    const action = actions[i] as () => void;
    actions[i] = actions[j] as () => void;
    actions[j] = action;
  }

  private up(index: number): void {
    let i = index;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private pop(): () => void {
    const top = this.actions[0] as () => void;
    const last = this.times.length - 1;
    this.swap(0, last);
    this.times.pop();
    this.seqs.pop();
    this.actions.pop();
    let i = 0;
    const n = this.times.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && this.less(right, left) ? right : left;
      if (!this.less(child, i)) break;
      this.swap(i, child);
      i = child;
    }
    return top;
  }
}
