import type { PolicyDocument } from "./iam";

/**
 * The Sweep's schedule as plain data: an EventBridge Scheduler schedule whose target is the state
 * machine itself (Scheduler's StartExecution, with `{}` as the input and a fresh execution name, which
 * is the sweep's id), every `reconciliation.sweepMinutes`. No function runs just to start it.
 */

/** Scheduler's rate expression: `rate(1 minute)`, `rate(5 minutes)`. */
export function sweepScheduleExpression(minutes: number): string {
  if (!Number.isInteger(minutes) || minutes < 1)
    throw new Error(`sweepMinutes ${minutes} is not a whole number of minutes`);
  return minutes === 1 ? "rate(1 minute)" : `rate(${minutes} minutes)`;
}

/** What Scheduler may do with the schedule's role: start the Sweep, nothing else. */
export function sweepSchedulePolicy(stateMachineArn: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      { Sid: "StartSweep", Effect: "Allow", Action: ["states:StartExecution"], Resource: [stateMachineArn] },
    ],
  };
}
