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

/** Runs `action` every `seconds` (first at `first`) while the simulation is active. */
export function every(context: PolicyContext, seconds: number, first: number, action: () => void): void {
  const tick = () => {
    if (!context.active()) return;
    action();
    context.clock.after(seconds, tick);
  };
  context.clock.at(first, tick);
}
