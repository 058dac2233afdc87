/**
 * AWS throttles control-plane APIs per account; a scaling loop must back off, not fail. The SDK's own
 * retries cover a few attempts; this adds patient, jittered backoff for the errors that mean "later".
 */
const retryable = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "RequestThrottled",
  "ResourceContention",
  "ScalingActivityInProgress",
  // SSM PutParameter: another update to the same parameter is under way.
  "TooManyUpdates",
]);

export const isThrottling = (error: unknown): boolean => {
  if (!(error instanceof Error)) return false;
  const { Code, $retryable } = error as { Code?: string; $retryable?: { throttling?: boolean } };
  return retryable.has(error.name) || retryable.has(Code ?? "") || $retryable?.throttling === true;
};

export interface RetryOptions {
  /** Attempts in all, the first included. */
  attempts: number;
  baseMs: number;
  maxMs: number;
  sleep: (ms: number) => Promise<void>;
  /** In [0, 1): the jitter. */
  random: () => number;
}

export const defaultRetry: RetryOptions = {
  attempts: 6,
  baseMs: 250,
  maxMs: 8_000,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  random: Math.random,
};

/** Runs `call`, retrying throttling with full-jitter exponential backoff. */
export async function withRetries<T>(
  call: () => Promise<T>,
  options: RetryOptions = defaultRetry,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!isThrottling(error) || attempt >= options.attempts) throw error;
      const cap = Math.min(options.maxMs, options.baseMs * 2 ** (attempt - 1));
      await options.sleep(Math.floor(options.random() * cap));
    }
  }
}
