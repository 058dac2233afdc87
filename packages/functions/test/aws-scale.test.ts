import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeScalingActivitiesCommand,
  DescribeWarmPoolCommand,
  PutWarmPoolCommand,
  SetDesiredCapacityCommand,
  SetInstanceProtectionCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { createJournal } from "@hearth/core/journal";
import { createLeases } from "@hearth/core/leases";
import { createLedger } from "@hearth/core/ledger";
import { localDynamoClients } from "@hearth/core/local";
import { LEASE_SECONDS, scaleLease } from "@hearth/core/scaling";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { functionPolicy } from "../../../infra/lib/iam";
import { groupNames } from "../../../infra/lib/names";
import { jobEvent } from "../../core/test/support/jobs";
import type { FunctionName } from "../src/aws/links";
import {
  type AwsCall,
  type AwsTestStage,
  captureStdout,
  emittedMetrics,
  forbidden,
  functionEnvironment,
  lambdaContext,
  mockedCalls,
  recordDynamoCalls,
  STAGE,
  scope,
  startAwsTestStage,
  tableArn,
} from "./support/aws";

/**
 * ScaleFleet's task Lambdas, loaded as Lambda loads them (links in `SST_RESOURCE_*`), run step by
 * step through one iteration as the state machine would, against the embedded DynamoDB and mocked
 * Auto Scaling. Every AWS call of each step is held to that step's IAM policy.
 */

const autoScaling = mockClient(AutoScalingClient);
const ec2 = mockClient(EC2Client);
const groups = groupNames(STAGE, "x86_64");

let stage: AwsTestStage;
let dynamo: { calls: AwsCall[]; restore(): void };
type Step = (event: unknown, context?: unknown) => Promise<Record<string, unknown>>;
let steps: Record<"observe" | "plan" | "apply" | "finish" | "recordFailure", Step>;

beforeAll(async () => {
  stage = await startAwsTestStage();
  // The module holds all five handlers; observe's links cover the others' (each reads only its own,
  // as aws-links.test.ts shows).
  stage.setEnvironment(functionEnvironment("observe", stage.tableName));
  dynamo = recordDynamoCalls(stage.tableName);
  steps = (await import("../src/aws/scale")) as unknown as typeof steps;

  const { documents } = localDynamoClients(stage.dynamo.endpoint);
  const ledger = createLedger({ client: documents, tableName: stage.tableName });
  await ledger.record(jobEvent({ id: "4242", queuedAt: new Date(Date.now() - 60_000).toISOString() }));

  autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      {
        AutoScalingGroupName: groups.warm,
        MinSize: 0,
        MaxSize: 50,
        DesiredCapacity: 0,
        DefaultCooldown: 300,
        AvailabilityZones: ["us-east-1a"],
        HealthCheckType: "EC2",
        CreatedTime: new Date(),
        Instances: [],
        WarmPoolConfiguration: { MinSize: 0, MaxGroupPreparedCapacity: 0, PoolState: "Stopped" },
      },
      {
        AutoScalingGroupName: groups.burst,
        MinSize: 0,
        MaxSize: 50,
        DesiredCapacity: 0,
        DefaultCooldown: 300,
        AvailabilityZones: ["us-east-1a"],
        HealthCheckType: "EC2",
        CreatedTime: new Date(),
        Instances: [],
        MixedInstancesPolicy: { InstancesDistribution: { OnDemandPercentageAboveBaseCapacity: 0 } },
      },
    ],
  });
  // One instance parked in the warm pool: stopped, its store kept.
  autoScaling.on(DescribeWarmPoolCommand).resolves({
    Instances: [
      {
        InstanceId: "i-0aaaaaaaaaaaaaaa1",
        AvailabilityZone: "us-east-1a",
        LifecycleState: "Warmed:Stopped",
        HealthStatus: "Healthy",
        ProtectedFromScaleIn: true,
        InstanceType: "c6a.xlarge",
      },
    ],
  });
  autoScaling.on(DescribeScalingActivitiesCommand).resolves({ Activities: [] });
  autoScaling.on(SetDesiredCapacityCommand).resolves({});
  autoScaling.on(SetInstanceProtectionCommand).resolves({});
  autoScaling.on(PutWarmPoolCommand).resolves({});
  autoScaling.on(UpdateAutoScalingGroupCommand).resolves({});
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      { Instances: [{ InstanceId: "i-0aaaaaaaaaaaaaaa1", LaunchTime: new Date(Date.now() - 3_600_000) }] },
    ],
  });
});
afterAll(async () => {
  dynamo.restore();
  await stage.close();
});

const policyOf = (fn: FunctionName) =>
  functionPolicy(fn, scope, { tableArn: tableArn(stage.tableName), pools: ["x86_64", "aarch64"] });

/** Runs one step as its Lambda, and returns what it returned, printed and called. */
async function run(fn: keyof typeof steps, input: Record<string, unknown>) {
  dynamo.calls.length = 0;
  autoScaling.resetHistory();
  ec2.resetHistory();
  const { result, lines } = await captureStdout(() => steps[fn](input, lambdaContext(`hearth-test-${fn}`)));
  const calls = [...dynamo.calls, ...mockedCalls("autoscaling", autoScaling), ...mockedCalls("ec2", ec2)];
  return { result, metrics: emittedMetrics(lines), calls };
}

