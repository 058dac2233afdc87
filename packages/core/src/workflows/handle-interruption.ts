import { failureStates, task } from "./retry";

/**
 * The HandleInterruption state machine, written once as Amazon States Language. infra deploys it
 * with the Lambdas' ARNs, and EventBridge starts it with each spot event as its input (AWS's own
 * shape); the heartbeat starts it with `{ notice }` when an agent reports a notice first. Local mode
 * runs the very same definition with aws-local-stepfunctions.
 *
 * Claim → (handled?) → Drain → Wait (until a warning's deadline, else 30 s) → Settle → (done?) → end,
 * else Wait → Settle. Throttling is retried with backoff; any other failure is caught and journaled.
 */

export interface HandleInterruptionResources {
  claim: string;
  drain: string;
  settle: string;
  recordFailure: string;
}

/** Long enough for the longest drain: a job time limit of 7,200 minutes, and the grace after it. */
export const HANDLE_INTERRUPTION_TIMEOUT_SECONDS = 6 * 86_400;

/**
 * An execution's name: the instance and the notice's kind, so that starting it twice (a heartbeat and
 * its retry) is harmless. EventBridge names the executions it starts itself; Claim makes those count once.
 */
export const handleInterruptionExecutionName = (instanceId: string, kind: string): string =>
  `${instanceId}-${kind}`;

export function handleInterruptionDefinition(resources: HandleInterruptionResources) {
  return {
    Comment:
      "HandleInterruption: a spot warning or rebalance recommendation drains, detaches and replaces an instance, then waits until it is gone",
    StartAt: "Claim",
    TimeoutSeconds: HANDLE_INTERRUPTION_TIMEOUT_SECONDS,
    States: {
      Claim: task(resources.claim, { ResultPath: "$.claim", Next: "Handled?" }),
      // A repeated or weaker notice, another account's instance, an on-demand one: nothing to do.
      "Handled?": {
        Type: "Choice",
        Choices: [{ Variable: "$.claim.handled", BooleanEquals: true, Next: "Drain" }],
        Default: "Ignored",
      },
      Ignored: { Type: "Succeed" },
      Drain: task(resources.drain, { ResultPath: "$.progress", Next: "Wait" }),
      Wait: { Type: "Wait", SecondsPath: "$.progress.waitSeconds", Next: "Settle" },
      Settle: task(resources.settle, { ResultPath: "$.progress", Next: "Done?" }),
      "Done?": {
        Type: "Choice",
        Choices: [{ Variable: "$.progress.done", BooleanEquals: true, Next: "Done" }],
        Default: "Wait",
      },
      Done: { Type: "Succeed" },
      ...failureStates(resources.recordFailure, "Hearth.HandleInterruptionFailed"),
    },
  };
}

export type HandleInterruptionDefinition = ReturnType<typeof handleInterruptionDefinition>;
