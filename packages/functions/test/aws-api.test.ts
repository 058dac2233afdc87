import { randomUUID } from "node:crypto";
import { AutoScalingClient, DescribeAutoScalingInstancesCommand } from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { Webhooks } from "@octokit/webhooks";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { functionPolicy } from "../../../infra/lib/iam";
import { groupNames } from "../../../infra/lib/names";
import { workflowJobExamples } from "../../core/test/fixtures";
import {
  type AwsCall,
  type AwsTestStage,
  captureStdout,
  emittedMetrics,
  forbidden,
  functionEnvironment,
  GITHUB_SECRET,
  httpEvent,
  INTERRUPTION_MACHINE_ARN,
  lambdaContext,
  mockedCalls,
  recordDynamoCalls,
  STAGE,
  STATE_MACHINE_ARN,
  STATUS_TOKEN,
  scope,
  startAwsTestStage,
  tableArn,
} from "./support/aws";

/**
 * The API Lambda's module, loaded as Lambda loads it: with only the API's links in `SST_RESOURCE_*`.
 * DynamoDB is real (embedded); Step Functions, Auto Scaling and EC2 are mocked.
 */

const sfn = mockClient(SFNClient);
const autoScaling = mockClient(AutoScalingClient);
const ec2 = mockClient(EC2Client);
const INSTANCE = "i-0123456789abcdef0";
const ROLE_SESSION = `arn:aws:sts::123456789012:assumed-role/hearth-${STAGE}-PoolX8664InstanceRole/${INSTANCE}`;

let stage: AwsTestStage;
let handler: (
  event: unknown,
  context: unknown,
) => Promise<{ statusCode: number; body: string; headers?: Record<string, string> }>;
let dynamoCalls: { calls: AwsCall[]; restore(): void };

