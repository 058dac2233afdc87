import { AutoScalingServiceException } from "@aws-sdk/client-auto-scaling";
import { EC2ServiceException } from "@aws-sdk/client-ec2";
import { SSMServiceException } from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import { isThrottling, type RetryOptions, withRetries } from "../src/fleet-aws";

/** A service error as the SDK throws it: `name` is the API's error code. */
const awsError = (name: string, Service = AutoScalingServiceException) =>
  new Service({ name, $fault: "client", $metadata: { httpStatusCode: 400 }, message: `${name} (test)` });

/** Backoff with no real waiting: records what it would have slept. */
function recording(overrides: Partial<RetryOptions> = {}) {
  const sleeps: number[] = [];
  const options: RetryOptions = {
    attempts: 5,
    baseMs: 100,
    maxMs: 1_000,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  };
  return { options, sleeps };
}

/** A call that fails with the given errors in turn, then returns `"ok"`. */
function flaky(errors: Error[]) {
  let calls = 0;
  const call = async () => {
    const error = errors[calls++];
    if (error) throw error;
    return "ok";
  };
  return { call, calls: () => calls };
}

describe("withRetries", () => {
  it("retries a throttled call with jittered exponential backoff until it succeeds", async () => {
    const { options, sleeps } = recording();
    const { call, calls } = flaky([awsError("Throttling"), awsError("Throttling")]);
    await expect(withRetries(call, options)).resolves.toBe("ok");
    expect(calls()).toBe(3);
    // random() = 0.5 of the cap, which doubles from baseMs: 100, then 200.
    expect(sleeps).toEqual([50, 100]);
  });

  it("gives up after `attempts` calls and rethrows the last throttling error", async () => {
    const { options, sleeps } = recording({ attempts: 4 });
    const errors = [1, 2, 3, 4, 5].map(() => awsError("RequestLimitExceeded", EC2ServiceException));
    const { call, calls } = flaky(errors);
    await expect(withRetries(call, options)).rejects.toBe(errors[3]);
    expect(calls()).toBe(4);
    expect(sleeps).toHaveLength(3);
  });

  it("caps the backoff at maxMs", async () => {
    const { options, sleeps } = recording({ attempts: 6, baseMs: 100, maxMs: 300, random: () => 0.999 });
    const { call } = flaky([1, 2, 3, 4, 5].map(() => awsError("ThrottlingException", SSMServiceException)));
    await expect(withRetries(call, options)).resolves.toBe("ok");
    expect(sleeps).toEqual([99, 199, 299, 299, 299]);
  });

  it("does not retry a ValidationError, or anything else that is not throttling", async () => {
    const { options, sleeps } = recording();
    const validation = awsError("ValidationError");
    const first = flaky([validation]);
    await expect(withRetries(first.call, options)).rejects.toBe(validation);
    expect(first.calls()).toBe(1);

    const plain = new Error("socket hang up");
    const second = flaky([plain]);
    await expect(withRetries(second.call, options)).rejects.toBe(plain);
    expect(second.calls()).toBe(1);
    expect(sleeps).toEqual([]);
  });
});

describe("isThrottling", () => {
  it.each([
    ["Throttling", AutoScalingServiceException],
    ["ThrottlingException", SSMServiceException],
    ["RequestLimitExceeded", EC2ServiceException],
    ["TooManyRequestsException", AutoScalingServiceException],
    ["RequestThrottled", EC2ServiceException],
    ["ResourceContention", AutoScalingServiceException],
    ["ScalingActivityInProgress", AutoScalingServiceException],
    ["TooManyUpdates", SSMServiceException],
  ])("%s is throttling", (name, Service) => {
    expect(isThrottling(awsError(name, Service))).toBe(true);
  });

  it.each(["ValidationError", "AccessDenied", "InvalidInstanceID.NotFound", "LimitExceeded"])(
    "%s is not",
    (name) => {
      expect(isThrottling(awsError(name))).toBe(false);
    },
  );

  it("recognizes the SDK's own throttling mark, and ignores what is not an Error", () => {
    const marked = Object.assign(new Error("slow down"), { $retryable: { throttling: true } });
    expect(isThrottling(marked)).toBe(true);
    expect(isThrottling(Object.assign(new Error("x"), { $retryable: {} }))).toBe(false);
    expect(isThrottling({ name: "Throttling" })).toBe(false);
    expect(isThrottling("Throttling")).toBe(false);
    expect(isThrottling(undefined)).toBe(false);
  });
});
