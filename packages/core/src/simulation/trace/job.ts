import type { SimInstance } from "./instance";
import type { SimPool } from "./pool";
import type { TraceJob } from "./trace";

/** A trace job as it moves through the simulated forge: queued, running, done, maybe queued again. */
export class SimJob {
  state: "pending" | "queued" | "running" | "done" = "pending";
  /** When the job last entered the forge's queue: its arrival, or its retry after an interruption. */
  queuedAt: number;
  firstStartAt = -1;
  warmStart = false;
  interrupted = false;
  instance: SimInstance | null = null;
  /** Bumped at every start, so that the finish of an interrupted run is ignored. */
  run = 0;
  /** The instance of the first start, for diagnostics. */
  firstInstance: SimInstance | null = null;
  /** A policy's own bookkeeping (e.g. when its control plane learned of the job). */
  seenAt = -1;

  constructor(
    readonly index: number,
    readonly trace: TraceJob,
    readonly pool: SimPool,
  ) {
    this.queuedAt = trace.createdAt;
  }
}
