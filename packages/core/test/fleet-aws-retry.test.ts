import { Readable } from "node:stream";
import {
  AutoScalingClient,
  AutoScalingServiceException,
  SetDesiredCapacityCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client, EC2ServiceException } from "@aws-sdk/client-ec2";
import { PutParameterCommand, SSMClient, SSMServiceException } from "@aws-sdk/client-ssm";
import { describe, expect, it } from "vitest";
import {
  backoffMs,
  createAwsFleet,
  defaultFleetRetry,
  type FleetRetry,
  fleetClientConfig,
  isThrottling,
  retryBusyErrors,
} from "../src/fleet-aws";

/**
 * Throttling is retried by the AWS SDK's own retry strategy, configured by `fleetClientConfig`. The
 * clients here are real; only their HTTP handler is replaced, answering as the AWS APIs do (Query
 * XML for Auto Scaling, EC2 XML, JSON for SSM), so serialization, error parsing, error
 * classification and the retry middleware all run as in production.
 */

interface Answer {
  status: number;
  body: string;
}

/** An HTTP handler that answers with `answers` in turn and records when each request came. */
function scripted(answers: Answer[]) {
  const times: number[] = [];
  const requests: { headers: Record<string, string> }[] = [];
  return {
    times,
    requests,
    handler: {
      async handle(request: { headers: Record<string, string> }) {
        times.push(performance.now());
        requests.push(request);
        const answer = answers.shift();
        if (!answer) throw new Error("no scripted answer left");
        return {
          response: {
            statusCode: answer.status,
            headers: {
              "content-type": answer.body.startsWith("{") ? "application/x-amz-json-1.1" : "text/xml",
            },
            body: Readable.from([Buffer.from(answer.body)]),
          },
        };
      },
      updateHttpClientConfig() {},
      httpHandlerConfigs: () => ({}),
    },
  };
}

const autoScalingError = (code: string, status = 400): Answer => ({
  status,
  body: `<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${code} (test)</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`,
});
const setDesiredOk: Answer = {
  status: 200,
  body: '<SetDesiredCapacityResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></SetDesiredCapacityResponse>',
};

/** Short waits, so that the test proves the backoff without spending seconds on it. */
const quick: FleetRetry = { attempts: 4, baseMs: 40, maxMs: 1_000, random: () => 0.5 };

const clientOptions = (handler: unknown, retry: FleetRetry = quick) => ({
  region: "us-east-1",
  credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "example" },
  requestHandler: handler as never,
  ...fleetClientConfig(retry),
});

const setDesired = new SetDesiredCapacityCommand({ AutoScalingGroupName: "g", DesiredCapacity: 3 });
const gaps = (times: number[]) => times.slice(1).map((time, i) => time - (times[i] ?? 0));

