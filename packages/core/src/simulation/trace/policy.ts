import type { PoolConfig } from "../../pools";
import { Random } from "../rules";
import type { EventQueue } from "./events";
import type { Fleet, FleetObserver, SimJob } from "./fleet";
import type { FleetModel } from "./model";

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

/** How long before the first arrival periodic timers begin: what is idle before it is not simulated. */
export const TIMERS_LEAD_SECONDS = 3600;

/**
 * When a policy's timer of period `seconds` begins: at the multiple of its period an hour before the
 * first arrival (0 at the earliest). A trace may start late (its times Unix epochs, say): ticking from
 * 0 through that much nothing would take the simulator hours, and change nothing.
 */
export function timersStart(context: PolicyContext, seconds: number): number {
  const first = context.jobs[0]?.trace.createdAt ?? 0;
  const lead = first - TIMERS_LEAD_SECONDS;
  return lead <= 0 || seconds <= 0 ? 0 : seconds * Math.floor(lead / seconds);
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
