import { catchAll, failureStates, retry, task } from "./retry";

/**
 * The Sweep state machine, written once as Amazon States Language: the reconciliation of the ledger,
 * the cloud and the forges (`@hearth/core/sweep`). infra deploys it with the task Lambda's ARN and an
 * EventBridge schedule (every `reconciliation.sweepMinutes`); local mode runs the very same definition
 * with aws-local-stepfunctions, on its own timer and on `POST /sim/sweep`.
 *
 * Survey → (complete, and anything due?) → Act on each due action (a Map, a few at a time) → Finish.
 * The survey marks what it finds and returns the marks of earlier sweeps that still hold; each Act
 * reads its thing afresh before it acts. An incomplete survey (a listing failed, was cut short or was
 * rate-limited) acts on nothing. One action that fails becomes a refused outcome, so the others still
 * run and Finish journals the whole; a failed Survey or Finish is caught, journaled, and fails the run.
 */

export interface SweepResources {
  survey: string;
  act: string;
  finish: string;
  recordFailure: string;
}

/** Actions acted on at once: each makes a few forge and EC2 calls, under the forges' rate budget. */
export const SWEEP_ACT_CONCURRENCY = 4;

/** A run that takes longer has gone wrong; the next scheduled run reads everything afresh. */
export const SWEEP_TIMEOUT_SECONDS = 15 * 60;

export function sweepDefinition(resources: SweepResources) {
  return {
    Comment: "Sweep: survey the ledger, the cloud and the forges; act on the marks that still hold; journal",
    StartAt: "Survey",
    TimeoutSeconds: SWEEP_TIMEOUT_SECONDS,
    States: {
      // The execution's name is the sweep's id (a schedule names its executions uniquely).
      Survey: task(resources.survey, {
        Parameters: { "sweepId.$": "$$.Execution.Name" },
        ResultPath: "$.survey",
        Next: "Anything due?",
      }),
      "Anything due?": {
        Type: "Choice",
        Choices: [
          // Fail safe: a survey that could not list everything acts on nothing.
          { Variable: "$.survey.complete", BooleanEquals: false, Next: "Finish" },
          { Variable: "$.survey.due[0]", IsPresent: true, Next: "Act" },
        ],
        Default: "Finish",
      },
      Act: {
        Type: "Map",
        ItemsPath: "$.survey.due",
        MaxConcurrency: SWEEP_ACT_CONCURRENCY,
        ItemSelector: { "sweepId.$": "$.survey.sweepId", "action.$": "$$.Map.Item.Value" },
        ItemProcessor: {
          ProcessorConfig: { Mode: "INLINE" },
          StartAt: "Act on one",
          States: {
            "Act on one": {
              Type: "Task",
              Resource: resources.act,
              Retry: retry,
              // One action's failure is that action's outcome: the mark stays for the next sweep.
              Catch: [{ ErrorEquals: ["States.ALL"], ResultPath: "$.error", Next: "Not acted on" }],
              End: true,
            },
            "Not acted on": {
              Type: "Pass",
              Parameters: {
                kind: "refused",
                "action.$": "$.action",
                "why.$": "States.Format('the step failed: {}', $.error.Error)",
              },
              End: true,
            },
          },
        },
        ResultPath: "$.outcomes",
        Catch: catchAll,
        Next: "Finish",
      },
      Finish: task(resources.finish, { ResultPath: null, End: true }),
      ...failureStates(resources.recordFailure, "Hearth.SweepFailed"),
    },
  };
}

export type SweepDefinition = ReturnType<typeof sweepDefinition>;
