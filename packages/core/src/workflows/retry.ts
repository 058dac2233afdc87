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
