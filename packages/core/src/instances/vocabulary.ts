/**
 * The fleet's words, as plain arrays with no dependency: the registry, the fleet port and its
 * drivers, the planner, the simulators, infra and the status document (which the status page
 * bundles) all import them from here.
 *
 * An instance's state has two sources, each defined once here: Auto Scaling's `Lifecycle` and the
 * agent's `RunnerState`. What the planner and the status page call an instance's state is derived
 * from both: `PlannerState` (planner, by `plannerInstance` in fleet) and `DisplayState` (status, by
 * `buildStatus`).
 */

/** A pool's two Auto Scaling groups: `warm` keeps a warm pool of stopped instances, `burst` does not. */
export const groups = ["warm", "burst"] as const;
export type Group = (typeof groups)[number];

export const markets = ["on-demand", "spot"] as const;
export type Market = (typeof markets)[number];

/**
 * Where an instance is in its Auto Scaling life:
 * - `pending`: launching, or resuming from the warm pool;
 * - `in-service`: running (its runner may still be booting; the registry says);
 * - `stopping`: on its way into the warm pool;
 * - `stopped`: in the warm pool, store intact;
 * - `terminating`: going away.
 */
export const lifecycles = ["pending", "in-service", "stopping", "stopped", "terminating"] as const;
export type Lifecycle = (typeof lifecycles)[number];

/** What the agent reports of its runner in a heartbeat. */
export const reportedRunnerStates = ["ready", "busy", "draining"] as const;
/** `booting` until the first heartbeat; then what the agent reports. */
export const runnerStates = ["booting", ...reportedRunnerStates] as const;
export type RunnerState = (typeof runnerStates)[number];
