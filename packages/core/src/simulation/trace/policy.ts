import type { PoolConfig } from "../../pools";
import { Random } from "../rules";
import type { EventQueue } from "./events";
import type { Fleet, FleetObserver, SimJob } from "./fleet";
import type { FleetModel } from "./model";
import { LATE_START_SECONDS } from "./trace";

/** What a policy may use: the fleet to act on, the clock, and the pools with the model's values. */
export interface PolicyContext {
  fleet: Fleet;
  clock: EventQueue;
  model: FleetModel;
  /** One per fleet pool, in the same order, with boot times and slots from the model. */
  pools: PoolConfig[];
  /** The routed jobs, in arrival order. */
  jobs: readonly SimJob[];
  seed: number;
  /** True until every job has finished: periodic timers stop then. */
  active(): boolean;
}

export const randomFor = (context: PolicyContext, purpose: string): Random =>
  Random.stream(context.seed, purpose);

/** A scaling policy: it reacts to the fleet's events and its own timers. */
export interface Policy {
  observer: FleetObserver;
  start(): void;
}

export type PolicyFactory = (context: PolicyContext) => Policy;

/** How long before a late first arrival the run starts. */
export const LATE_START_LEAD_SECONDS = 3600;

/**
 * When the run starts, for every policy: at the trace's start (0), or, when the first job comes more
 * than `LATE_START_SECONDS` in (clock times, most likely), an hour before it. Ticking from 0 through
 * decades of nothing would take the simulator hours; a fixed fleet and a ready minimum start there too.
 */
export function runStart(context: PolicyContext): number {
  const first = context.jobs[0]?.trace.createdAt ?? 0;
  return first > LATE_START_SECONDS ? first - LATE_START_LEAD_SECONDS : 0;
}

/** When a policy's timer of period `seconds` begins: the run's start, down to a multiple of the period. */
export function timersStart(context: PolicyContext, seconds: number): number {
  const start = runStart(context);
  return start <= 0 || seconds <= 0 ? 0 : seconds * Math.floor(start / seconds);
}

/**
 * Runs `action` every `seconds` while the simulation is active, first `first` seconds after the
 * timers begin (`timersStart`).
 */
export function every(context: PolicyContext, seconds: number, first: number, action: () => void): void {
  const tick = () => {
    if (!context.active()) return;
    action();
    context.clock.after(seconds, tick);
  };
  context.clock.at(timersStart(context, seconds) + first, tick);
}
