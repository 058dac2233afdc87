/** States that call Lambdas retry these: our own throttling signal and Lambda's transient errors. */
export const retryableErrors = [
  "Hearth.Throttled",
  "Lambda.TooManyRequestsException",
  "Lambda.ServiceException",
  "Lambda.AWSLambdaException",
  "Lambda.SdkClientException",
];
