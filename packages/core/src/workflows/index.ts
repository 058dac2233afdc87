/**
 * The ScaleFleet state machine, written once as Amazon States Language. infra deploys it with the
 * Lambdas' ARNs; local mode and the tests run the very same definition with aws-local-stepfunctions,
 * mapping each Task to the handler function the Lambda runs.
 *
 * Observe → Plan → Apply → (settled, or out of iterations?) → Finish, else Wait → Observe.
 * A run that lost its lease to another run stops after Observe or Apply (see LEASE_SECONDS).
 * Throttling is retried with backoff; any other failure is caught, journaled, and the lease released.
 */

export interface ScaleFleetResources {
  observe: string;
  plan: string;
  apply: string;
  finish: string;
  recordFailure: string;
}

/** The input a run starts with. */
export interface ScaleFleetInput {
  pool: string;
  /** The lease holder: this run's identity. */
  holder: string;
  /** Loop at most this often; with 5–15 s waits, 60 iterations are 5 to 15 minutes. */
  maxIterations: number;
  iteration: number;
}

import { failureStates, retryableErrors, task } from "./retry";

export * from "./handle-interruption";
export * from "./sweep";
export { retryableErrors };

export function scaleFleetDefinition(resources: ScaleFleetResources) {
  return {
    Comment: "ScaleFleet: observe a pool, plan, apply, wait; until the pool is settled",
    StartAt: "Observe",
    TimeoutSeconds: 20 * 60,
    States: {
      Observe: task(resources.observe, { ResultPath: "$.observation", Next: "Still ours?" }),
      // Another run took the pool's lease (this one outlived it): leave the pool to that run.
      "Still ours?": {
        Type: "Choice",
        Choices: [{ Variable: "$.observation.leaseLost", BooleanEquals: true, Next: "Yielded" }],
        Default: "Plan",
      },
      Yielded: { Type: "Succeed" },
      Plan: task(resources.plan, { ResultPath: "$.plan", Next: "Apply" }),
      Apply: task(resources.apply, { ResultPath: "$.applied", Next: "Settled?" }),
      "Settled?": {
        Type: "Choice",
        Choices: [
          { Variable: "$.applied.leaseLost", BooleanEquals: true, Next: "Yielded" },
          { Variable: "$.applied.settled", BooleanEquals: true, Next: "Finish" },
          {
            Variable: "$.observation.iteration",
            NumericGreaterThanEqualsPath: "$.maxIterations",
            Next: "Finish",
          },
        ],
        Default: "Wait",
      },
      Wait: { Type: "Wait", SecondsPath: "$.applied.waitSeconds", Next: "Observe" },
      Finish: task(resources.finish, { ResultPath: null, End: true }),
      ...failureStates(resources.recordFailure, "Hearth.ScaleFleetFailed"),
    },
  };
}

export type ScaleFleetDefinition = ReturnType<typeof scaleFleetDefinition>;