describe("ScaleFleet's Lambdas, one iteration", () => {
  const start = { pool: "x86_64", holder: "x86_64-run-1", iteration: 0, maxIterations: 60 };
  let state: Record<string, unknown> = { ...start };

  it("observe: takes the lease, sees the queue and the fleet, and reports capacity by state", async () => {
    const { result, metrics, calls } = await run("observe", state);
    expect(result).toMatchObject({ pool: "x86_64", leaseLost: false, queued: 1, iteration: 1 });
    // Capacity by state: the one stopped instance (states with none are left out).
    expect(metrics.filter((name) => name === "Instances")).toHaveLength(1);
    expect(calls.map((call) => call.action)).toEqual(
      expect.arrayContaining(["autoscaling:DescribeAutoScalingGroups", "dynamodb:PutItem", "dynamodb:Scan"]),
    );
    expect(forbidden(policyOf("observe"), calls)).toEqual([]);
    state = { ...state, observation: result };
  });

  it("plan: decides from the observation alone, calling nothing", async () => {
    const { result, calls } = await run("plan", state);
    expect(result).toMatchObject({ pool: "x86_64" });
    expect(Number(result.desiredWarm) + Number(result.desiredBurst)).toBeGreaterThan(0);
    expect(calls).toEqual([]);
    state = { ...state, plan: result };
  });

  it("apply: raises capacity on this stage's groups, journals the decision, and counts it", async () => {
    const { result, metrics, calls } = await run("apply", state);
    expect(result).toMatchObject({ settled: false });
    expect((result.calls as string[]).some((call) => call.startsWith("SetDesiredCapacity"))).toBe(true);
    expect(metrics).toContain("Decisions");
    const scaled = autoScaling
      .commandCalls(SetDesiredCapacityCommand)
      .map((c) => c.args[0].input.AutoScalingGroupName);
    expect(scaled.every((name) => name === groups.warm || name === groups.burst)).toBe(true);
    expect(forbidden(policyOf("apply"), calls)).toEqual([]);
    // Held to another function's policy, the same calls are refused: the check can fail.
    expect(forbidden(policyOf("observe"), calls).length).toBeGreaterThan(0);
  });

  it("finish: releases the lease, so the next request can start a run", async () => {
    const { result, calls } = await run("finish", state);
    expect(result).toEqual({});
    expect(calls.map((call) => call.action)).toEqual(["dynamodb:DeleteItem"]);
    expect(forbidden(policyOf("finish"), calls)).toEqual([]);
  });

  it("recordFailure: journals the error and releases the lease", async () => {
    const failed = {
      ...start,
      holder: "x86_64-run-2",
      error: { Error: "Hearth.Throttled", Cause: "slow down" },
    };
    const { result, calls } = await run("recordFailure", failed);
    expect(result).toEqual({});
    expect(forbidden(policyOf("recordFailure"), calls)).toEqual([]);
    const { documents } = localDynamoClients(stage.dynamo.endpoint);
    const journal = createJournal({ client: documents, tableName: stage.tableName, now: () => new Date() });
    const entries = await journal.latest(10);
    expect(entries.some((entry) => entry.kind === "error" && entry.reason.includes("Hearth.Throttled"))).toBe(
      true,
    );
  });

  it("observe, for a run that supersedes: takes the lease from a run that waits, and stops if it is at work", async () => {
    const { documents } = localDynamoClients(stage.dynamo.endpoint);
    const leases = createLeases({ client: documents, tableName: stage.tableName, now: () => new Date() });
    const lease = scaleLease("x86_64");
    await leases.clear(lease);
    const superseding = { ...start, holder: "x86_64-run-4", supersede: true };
    // The run under way is at work (it renewed without a wait): the new run stops at once.
    expect(await leases.acquire(lease, "x86_64-run-3", LEASE_SECONDS)).toBe(true);
    expect((await run("observe", superseding)).result).toMatchObject({ leaseLost: true });
    expect((await leases.get(lease))?.holder).toBe("x86_64-run-3");
    // It waits 15 s: the new run takes the pool and observes.
    expect(await leases.renew(lease, "x86_64-run-3", LEASE_SECONDS, Date.now() + 15_000)).toBe(true);
    const { result, calls } = await run("observe", superseding);
    expect(result).toMatchObject({ leaseLost: false, iteration: 1 });
    expect((await leases.get(lease))?.holder).toBe("x86_64-run-4");
    expect(forbidden(policyOf("observe"), calls)).toEqual([]);
    // A run not started to supersede never takes a held lease, waiting or not.
    expect(await leases.renew(lease, "x86_64-run-4", LEASE_SECONDS, Date.now() + 15_000)).toBe(true);
    expect((await run("observe", { ...start, holder: "x86_64-run-5" })).result).toMatchObject({
      leaseLost: true,
    });
    await leases.clear(lease);
  });
});