beforeAll(async () => {
  stage = await startAwsTestStage();
  stage.setEnvironment(functionEnvironment("api", stage.tableName));
  dynamoCalls = recordDynamoCalls(stage.tableName);
  ({ handler } = (await import("../src/aws/api")) as unknown as { handler: typeof handler });
});
afterAll(async () => {
  dynamoCalls.restore();
  await stage.close();
});
const recorded: AwsCall[] = [];
beforeEach(() => {
  sfn.reset();
  sfn.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE_ARN}:run`, startDate: new Date() });
});
afterEach(() => {
  recorded.push(
    ...mockedCalls("states", sfn),
    ...mockedCalls("autoscaling", autoScaling),
    ...mockedCalls("ec2", ec2),
  );
  autoScaling.reset();
  ec2.reset();
});

const invoke = (event: ReturnType<typeof httpEvent>) =>
  captureStdout(() => handler(event, lambdaContext("hearth-test-api")));

async function githubDelivery(labels: string[], options: { secret?: string; id?: number } = {}) {
  const example = workflowJobExamples.find((e) => e.action === "queued");
  if (!example) throw new Error("no queued example");
  const payload = {
    ...example,
    workflow_job: { ...example.workflow_job, id: options.id ?? Math.floor(Math.random() * 1e9), labels },
  };
  const body = JSON.stringify(payload);
  return httpEvent({
    method: "POST",
    path: "/webhooks/github",
    headers: {
      "content-type": "application/json",
      "x-github-event": "workflow_job",
      "x-github-delivery": randomUUID(),
      "x-hub-signature-256": await new Webhooks({ secret: options.secret ?? GITHUB_SECRET }).sign(body),
    },
    body,
  });
}

describe("the API Lambda", () => {
  it("records a queued job, answers 202, and starts a ScaleFleet run for its pool", async () => {
    const { result, lines } = await invoke(await githubDelivery(["self-hosted", "nix", "x86_64-linux"]));
    expect(result.statusCode).toBe(202);
    expect(JSON.parse(result.body)).toMatchObject({ status: "recorded", job: { status: "queued" } });
    const starts = sfn.commandCalls(StartExecutionCommand);
    expect(starts).toHaveLength(1);
    const input = starts[0]?.args[0].input;
    expect(input?.stateMachineArn).toBe(STATE_MACHINE_ARN);
    expect(input?.name).toMatch(/^x86_64-[0-9a-f-]{36}$/);
    expect(JSON.parse(input?.input ?? "{}")).toEqual({
      pool: "x86_64",
      holder: input?.name,
      iteration: 0,
      maxIterations: 60,
    });
    expect(emittedMetrics(lines)).toEqual(["WebhookRequests"]);
    // Logs are Powertools' JSON, with the stage on every line.
    const logged = lines.filter((line) => !line.includes('"_aws"')).map((line) => JSON.parse(line));
    expect(logged.map((entry) => entry.message)).toEqual(["webhook recorded", "scale requested"]);
    for (const entry of logged) {
      expect(entry).toMatchObject({ service: "hearth", stage: STAGE, function_name: "hearth-test-api" });
    }
  });

  it("starts one run for a burst: the pool's lease holds off the rest", async () => {
    for (let i = 0; i < 3; i++) {
      const { result } = await invoke(await githubDelivery(["self-hosted", "nix", "aarch64-linux"]));
      expect(result.statusCode).toBe(202);
    }
    expect(
      sfn.commandCalls(StartExecutionCommand).map((call) => JSON.parse(call.args[0].input.input ?? "").pool),
    ).toEqual(["aarch64"]);
  });

  it("rejects a delivery with a bad signature, and counts it for the rejection alarm", async () => {
    const { result, lines } = await invoke(await githubDelivery(["nix"], { secret: "wrong" }));
    expect(result.statusCode).toBe(401);
    expect(emittedMetrics(lines).sort()).toEqual(["WebhookRejected", "WebhookRequests"]);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it("serves the status to a holder of the token only, to any origin", async () => {
    const anonymous = await invoke(httpEvent({ method: "GET", path: "/api/status" }));
    expect(anonymous.result.statusCode).toBe(401);
    const { result } = await invoke(
      httpEvent({ method: "GET", path: "/api/status", headers: { authorization: `Bearer ${STATUS_TOKEN}` } }),
    );
    expect(result.statusCode).toBe(200);
    const status = JSON.parse(result.body);
    expect(status.stage).toBe(STAGE);
    expect(status.pools.map((pool: { name: string }) => pool.name)).toEqual(["x86_64", "aarch64"]);
    expect(result.headers?.["access-control-allow-origin"]).toBe("*");
    const preflight = await invoke(
      httpEvent({
        method: "OPTIONS",
        path: "/api/status",
        headers: { origin: "https://d111.cloudfront.net" },
      }),
    );
    expect(preflight.result.statusCode).toBe(204);
    expect(preflight.result.headers?.["access-control-allow-headers"]).toMatch(/authorization/i);
  });

  it("accepts a heartbeat from the instance API Gateway authenticated, registering it on first word", async () => {
    autoScaling.on(DescribeAutoScalingInstancesCommand).resolves({
      AutoScalingInstances: [
        {
          InstanceId: INSTANCE,
          AutoScalingGroupName: groupNames(STAGE, "x86_64").warm,
          AvailabilityZone: "us-east-1a",
          LifecycleState: "InService",
          HealthStatus: "HEALTHY",
          ProtectedFromScaleIn: true,
        },
      ],
    });
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [{ InstanceId: INSTANCE, LaunchTime: new Date() }] }],
    });
    const beat = {
      instanceId: INSTANCE,
      runner: "ready",
      slots: 2,
      runningJobs: [],
      cacheKeys: [],
      storeBytes: null,
      interruption: null,
    };
    const signed = httpEvent({
      method: "POST",
      path: "/agent/heartbeat",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(beat),
      iamUserArn: ROLE_SESSION,
    });
    const { result } = await invoke(signed);
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body)).toMatchObject({ status: "ok", instance: INSTANCE });

    // Signed as a principal that is not an instance, or as another instance, it is refused (403),
    // whatever the body says. (An unsigned request never gets here: API Gateway answers it.)
    const user = httpEvent({
      method: "POST",
      path: "/agent/heartbeat",
      body: JSON.stringify(beat),
      iamUserArn: "arn:aws:iam::123456789012:user/someone",
    });
    const refused = (await invoke(user)).result;
    expect(refused.statusCode).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: "forbidden" } });
    const other = httpEvent({
      method: "POST",
      path: "/agent/heartbeat",
      body: JSON.stringify(beat),
      iamUserArn: ROLE_SESSION.replace(INSTANCE, "i-0fedcba9876543210"),
    });
    expect((await invoke(other)).result.statusCode).toBe(403);
  });

  it("made only AWS calls its IAM policy allows", () => {
    const policy = functionPolicy("api", scope, {
      tableArn: tableArn(stage.tableName),
      stateMachineArn: STATE_MACHINE_ARN,
      interruptionMachineArn: INTERRUPTION_MACHINE_ARN,
      pools: ["x86_64", "aarch64"],
    });
    const calls = [...dynamoCalls.calls, ...recorded];
    expect(new Set(calls.map((call) => call.action))).toEqual(
      new Set([
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "states:StartExecution",
        "autoscaling:DescribeAutoScalingInstances",
        "ec2:DescribeInstances",
      ]),
    );
    expect(forbidden(policy, calls)).toEqual([]);
    // The check itself can fail: the same calls against the planner's policy are refused.
    const plan = functionPolicy("plan", scope, { tableArn: tableArn(stage.tableName), pools: [] });
    expect(forbidden(plan, calls).length).toBe(calls.length);
  });
});
