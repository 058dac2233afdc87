import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  DescribeScalingActivitiesCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { createGitLabJobs } from "@hearth/core/gitlab-api/client";
import { scaleLease } from "@hearth/core/scaling";
import { gitlabDelivery, jobHookPayload } from "@hearth/core/simulation/forge";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { groupNames } from "../../../infra/lib/names";
import { createApiHandler } from "../src/aws/handlers/api";
import { createInterruptionHandler } from "../src/aws/handlers/interruption";
import { createPollHandler } from "../src/aws/handlers/poll";
import { createScaleHandlers } from "../src/aws/handlers/scale";
import { createSweepHandler } from "../src/aws/handlers/sweep";
import { createTickHandler } from "../src/aws/handlers/tick";
import { type FunctionName, functionLinks, functionNames, type LinkName } from "../src/aws/links";
import { createAwsRuntime } from "../src/aws/runtime";
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

/**
 * Each function links exactly what it reads: run with a reader that refuses any link the function
 * does not declare (as SST's `Resource` would in Lambda), each reads all it declares, and no more.
 */

const sfn = mockClient(SFNClient);
const autoScaling = mockClient(AutoScalingClient);
// EC2 knows none of the instances these steps ask about (an unknown instance is an empty listing).
mockClient(EC2Client).on(DescribeInstancesCommand).resolves({ Reservations: [] });