describe("the fleet clients' retries", () => {
  it("retry a throttled call with exponential backoff until it succeeds", async () => {
    const aws = scripted([autoScalingError("Throttling"), autoScalingError("Throttling"), setDesiredOk]);
    const client = new AutoScalingClient(clientOptions(aws.handler));
    const out = await client.send(setDesired);
    expect(out.$metadata.attempts).toBe(3);
    expect(aws.times).toHaveLength(3);
    // random() = 0.5 of a cap that doubles from 40 ms: at least 20 ms, then 40 ms (timers may fire
    // up to a millisecond early).
    const [first, second] = gaps(aws.times);
    expect(first).toBeGreaterThanOrEqual(19);
    expect(second).toBeGreaterThanOrEqual(39);
    // The SDK says which attempt each request is.
    expect(aws.requests.map((request) => request.headers["amz-sdk-request"])).toEqual([
      "attempt=1; max=4",
      "attempt=2; max=4",
      "attempt=3; max=4",
    ]);
  });

  it("give up after the configured attempts and pass the throttling error on", async () => {
    const aws = scripted([1, 2, 3, 4].map(() => autoScalingError("Throttling")));
    const client = new AutoScalingClient(clientOptions(aws.handler));
    const error = await client.send(setDesired).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AutoScalingServiceException);
    expect(isThrottling(error)).toBe(true);
    expect(aws.times).toHaveLength(quick.attempts);
  });

  it("retry EC2's RequestLimitExceeded", async () => {
    const aws = scripted([
      {
        status: 503,
        body: "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>r-3</RequestID></Response>",
      },
      {
        status: 200,
        body: '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r-4</requestId><reservationSet/></DescribeInstancesResponse>',
      },
    ]);
    const client = new EC2Client(clientOptions(aws.handler));
    const out = await client.send(new DescribeInstancesCommand({}));
    expect(out.$metadata.attempts).toBe(2);
  });

  it("do not retry a ValidationError", async () => {
    const aws = scripted([autoScalingError("ValidationError"), setDesiredOk]);
    const client = new AutoScalingClient(clientOptions(aws.handler));
    await expect(client.send(setDesired)).rejects.toMatchObject({ name: "ValidationError" });
    expect(aws.times).toHaveLength(1);
  });

  it("retry a group busy with a scaling activity, and SSM's TooManyUpdates, once taught to", async () => {
    const busy = () => scripted([autoScalingError("ScalingActivityInProgress"), setDesiredOk]);
    // The SDK alone counts ScalingActivityInProgress as a client error and gives up at once.
    const untaught = busy();
    await expect(
      new AutoScalingClient(clientOptions(untaught.handler)).send(setDesired),
    ).rejects.toMatchObject({
      name: "ScalingActivityInProgressFault",
      Code: "ScalingActivityInProgress",
    });
    expect(untaught.times).toHaveLength(1);

    const taught = busy();
    const autoScaling = new AutoScalingClient(clientOptions(taught.handler));
    retryBusyErrors(autoScaling);
    expect((await autoScaling.send(setDesired)).$metadata.attempts).toBe(2);

    const parameters = scripted([
      { status: 400, body: '{"__type":"TooManyUpdates","message":"Too many updates (test)"}' },
      { status: 200, body: '{"Version":2,"Tier":"Standard"}' },
    ]);
    const ssm = new SSMClient(clientOptions(parameters.handler));
    retryBusyErrors(ssm);
    const put = new PutParameterCommand({ Name: "/hearth/x", Value: "v", Type: "String", Overwrite: true });
    expect((await ssm.send(put)).Version).toBe(2);
    expect(parameters.times).toHaveLength(2);
  });

  it("are what createAwsFleet drives: it teaches its clients the busy errors", () => {
    const aws = scripted([]);
    const autoScaling = new AutoScalingClient(clientOptions(aws.handler));
    const ec2 = new EC2Client(clientOptions(aws.handler));
    const ssm = new SSMClient(clientOptions(aws.handler));
    createAwsFleet({
      autoScaling,
      ec2,
      ssm,
      groups: {},
      runnerConfigPrefix: "/hearth/runners",
      stage: "test",
      account: "123456789012",
      partition: "aws",
    });
    for (const client of [autoScaling, ec2, ssm]) {
      expect(client.middlewareStack.identify()).toContainEqual(
        expect.stringMatching(/^hearthRetryBusyErrors /),
      );
    }
  });
});

describe("backoffMs", () => {
  it("doubles the cap from baseMs up to maxMs, with full jitter, from the first retry on", () => {
    const top = { ...defaultFleetRetry, random: () => 0.999999 };
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffMs(n, top))).toEqual([
      249, 499, 999, 1999, 3999, 7999, 7999,
    ]);
    expect(backoffMs(2, { ...defaultFleetRetry, random: () => 0 })).toBe(0);
    expect(defaultFleetRetry.attempts).toBe(6);
  });
});

/** A service error as the SDK throws it: `name` is the API's error code. */
const awsError = (name: string, Service = AutoScalingServiceException) =>
  new Service({ name, $fault: "client", $metadata: { httpStatusCode: 400 }, message: `${name} (test)` });

describe("isThrottling", () => {
  it.each([
    ["Throttling", AutoScalingServiceException],
    ["ThrottlingException", SSMServiceException],
    ["RequestLimitExceeded", EC2ServiceException],
    ["TooManyRequestsException", AutoScalingServiceException],
    ["RequestThrottled", EC2ServiceException],
    ["ResourceContention", AutoScalingServiceException],
    ["ScalingActivityInProgress", AutoScalingServiceException],
    ["ScalingActivityInProgressFault", AutoScalingServiceException],
    ["ResourceContentionFault", AutoScalingServiceException],
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
