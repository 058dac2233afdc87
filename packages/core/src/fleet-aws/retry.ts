import { ConfiguredRetryStrategy } from "@smithy/core/retry";

/**
 * AWS throttles control-plane APIs per account; a scaling loop must back off, not fail. The AWS SDK
 * retries throttling and transient errors itself; Hearth gives its fleet clients a more patient
 * schedule than the SDK's default (3 attempts), and teaches them the few "not now" errors that the
 * SDK does not count as throttling.
 */

/**
 * Errors that mean "later" without being throttling by the SDK's list: an Auto Scaling group busy
 * with a scaling activity or another update, and SSM's concurrent PutParameter to one name. The SDK
 * knows `Throttling`, `ThrottlingException`, `RequestLimitExceeded`, `TooManyRequestsException`,
 * `RequestThrottled` and the like by itself. Error codes as the APIs send them (`Code`); the SDK names
 * Auto Scaling's exceptions after their shapes (`ScalingActivityInProgressFault`).
 */
const busy = new Set(["ResourceContention", "ScalingActivityInProgress", "TooManyUpdates"]);

/** The API's error code: `Code` where the protocol has one, else the exception's name. */
const codeOf = (error: Error): string => {
  const { Code } = error as { Code?: unknown };
  return typeof Code === "string" ? Code : error.name.replace(/Fault$/, "");
};

const throttlingCodes = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
  "RequestThrottled",
  ...busy,
]);

/** An error that asks to come back later: what ScaleFleet turns into its own retried `Throttled`. */
export const isThrottling = (error: unknown): boolean => {
  if (!(error instanceof Error)) return false;
  const { $retryable } = error as { $retryable?: { throttling?: boolean } };
  return (
    throttlingCodes.has(error.name) || throttlingCodes.has(codeOf(error)) || $retryable?.throttling === true
  );
};

export interface FleetRetry {
  /** Attempts in all, the first included. */
  attempts: number;
  baseMs: number;
  maxMs: number;
  /** In [0, 1): the jitter. */
  random: () => number;
}

export const defaultFleetRetry: FleetRetry = { attempts: 6, baseMs: 250, maxMs: 8_000, random: Math.random };

/**
 * The wait before retry `n` (1 for the first, as the SDK's strategy counts): full-jitter exponential
 * backoff, the cap doubling from `baseMs` up to `maxMs`.
 */
export function backoffMs(n: number, retry: FleetRetry = defaultFleetRetry): number {
  const cap = Math.min(retry.maxMs, retry.baseMs * 2 ** Math.max(0, n - 1));
  return Math.floor(retry.random() * cap);
}

/**
 * Client configuration for the Auto Scaling, EC2 and SSM clients the fleet drives: the SDK's own
 * standard retry strategy (retry quota, throttling and transient-error detection) with Hearth's
 * schedule. `new AutoScalingClient(fleetClientConfig())`.
 */
export function fleetClientConfig(retry: FleetRetry = defaultFleetRetry) {
  return {
    // The strategy decides; `maxAttempts` keeps the SDK's `amz-sdk-request` header in step with it.
    maxAttempts: retry.attempts,
    retryStrategy: new ConfiguredRetryStrategy(retry.attempts, (n) => backoffMs(n, retry)),
  };
}

type Handler = (args: unknown) => Promise<unknown>;

/** An AWS SDK client, as far as adding a middleware goes (each client types its stack by service). */
interface MiddlewareClient {
  middlewareStack: {
    addRelativeTo(
      middleware: never,
      options: { relation: "after"; toMiddleware: string; name: string; override: boolean },
    ): void;
  };
}

/**
 * Marks the busy errors as throttling, inside the SDK's retry middleware, so that its strategy
 * retries them with backoff as it does `Throttling` (the `$retryable` trait is how the SDK's
 * services mark retryable errors themselves).
 */
export function retryBusyErrors(client: MiddlewareClient): void {
  const middleware =
    (next: Handler): Handler =>
    async (args) => {
      try {
        return await next(args);
      } catch (error) {
        if (error instanceof Error && busy.has(codeOf(error))) {
          Object.assign(error, { $retryable: { throttling: true } });
        }
        throw error;
      }
    };
  client.middlewareStack.addRelativeTo(middleware as never, {
    relation: "after",
    toMiddleware: "retryMiddleware",
    name: "hearthRetryBusyErrors",
    override: true,
  });
}