let stage: AwsTestStage;
beforeAll(async () => {
  stage = await startAwsTestStage();
  // No SST_RESOURCE_* at all: every link comes through the reader below.
  stage.setEnvironment({});
  sfn.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE_ARN}:run`, startDate: new Date() });
  const group = (name: string) => ({
    AutoScalingGroupName: name,
    MinSize: 0,
    MaxSize: 10,
    DesiredCapacity: 0,
    DefaultCooldown: 300,
    AvailabilityZones: ["us-east-1a"],
    HealthCheckType: "EC2",
    CreatedTime: new Date(),
    Instances: [],
  });
  const names = groupNames(STAGE, "x86_64");
  autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [group(names.warm), group(names.burst)],
  });
  autoScaling.on(DescribeScalingActivitiesCommand).resolves({ Activities: [] });
  autoScaling.on(DescribeAutoScalingInstancesCommand).resolves({ AutoScalingInstances: [] });
});
afterAll(() => stage.close());

function strictReader(fn: FunctionName) {
  const declared = new Set<string>(["App", ...functionLinks[fn]]);
  const links = allLinks(stage.tableName);
  const read = new Set<string>();
  return {
    read,
    declared,
    runtime: createAwsRuntime({
      gitlabClient: createGitLabJobs,
      read: (name) => {
        if (!declared.has(name)) throw new Error(`${fn} reads ${name}, which it does not link`);
        read.add(name);
        return links[name as LinkName];
      },
    }),
  };
}

const run = { pool: "x86_64", iteration: 0, maxIterations: 60 };

/** What each function does in a normal invocation. */
const exercise: Record<FunctionName, (runtime: ReturnType<typeof createAwsRuntime>) => Promise<unknown>> = {
  async api(runtime) {
    const handler = createApiHandler(runtime);
    const { Webhooks } = await import("@octokit/webhooks");
    const body = JSON.stringify({
      action: "queued",
      workflow_job: {
        id: 9001,
        run_id: 1,
        run_attempt: 1,
        name: "build",
        status: "queued",
        conclusion: null,
        // Another pool than `run.pool`'s: the ScaleFleet run this job starts leaves that pool's lease free.
        labels: ["self-hosted", "nix", "aarch64-linux"],
        created_at: new Date().toISOString(),
        started_at: new Date().toISOString(),
        completed_at: null,
        runner_id: null,
        runner_name: null,
        html_url: "https://github.com/acme/app/actions/runs/1/job/9001",
      },
      repository: { full_name: "acme/app" },
    });
    const event = httpEvent({
      method: "POST",
      path: "/webhooks/github",
      headers: {
        "content-type": "application/json",
        "x-github-event": "workflow_job",
        "x-github-delivery": crypto.randomUUID(),
        "x-hub-signature-256": await new Webhooks({ secret: GITHUB_SECRET }).sign(body),
      },
      body,
    });
    const response = await handler(event as never, lambdaContext("api") as never);
    expect(response.statusCode).toBe(202);
    // A GitLab job whose Job Hook does not carry its tags: the API looks them up (no token here).
    const job = {
      source: "gitlab" as const,
      id: "9002",
      project: "acme/app",
      projectId: "7",
      pipelineId: "1",
    };
    const request = gitlabDelivery(
      jobHookPayload({ ...job, name: "build", labels: [] }, "pending", {
        createdAt: new Date().toISOString(),
      }),
      { githubWebhookSecret: GITHUB_SECRET, gitlabWebhookToken: GITLAB_TOKEN },
      new Date(),
    );
    const gitlab = await handler(
      httpEvent({
        method: "POST",
        path: request.path,
        headers: request.headers,
        body: request.body,
      }) as never,
      lambdaContext("api") as never,
    );
    expect(gitlab.statusCode).toBe(202);
    // Untagged, it started the `x86_64` run: observe's exercise below holds that pool only once it is gone.
    await runtime.hearth.leases().clear(scaleLease("x86_64"));
    // A heartbeat with a free slot mints a GitHub runner with the App; this exercise sends none, so
    // the port is read here, as that heartbeat would.
    expect(runtime.github()).toBeUndefined();
    // A heartbeat that reports a spot notice first starts HandleInterruption.
    await runtime.startHandleInterruption()({
      kind: "warning",
      instanceId: "i-0123456789abcdef0",
      action: "terminate",
      at: new Date().toISOString(),
      deadline: new Date(Date.now() + 120_000).toISOString(),
      source: "agent",
    });
  },
  observe: async (runtime) => {
    await createScaleHandlers(runtime).observe({ ...run, holder: "links-observe" });
    // An instance leaving service has its runners and manager deleted; none leaves in this exercise,
    // so the ports are read here, as that Observe would.
    expect(runtime.github()).toBeUndefined();
    expect(runtime.gitlabRunners()).toBeUndefined();
  },
  plan: async (runtime) => {
    const observation = {
      pool: "x86_64",
      at: Date.now(),
      iteration: 1,
      queue: [],
      running: [],
      queued: 0,
      instances: [],
      groups: [],
      demand: null,
    };
    return createScaleHandlers(runtime).plan({ ...run, holder: "links-plan", observation });
  },
  apply: async (runtime) => {
    const observation = {
      pool: "x86_64",
      at: Date.now(),
      iteration: 1,
      queue: [],
      running: [],
      queued: 0,
      instances: [],
      groups: [],
      demand: null,
    };
    // Observe's exercise left its run's lease: this run holds the pool only once that one is gone.
    await runtime.hearth.leases().clear(scaleLease("x86_64"));
    const plan = await createScaleHandlers(runtime).plan({ ...run, holder: "links-apply", observation });
    await createScaleHandlers(runtime).apply({ ...run, holder: "links-apply", observation, plan });
  },
  finish: (runtime) => createScaleHandlers(runtime).finish({ ...run, holder: "links-finish" }),
  recordFailure: (runtime) =>
    createScaleHandlers(runtime).recordFailure({
      ...run,
      holder: "links-failure",
      error: { Error: "X", Cause: "y" },
    }),
  tick: (runtime) => createTickHandler(runtime)({}, lambdaContext("tick") as never),
  // No App and no GitLab API token are set: the poll reads them, and polls nothing.
  poll: (runtime) => createPollHandler(runtime)({}, lambdaContext("poll") as never),
  async interruption(runtime) {
    // Claim, for an instance that is not the fleet's: journaled and ignored.
    const claimed = await createInterruptionHandler(runtime)(
      {
        notice: {
          kind: "rebalance",
          instanceId: "i-0000000000000beef",
          action: "rebalance",
          at: new Date().toISOString(),
          deadline: null,
          source: "eventbridge",
        },
      },
      lambdaContext("interruption") as never,
    );
    expect(claimed).toMatchObject({ handled: false, reason: "not-hearth" });
    // Drain starts the pool's ScaleFleet run; Drain and Settle delete the instance's runners. The ports
    // are read here, as those steps would.
    runtime.startScaleFleet();
    expect(runtime.github()).toBeUndefined();
    expect(runtime.gitlabRunners()).toBeUndefined();
  },
  async sweep(runtime) {
    const handler = createSweepHandler(runtime);
    const survey = (await handler({ sweepId: "links-sweep" }, lambdaContext("sweep") as never)) as {
      sweepId: string;
    };
    expect(survey.sweepId).toBe("links-sweep");
    await handler({ survey }, lambdaContext("sweep") as never);
    await handler({ survey, error: { Error: "X", Cause: "y" } }, lambdaContext("sweep") as never);
    // The survey lists the cloud and both forges (the App, the pools' runner tokens, the API token's
    // managers); a stuck job's retry may start a run. The ports are read here, as a sweep with
    // runners and jobs to look at would.
    runtime.fleet();
    runtime.startScaleFleet();
    expect(runtime.github()).toBeUndefined();
    expect(runtime.gitlabRunners()).toBeUndefined();
    expect((await runtime.hearth.sweep()).gitlab).toBeUndefined();
  },
};

describe("links", () => {
  it.each(functionNames)("%s reads exactly the links it declares", async (fn) => {
    const { runtime, read, declared } = strictReader(fn);
    await captureStdout(() => exercise[fn](runtime));
    expect([...read].sort()).toEqual([...declared].sort());
  });

  it("refuses to serve without a status token, or with a signing token GitLab would not issue", () => {
    const withLinks = (overrides: Partial<Record<LinkName, unknown>>) =>
      createAwsRuntime({
        read: (name) =>
          name in overrides ? overrides[name as LinkName] : allLinks(stage.tableName)[name as LinkName],
      });
    expect(() => createApiHandler(withLinks({ StatusToken: { value: "" } }))).toThrow(/StatusToken is empty/);
    expect(() => createApiHandler(withLinks({ GitlabSigningToken: { value: "not-whsec" } }))).toThrow(
      /GITLAB_SIGNING_TOKEN must look like whsec_/,
    );
    expect(() => createApiHandler(withLinks({}))).not.toThrow();
  });

  it("refuses a malformed link, naming it", () => {
    const runtime = createAwsRuntime({
      read: (name) => (name === "Storage" ? { tableName: "" } : allLinks(stage.tableName)[name as LinkName]),
    });
    expect(() => runtime.store()).toThrow(/link Storage is malformed at tableName/);
  });
});
