import "../src/local/polyfills";
import { SFNClient, StartExecutionCommand, type StartExecutionCommandInput } from "@aws-sdk/client-sfn";
import { localDynamoClients } from "@hearth/core/local";
import { createScalingRecords } from "@hearth/core/scaling";
import { gitlabDelivery, jobHookPayload } from "@hearth/core/simulation/forge";
import { scaleFleetDefinition } from "@hearth/core/workflows";
import { StateMachine } from "aws-local-stepfunctions";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { groupNames } from "../../../infra/lib/names";
import { FakeAws, installFakeAws, mockedClients } from "../../core/test/support/auto-scaling-fake";
import { linkEnvironment } from "../src/aws/links";
import {
  type AwsTestStage,
  allLinks,
  captureStdout,
  GITHUB_SECRET,
  GITLAB_TOKEN,
  httpEvent,
  lambdaContext,
  STAGE,
  STATE_MACHINE_ARN,
  startAwsTestStage,
} from "./support/aws";
import { type FakeGitLab, startFakeGitLab } from "./support/fake-gitlab";

/**
 * A GitLab job in AWS: the Job Hook carries no tags, so the API Lambda looks them up in GitLab's API
 * before it answers, and asks the job's own pool for capacity. Run as deployed: the API handler with
 * the stage's links in `SST_RESOURCE_*`, StartExecution running the real ScaleFleet definition under
 * aws-local-stepfunctions with the task Lambdas' handlers, a stateful Auto Scaling model behind the
 * SDK, and GitLab's API faked at the HTTP boundary.
 */

const sfn = mockClient(SFNClient);
const aws = new FakeAws();
const started: Array<{ pool: string; holder: string }> = [];
const runs: Array<Promise<unknown>> = [];

let stage: AwsTestStage;
let gitlab: FakeGitLab;

const arn = (name: string) => `arn:aws:lambda:us-east-1:123456789012:function:hearth-${STAGE}-${name}`;

beforeAll(async () => {
  stage = await startAwsTestStage();
  gitlab = await startFakeGitLab({ tags: { "5001": ["nix", "aarch64-linux"] } });
  const links = allLinks(stage.tableName);
  stage.setEnvironment(
    linkEnvironment({
      ...links,
      // One iteration per run: the test asserts what the first Apply asks of Auto Scaling.
      HearthConfig: { ...links.HearthConfig, gitlabUrl: gitlab.url, maxIterations: 1 },
      GitlabApiToken: { value: "glpat-aws-test" },
    }),
  );
  for (const pool of ["x86_64", "aarch64"]) {
    const names = groupNames(STAGE, pool);
    aws.group({
      name: names.warm,
      warmPool: { MinSize: 0, MaxGroupPreparedCapacity: 0, PoolState: "Stopped" },
    });
    aws.group({ name: names.burst, onDemandPercent: 0 });
  }
  installFakeAws(aws, mockedClients());

  // StartExecution runs the deployed definition, each Task mapped to its Lambda's handler.
  const steps = await import("../src/aws/scale");
  const machine = new StateMachine(
    scaleFleetDefinition({
      observe: arn("observe"),
      plan: arn("plan"),
      apply: arn("apply"),
      finish: arn("finish"),
      recordFailure: arn("record-failure"),
    }) as never,
    { validationOptions: { checkArn: true, checkPaths: true } },
  );
  sfn.on(StartExecutionCommand).callsFake((input: StartExecutionCommandInput) => {
    const state = JSON.parse(input.input ?? "{}") as { pool: string; holder: string };
    started.push({ pool: state.pool, holder: state.holder });
    const context = lambdaContext("scale") as never;
    const task = (step: (event: unknown, context?: never) => Promise<unknown>) => (event: unknown) =>
      step(event, context) as never;
    const execution = machine.run(state, {
      overrides: {
        taskResourceLocalHandlers: {
          Observe: task(steps.observe),
          Plan: task(steps.plan),
          Apply: task(steps.apply),
          Finish: task(steps.finish),
          RecordFailure: task(steps.recordFailure),
        },
        waitTimeOverrides: { Wait: 0 },
      },
    });
    runs.push(execution.result);
    return { executionArn: `${STATE_MACHINE_ARN}:${input.name}`, startDate: new Date() };
  });
});
afterAll(async () => {
  await gitlab?.close();
  await stage?.close();
});

describe("a GitLab job tagged for the second pool, in AWS", () => {
  it("is looked up before the answer, and starts that pool's run and no other", async () => {
    const { documents } = localDynamoClients(stage.dynamo.endpoint);
    const scalingRecords = createScalingRecords({
      client: documents,
      tableName: stage.tableName,
      now: () => new Date(),
    });
    // The untagged pool has a spare slot: a job routed as untagged would take it.
    await scalingRecords.put({
      pool: "x86_64",
      at: new Date().toISOString(),
      desiredWarm: 1,
      desiredBurst: 0,
      warmPoolSize: 0,
      queued: 0,
      spareSlots: 1,
      reason: "one instance up",
    });

    const { createApiHandler } = await import("../src/aws/handlers/api");
    const handler = createApiHandler();
    const job = {
      source: "gitlab" as const,
      id: "5001",
      project: "acme/app",
      projectId: "42",
      pipelineId: "9",
    };
    const request = gitlabDelivery(
      jobHookPayload({ ...job, name: "build-arm", labels: [] }, "pending", {
        createdAt: new Date().toISOString(),
      }),
      { githubWebhookSecret: GITHUB_SECRET, gitlabWebhookToken: GITLAB_TOKEN },
      new Date(),
    );
    const { result: response } = await captureStdout(() =>
      handler(
        httpEvent({
          method: "POST",
          path: request.path,
          headers: request.headers,
          body: request.body,
        }) as never,
        lambdaContext("api") as never,
      ),
    );
    expect(response.statusCode).toBe(202);
    // Looked up before the answer: the run had started when the webhook was answered.
    expect(gitlab.requests).toEqual([{ path: "/api/v4/projects/42/jobs/5001", token: "glpat-aws-test" }]);
    expect(started.map((run) => run.pool)).toEqual(["aarch64"]);

    await captureStdout(() => Promise.all(runs));
    // The job's own pool was asked for capacity, and the untagged pool was left as it was.
    const arm = groupNames(STAGE, "aarch64");
    const x86 = groupNames(STAGE, "x86_64");
    expect(aws.get(arm.warm).desired + aws.get(arm.burst).desired).toBeGreaterThan(0);
    expect(aws.get(x86.warm).desired + aws.get(x86.burst).desired).toBe(0);
    expect((await scalingRecords.get("x86_64"))?.spareSlots).toBe(1);
    expect(started).toHaveLength(1);
  });
});
