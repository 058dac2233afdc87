/** States that call Lambdas retry these: our own throttling signal and Lambda's transient errors. */
export const retryableErrors = [
  "Hearth.Throttled",
  "Lambda.TooManyRequestsException",
  "Lambda.ServiceException",
  "Lambda.AWSLambdaException",
  "Lambda.SdkClientException",
];

/** Every Task state's retry: throttling and Lambda's transient errors, with backoff and jitter. */
export const retry = [
  {
    ErrorEquals: retryableErrors,
    IntervalSeconds: 2,
    BackoffRate: 2,
    MaxAttempts: 5,
    MaxDelaySeconds: 30,
    JitterStrategy: "FULL",
  },
];

/** Any other failure goes to the machine's RecordFailure state, which journals it. */
export const catchAll = [{ ErrorEquals: ["States.ALL"], ResultPath: "$.error", Next: "RecordFailure" }];

/** A Task state that calls `resource`, with the common retry and the catch into RecordFailure. */
export const task = (resource: string, extra: Record<string, unknown>) => ({
  Type: "Task",
  Resource: resource,
  Retry: retry,
  Catch: catchAll,
  ...extra,
});

/** The states `catchAll` leads to: RecordFailure journals the failure, then the run fails with `error`. */
export const failureStates = (recordFailure: string, error: string) => ({
  RecordFailure: {
    Type: "Task",
    Resource: recordFailure,
    Retry: retry,
    ResultPath: null,
    Next: "Failed",
  },
  Failed: {
    Type: "Fail",
    Error: error,
    Cause: "A step failed; the journal has the details",
  },
});
