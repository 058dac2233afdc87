/**
 * Runner identity's words, as plain arrays with no dependency (the status page bundles them).
 *
 * A GitHub slot runner is `minting` (its slot taken, GitHub asked), `handed` (its id recorded and its
 * config put where only its instance can read it), `listening` (the agent started it) or `running` (it
 * took a job). The agent reports `exited` once an ephemeral runner has served its job.
 */
export const slotRunnerStates = ["minting", "handed", "listening", "running"] as const;
export type SlotRunnerState = (typeof slotRunnerStates)[number];

export const reportedSlotRunnerStates = ["listening", "running", "exited"] as const;
export type ReportedSlotRunnerState = (typeof reportedSlotRunnerStates)[number];

/**
 * Why the agent stopped a runner while it ran a job (heartbeat `stoppedRunners`): the job ran past the
 * pool's `maxJobMinutes`, or it could not finish before a spot interruption's deadline.
 */
export const runnerStopReasons = ["max-job-time", "interruption-deadline"] as const;
export type RunnerStopReason = (typeof runnerStopReasons)[number];

/** What the status shows: a slot runner's state, `removing` (a deletion owed), or a GitLab manager. */
export const runnerViewStates = [...slotRunnerStates, "removing", "registered"] as const;
export type RunnerViewState = (typeof runnerViewStates)[number];

/** The protocol version this control plane speaks with the agent (docs/PROTOCOL.md). */
export const PROTOCOL_VERSION = 3;
