import { randomUUID } from "node:crypto";
import {
  type Activity,
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  DescribeScalingActivitiesCommand,
  DescribeWarmPoolCommand,
  PutWarmPoolCommand,
  type ScalingActivityStatusCode,
  SetDesiredCapacityCommand,
  SetInstanceProtectionCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  CancelSpotInstanceRequestsCommand,
  DeleteTagsCommand,
  DescribeInstancesCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  StartInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  DeleteParameterCommand,
  GetParameterCommand,
  PutParameterCommand,
  SSMClient,
  SSMServiceException,
} from "@aws-sdk/client-ssm";
import { beforeEach, describe, expect, it } from "vitest";
import type { FleetPort } from "../src/fleet";
import { createAwsFleet } from "../src/fleet-aws";
import type { PoolConfig } from "../src/pools";
import {
  ec2Error,
  FakeAws,
  type FakeEc2Instance,
  installFakeAws,
  mockedClients,
  ssmError,
  validation,
} from "./support/auto-scaling-fake";
import {
  mutations as autoScalingMutations,
  BURST,
  iid,
  minutesAgo,
  NOW,
  pool,
  WARM,
} from "./support/aws-fleet-fixtures";

/**
 * The AWS driver, checked at the SDK boundary: every test looks at the exact inputs of the commands
 * the driver sends. Behind the mocked clients sits the stateful model of Auto Scaling and EC2 that
 * the fleet port's contract suite uses too (`support/auto-scaling-fake.ts`), so that what one call
 * changes, the next describe shows (as AWS would, eventually).
 */

const clients = mockedClients();
const { autoScaling, ec2, ssm } = clients;

const inputs = {
  setProtection: () =>
    autoScaling.commandCalls(SetInstanceProtectionCommand).map((call) => call.args[0].input),
  setDesired: () => autoScaling.commandCalls(SetDesiredCapacityCommand).map((call) => call.args[0].input),
  putWarmPool: () => autoScaling.commandCalls(PutWarmPoolCommand).map((call) => call.args[0].input),
  update: () => autoScaling.commandCalls(UpdateAutoScalingGroupCommand).map((call) => call.args[0].input),
  activities: () =>
    autoScaling.commandCalls(DescribeScalingActivitiesCommand).map((call) => call.args[0].input),
};

const mutations = () => autoScalingMutations(autoScaling);

function createFleet(
  groups: Record<string, { warm: string; burst: string }> = { x86: { warm: WARM, burst: BURST } },
) {
  return createAwsFleet({
    autoScaling: new AutoScalingClient({ region: "us-east-1" }),
    ec2: new EC2Client({ region: "us-east-1" }),
    ssm: new SSMClient({ region: "us-east-1" }),
    groups,
    runnerConfigPrefix: "/hearth/runner-config/",
    stage: "test",
    account: "123456789012",
    partition: "aws",
    now: () => NOW,
  });
}

/** A pool's two groups in a steady state: warm pool sized, burst on its configured spot share. */
function steadyPool(aws: FakeAws) {
  const warm = aws.group({
    name: WARM,
    max: 10,
    desired: 2,
    warmPool: {
      MinSize: 3,
      MaxGroupPreparedCapacity: 5,
      PoolState: "Stopped",
      InstanceReusePolicy: { ReuseOnScaleIn: true },
    },
  });
  const burst = aws.group({ name: BURST, max: 20, desired: 1, onDemandPercent: 0 });
  return { warm, burst };
}

let aws: FakeAws;
let fleet: FleetPort;
beforeEach(() => {
  aws = new FakeAws({ now: () => NOW });
  installFakeAws(aws, clients);
  fleet = createFleet();
});

// ─── observe ─────────────────────────────────────────────────────────────────────────────────────

describe("observe", () => {
  it("maps the groups, every warm-pool page and EC2's details into instances and groups", async () => {
    const { warm, burst } = steadyPool(aws);
    warm.instances = [
      { id: iid(0xa1), state: "InService", protected: true, az: "us-east-1a", launchTime: minutesAgo(90) },
      { id: iid(0xa2), state: "Pending:Wait", protected: true, az: "us-east-1b", launchTime: minutesAgo(1) },
    ];
    warm.warmInstances = [
      { id: iid(0xb1), state: "Warmed:Pending", protected: false },
      { id: iid(0xb2), state: "Warmed:Pending:Wait", protected: false },
      { id: iid(0xb3), state: "Warmed:Stopped", protected: false, launchTime: minutesAgo(300) },
      { id: iid(0xb4), state: "Warmed:Terminating:Wait", protected: false },
      { id: iid(0xb5), state: "Warmed:Hibernated", protected: false },
    ];
    burst.instances = [
      {
        id: iid(0xc1),
        state: "InService",
        protected: true,
        spot: true,
        az: "us-east-1c",
        launchTime: minutesAgo(5),
      },
      { id: iid(0xc2), state: "Pending", protected: true, spot: true },
      { id: iid(0xc3), state: "Terminating:Wait", protected: false, spot: true },
      { id: iid(0xc4), state: "Standby", protected: true },
      { id: iid(0xc5), state: "InService", protected: false },
    ];

    const observation = await fleet.observe(pool());

    expect(autoScaling.commandCalls(DescribeAutoScalingGroupsCommand).map((c) => c.args[0].input)).toEqual([
      { AutoScalingGroupNames: [WARM, BURST] },
    ]);
    // Five warm-pool instances, two per page: three pages, each asked with the previous token.
    expect(autoScaling.commandCalls(DescribeWarmPoolCommand).map((c) => c.args[0].input)).toEqual([
      { AutoScalingGroupName: WARM, NextToken: undefined },
      { AutoScalingGroupName: WARM, NextToken: "2" },
      { AutoScalingGroupName: WARM, NextToken: "4" },
    ]);
    const allIds = [...warm.instances, ...warm.warmInstances, ...burst.instances].map((i) => i.id);
    expect(ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input)).toEqual([
      { Filters: [{ Name: "instance-id", Values: allIds }], MaxResults: 1000, NextToken: undefined },
    ]);

    const byId = new Map(observation.instances.map((instance) => [instance.id, instance]));
    expect(observation.instances).toHaveLength(12);
    expect(byId.get(iid(0xa1))).toEqual({
      id: iid(0xa1),
      pool: "x86",
      group: "warm",
      market: "on-demand",
      az: "us-east-1a",
      lifecycle: "in-service",
      protectedFromScaleIn: true,
      launchedAt: minutesAgo(90).toISOString(),
      instanceType: "c6a.xlarge",
    });
    expect(byId.get(iid(0xc1))).toEqual({
      id: iid(0xc1),
      pool: "x86",
      group: "burst",
      market: "spot",
      az: "us-east-1c",
      lifecycle: "in-service",
      protectedFromScaleIn: true,
      launchedAt: minutesAgo(5).toISOString(),
      instanceType: "c6a.xlarge",
    });
    expect(byId.get(iid(0xb3))).toMatchObject({
      group: "warm",
      lifecycle: "stopped",
      launchedAt: minutesAgo(300).toISOString(),
    });
    const lifecycles = Object.fromEntries(observation.instances.map((i) => [i.id, i.lifecycle]));
    expect(lifecycles).toEqual({
      [iid(0xa1)]: "in-service",
      [iid(0xa2)]: "pending",
      [iid(0xb1)]: "stopping",
      [iid(0xb2)]: "stopping",
      [iid(0xb3)]: "stopped",
      [iid(0xb4)]: "terminating",
      [iid(0xb5)]: "stopped",
      [iid(0xc1)]: "in-service",
      [iid(0xc2)]: "pending",
      [iid(0xc3)]: "terminating",
      [iid(0xc4)]: "terminating",
      [iid(0xc5)]: "in-service",
    });
    expect(byId.get(iid(0xc5))?.protectedFromScaleIn).toBe(false);
    expect(byId.get(iid(0xc4))?.market).toBe("on-demand");

    expect(observation.groups).toEqual([
      // Warm pool: max(MinSize 3, MaxGroupPreparedCapacity 5 − desired 2) = 3.
      {
        pool: "x86",
        group: "warm",
        name: WARM,
        desired: 2,
        max: 10,
        warmPoolSize: 3,
        onDemandFallback: false,
      },
      {
        pool: "x86",
        group: "burst",
        name: BURST,
        desired: 1,
        max: 20,
        warmPoolSize: null,
        onDemandFallback: false,
      },
    ]);
  });

  it.each([
    // [MinSize, MaxGroupPreparedCapacity, desired, MaxSize, expected size]
    [3, 12, 2, 10, 10], // prepared − desired
    [3, 4, 2, 10, 3], // never below MinSize
    [0, 1, 4, 10, 0], // desired above prepared: empty, never negative
    [0, -1, 4, 10, 6], // -1 (unset): MaxSize − desired
    [2, undefined, 9, 10, 2], // unset, and MaxSize − desired below MinSize
  ])(
    "sizes the warm pool as max(MinSize %i, (MaxGroupPreparedCapacity %s or MaxSize) − desired %i)",
    async (minSize, prepared, desired, maxSize, expected) => {
      aws.group({
        name: WARM,
        max: maxSize,
        desired,
        warmPool: { MinSize: minSize, MaxGroupPreparedCapacity: prepared, PoolState: "Stopped" },
      });
      aws.group({ name: BURST, onDemandPercent: 0 });
      const { groups } = await fleet.observe(pool());
      expect(groups[0]?.warmPoolSize).toBe(expected);
    },
  );

  it("reports on-demand fallback when a spot burst group runs 100 % on-demand", async () => {
    const { burst } = steadyPool(aws);
    expect((await fleet.observe(pool())).groups[1]?.onDemandFallback).toBe(false);
    burst.onDemandPercent = 100;
    expect((await fleet.observe(pool())).groups[1]?.onDemandFallback).toBe(true);
    // A pool configured all on-demand is not falling back.
    expect(
      (await fleet.observe(pool({ burst: { spotShare: 0, onDemandFallback: true } }))).groups[1]
        ?.onDemandFallback,
    ).toBe(false);
  });

  it("does not fail when EC2 does not show a just-launched instance yet", async () => {
    const { warm } = steadyPool(aws);
    warm.instances = [
      { id: iid(0xa1), state: "InService", protected: true, launchTime: minutesAgo(30) },
      { id: iid(0xa2), state: "Pending", protected: true, visibleToEc2: false },
    ];
    const { instances } = await fleet.observe(pool());
    expect(instances.map((i) => [i.id, i.lifecycle, i.launchedAt])).toEqual([
      [iid(0xa1), "in-service", minutesAgo(30).toISOString()],
      [iid(0xa2), "pending", NOW.toISOString()],
    ]);
  });

  it("asks EC2 about at most 200 ids at a time and follows every page", async () => {
    const { warm } = steadyPool(aws);
    warm.max = 300;
    warm.desired = 250;
    warm.instances = Array.from({ length: 250 }, (_, n) => ({
      id: iid(0x1000 + n),
      state: "InService",
      protected: true,
      spot: false,
    }));
    aws.ec2PageSize = 150;
    const { instances } = await fleet.observe(pool());
    const ids = warm.instances.map((i) => i.id);
    expect(ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input)).toEqual([
      {
        Filters: [{ Name: "instance-id", Values: ids.slice(0, 200) }],
        MaxResults: 1000,
        NextToken: undefined,
      },
      { Filters: [{ Name: "instance-id", Values: ids.slice(0, 200) }], MaxResults: 1000, NextToken: "150" },
      { Filters: [{ Name: "instance-id", Values: ids.slice(200) }], MaxResults: 1000, NextToken: undefined },
    ]);
    // Every instance got its EC2 details (none fell back to "now").
    expect(instances.filter((i) => i.launchedAt === NOW.toISOString())).toEqual([]);
  });

  it("skips DescribeWarmPool for a warm group without a warm pool", async () => {
    aws.group({ name: WARM, desired: 1, instances: [{ id: iid(1), state: "InService", protected: true }] });
    aws.group({ name: BURST, onDemandPercent: 0 });
    const { groups, instances } = await fleet.observe(pool());
    expect(autoScaling.commandCalls(DescribeWarmPoolCommand)).toHaveLength(0);
    expect(groups[0]?.warmPoolSize).toBeNull();
    expect(instances.map((i) => i.id)).toEqual([iid(1)]);
  });

  it("fails loudly when a configured group does not exist, or the pool has none", async () => {
    aws.group({ name: WARM });
    await expect(fleet.observe(pool())).rejects.toThrow(
      `Auto Scaling group ${BURST} (pool x86) does not exist`,
    );
    await expect(fleet.observe(pool({ name: "arm" }))).rejects.toThrow(
      "no Auto Scaling groups are configured for pool arm",
    );
  });
});

// ─── release ─────────────────────────────────────────────────────────────────────────────────────

describe("release", () => {
  it("re-protects strays first, then unprotects exactly the chosen idle instances", async () => {
    const { warm, burst } = steadyPool(aws);
    const [idleWarm, busyWarm, stray, idleBurst, pending] = [iid(1), iid(2), iid(3), iid(4), iid(5)];
    warm.instances = [
      { id: idleWarm, state: "InService", protected: true },
      { id: busyWarm, state: "InService", protected: true },
      // Unprotected and not asked for (a crash between release and setCapacity, a manual change).
      { id: stray, state: "InService", protected: false },
    ];
    burst.instances = [
      { id: idleBurst, state: "InService", protected: true, spot: true },
      { id: pending, state: "Pending", protected: true, spot: true },
    ];
    const gone = iid(6);
    const asked: string[] = [];
    const result = await fleet.release(pool(), [idleWarm, busyWarm, idleBurst, pending, gone], async (id) => {
      asked.push(id);
      return id !== busyWarm;
    });

    expect(inputs.setProtection()).toEqual([
      { AutoScalingGroupName: WARM, InstanceIds: [stray], ProtectedFromScaleIn: true },
      { AutoScalingGroupName: WARM, InstanceIds: [idleWarm], ProtectedFromScaleIn: false },
      { AutoScalingGroupName: BURST, InstanceIds: [idleBurst], ProtectedFromScaleIn: false },
    ]);
    expect(result).toEqual({
      released: [idleWarm, idleBurst],
      refused: [busyWarm, pending, gone],
      calls: [
        `SetInstanceProtection(group=${WARM}, instances=${stray}, protected=true)`,
        `SetInstanceProtection(group=${WARM}, instances=${idleWarm}, protected=false)`,
        `SetInstanceProtection(group=${BURST}, instances=${idleBurst}, protected=false)`,
      ],
    });
    // Only instances in service are asked about; a pending or vanished one is refused outright.
    expect(asked).toEqual([idleWarm, busyWarm, idleBurst]);
    // Nothing in this step lowers a desired capacity: that is setCapacity's, after release.
    expect(inputs.setDesired()).toEqual([]);
  });

  it("never touches an instance in the warm pool, even when asked", async () => {
    const { warm } = steadyPool(aws);
    warm.warmInstances = [{ id: iid(7), state: "Warmed:Stopped", protected: false }];
    const asked: string[] = [];
    const result = await fleet.release(pool(), [iid(7)], async (id) => {
      asked.push(id);
      return true;
    });
    expect(result).toEqual({ released: [], refused: [iid(7)], calls: [] });
    expect(asked).toEqual([]);
    expect(inputs.setProtection()).toEqual([]);
  });

  it("sends at most 50 instance ids per SetInstanceProtection call", async () => {
    const { warm } = steadyPool(aws);
    warm.max = 200;
    const chosen = Array.from({ length: 120 }, (_, n) => iid(0x100 + n));
    const strays = Array.from({ length: 60 }, (_, n) => iid(0x400 + n));
    warm.instances = [
      ...chosen.map((id) => ({ id, state: "InService", protected: true })),
      ...strays.map((id) => ({ id, state: "InService", protected: false })),
    ];
    const result = await fleet.release(pool(), chosen, async () => true);
    expect(inputs.setProtection()).toEqual([
      { AutoScalingGroupName: WARM, InstanceIds: strays.slice(0, 50), ProtectedFromScaleIn: true },
      { AutoScalingGroupName: WARM, InstanceIds: strays.slice(50), ProtectedFromScaleIn: true },
      { AutoScalingGroupName: WARM, InstanceIds: chosen.slice(0, 50), ProtectedFromScaleIn: false },
      { AutoScalingGroupName: WARM, InstanceIds: chosen.slice(50, 100), ProtectedFromScaleIn: false },
      { AutoScalingGroupName: WARM, InstanceIds: chosen.slice(100), ProtectedFromScaleIn: false },
    ]);
    expect(result.released).toEqual(chosen);
    expect(result.calls).toHaveLength(5);
  });

  it("is idempotent: an instance already unprotected and chosen again is not unprotected twice", async () => {
    const { warm } = steadyPool(aws);
    warm.instances = [{ id: iid(1), state: "InService", protected: true }];
    const first = await fleet.release(pool(), [iid(1)], async () => true);
    expect(first.released).toEqual([iid(1)]);
    const second = await fleet.release(pool(), [iid(1)], async () => true);
    expect(second).toEqual({ released: [iid(1)], refused: [], calls: [] });
    expect(inputs.setProtection()).toHaveLength(1);
  });
});

// ─── the safety property ─────────────────────────────────────────────────────────────────────────

describe("The AWS driver never releases an instance that is busy or draining, even when the plan (wrongly) asks it to", () => {
  const [busyWarm, idleWarm, drainingBurst, idleBurst] = [iid(0xa), iid(0xb), iid(0xc), iid(0xd)];
  const launched = minutesAgo(45);

  /** Warm: a busy and an idle instance; burst: a draining (spot warning) and an idle one. */
  function fleetWithBusyAndDraining() {
    const { warm, burst } = steadyPool(aws);
    warm.desired = 2;
    warm.instances = [
      // Left unprotected by an earlier release, then it took a job: it must be protected again.
      { id: busyWarm, state: "InService", protected: false, launchTime: launched },
      { id: idleWarm, state: "InService", protected: true, launchTime: launched },
    ];
    burst.desired = 2;
    burst.instances = [
      { id: drainingBurst, state: "InService", protected: true, spot: true, launchTime: launched },
      { id: idleBurst, state: "InService", protected: true, spot: true, launchTime: launched },
    ];
    return { warm, burst };
  }

  it("release: a busy or draining instance stays protected, whatever the plan says", async () => {
    const { warm, burst } = fleetWithBusyAndDraining();
    const idle = new Set([idleWarm, idleBurst]);
    const result = await fleet.release(pool(), [busyWarm, idleWarm, drainingBurst, idleBurst], async (id) =>
      idle.has(id),
    );
    const unprotected = inputs.setProtection().filter((input) => input.ProtectedFromScaleIn === false);
    expect(unprotected.flatMap((input) => input.InstanceIds ?? [])).toEqual([idleWarm, idleBurst]);
    expect(result.refused).toEqual([busyWarm, drainingBurst]);
    expect(warm.instances.find((i) => i.id === busyWarm)?.protected).toBe(true);
    expect(burst.instances.find((i) => i.id === drainingBurst)?.protected).toBe(true);
  });
});

// ─── setCapacity ─────────────────────────────────────────────────────────────────────────────────

describe("setCapacity", () => {
  it("sets desired capacities and sizes the warm pool, with the exact inputs", async () => {
    steadyPool(aws);
    const calls = await fleet.setCapacity(pool(), { warm: 4, burst: 3, warmPoolSize: 6 });
    expect(inputs.setDesired()).toEqual([
      { AutoScalingGroupName: WARM, DesiredCapacity: 4, HonorCooldown: false },
      { AutoScalingGroupName: BURST, DesiredCapacity: 3, HonorCooldown: false },
    ]);
    expect(inputs.putWarmPool()).toEqual([
      {
        AutoScalingGroupName: WARM,
        MinSize: 6,
        MaxGroupPreparedCapacity: 10,
        PoolState: "Stopped",
        InstanceReusePolicy: { ReuseOnScaleIn: true },
      },
    ]);
    expect(mutations()).toEqual(["SetDesiredCapacity", "PutWarmPool", "SetDesiredCapacity"]);
    expect(calls).toEqual([
      `SetDesiredCapacity(group=${WARM}, desired=4)`,
      `PutWarmPool(group=${WARM}, minSize=6, maxPrepared=10)`,
      `SetDesiredCapacity(group=${BURST}, desired=3)`,
    ]);
    // What observe now reads back is what was asked for.
    const { groups } = await fleet.observe(pool());
    expect(groups.map((g) => [g.desired, g.warmPoolSize])).toEqual([
      [4, 6],
      [3, null],
    ]);
  });

  it("is idempotent: the same target a second time makes no calls", async () => {
    steadyPool(aws);
    const target = { warm: 5, burst: 2, warmPoolSize: 4 };
    expect(await fleet.setCapacity(pool(), target)).toHaveLength(3);
    const before = mutations().length;
    expect(await fleet.setCapacity(pool(), target)).toEqual([]);
    expect(mutations()).toHaveLength(before);
  });

  it("calls PutWarmPool only when MinSize or MaxGroupPreparedCapacity differ", async () => {
    const { warm } = steadyPool(aws);
    // Desired 2 and a warm pool of 3: MaxGroupPreparedCapacity 5, as configured. Burst at 1.
    expect(await fleet.setCapacity(pool(), { warm: 2, burst: 1, warmPoolSize: 3 })).toEqual([]);
    expect(inputs.putWarmPool()).toEqual([]);

    expect(await fleet.setCapacity(pool(), { warm: 2, burst: 1, warmPoolSize: 5 })).toEqual([
      `PutWarmPool(group=${WARM}, minSize=5, maxPrepared=7)`,
    ]);
    expect(inputs.setDesired()).toEqual([]);
    expect(warm.warmPool).toEqual({
      MinSize: 5,
      MaxGroupPreparedCapacity: 7,
      PoolState: "Stopped",
      InstanceReusePolicy: { ReuseOnScaleIn: true },
    });
  });

  it("repairs a warm pool that is not Stopped with ReuseOnScaleIn", async () => {
    const { warm } = steadyPool(aws);
    warm.warmPool = { MinSize: 3, MaxGroupPreparedCapacity: 5, PoolState: "Running" };
    await fleet.setCapacity(pool(), { warm: 2, burst: 1, warmPoolSize: 3 });
    expect(inputs.putWarmPool()).toEqual([
      {
        AutoScalingGroupName: WARM,
        MinSize: 3,
        MaxGroupPreparedCapacity: 5,
        PoolState: "Stopped",
        InstanceReusePolicy: { ReuseOnScaleIn: true },
      },
    ]);
  });

  it("keeps desired capacity within the group's MinSize and MaxSize", async () => {
    const { warm, burst } = steadyPool(aws);
    warm.min = 1;
    burst.max = 4;
    await fleet.setCapacity(pool(), { warm: 0, burst: 9, warmPoolSize: 3 });
    expect(inputs.setDesired()).toEqual([
      { AutoScalingGroupName: WARM, DesiredCapacity: 1, HonorCooldown: false },
      { AutoScalingGroupName: BURST, DesiredCapacity: 4, HonorCooldown: false },
    ]);
    expect(inputs.putWarmPool()).toEqual([
      expect.objectContaining({ MinSize: 3, MaxGroupPreparedCapacity: 4 }),
    ]);
  });

  it("leaves retries to the SDK clients: an error that reaches the fleet is passed on, once", async () => {
    // Throttling is retried inside the clients (fleet-aws-retry.test.ts); these mocks stand in for
    // the whole client, its retries included, so what they throw is what the retries gave up on.
    const { warm } = steadyPool(aws);
    warm.instances = [{ id: iid(1), state: "InService", protected: true }];
    const throttled = new EC2ServiceException({
      name: "RequestLimitExceeded",
      $fault: "client",
      $metadata: {},
    });
    aws.fail("DescribeInstances", throttled);
    await expect(fleet.observe(pool())).rejects.toBe(throttled);
    expect(ec2.commandCalls(DescribeInstancesCommand)).toHaveLength(1);

    const invalid = validation("New SetDesiredCapacity value 30 is above max value 20");
    aws.fail("SetDesiredCapacity", invalid);
    await expect(fleet.setCapacity(pool(), { warm: 3, burst: 1, warmPoolSize: 3 })).rejects.toBe(invalid);
    expect(inputs.setDesired()).toHaveLength(1);
  });
});

// ─── on-demand fallback ──────────────────────────────────────────────────────────────────────────

describe("on-demand fallback for the burst group", () => {
  const failed = (
    minutes: number,
    StatusMessage: string,
    StatusCode: ScalingActivityStatusCode = "Failed",
  ): Activity => ({
    ActivityId: randomUUID(),
    AutoScalingGroupName: BURST,
    Cause:
      "At 2026-03-02T11:00:00Z an instance was started in response to a difference between desired and actual capacity",
    StartTime: minutesAgo(minutes),
    StatusCode,
    StatusMessage,
    Description: "Launching a new EC2 instance.  Status Reason: …",
    Progress: 100,
  });
  const toOnDemand = (percent: number) => ({
    AutoScalingGroupName: BURST,
    MixedInstancesPolicy: { InstancesDistribution: { OnDemandPercentageAboveBaseCapacity: percent } },
  });

  it.each([
    "Could not launch Spot Instances. InsufficientInstanceCapacity - There is no Spot capacity available that matches your request. Launching EC2 instance failed.",
    "We currently do not have sufficient c6a.xlarge capacity in the Availability Zone you requested (us-east-1a). InsufficientInstanceCapacity",
    "Could not launch Spot Instances. UnfulfillableCapacity - Unable to fulfill capacity due to your request configuration.",
  ])("falls back to on-demand after a recent failure: %s", async (message) => {
    const { burst } = steadyPool(aws);
    aws.activities = [failed(4, message)];
    const calls = await fleet.setCapacity(pool(), { warm: 2, burst: 3, warmPoolSize: 3 });
    expect(inputs.activities()).toEqual([{ AutoScalingGroupName: BURST, MaxRecords: 50 }]);
    expect(inputs.update()).toEqual([toOnDemand(100)]);
    // The distribution changes before the group grows, so that the new instances are on-demand.
    expect(mutations()).toEqual(["UpdateAutoScalingGroup", "SetDesiredCapacity"]);
    expect(calls).toEqual([
      `UpdateAutoScalingGroup(group=${BURST}, onDemandPercent=100)`,
      `SetDesiredCapacity(group=${BURST}, desired=3)`,
    ]);
    expect(burst.onDemandPercent).toBe(100);
    expect((await fleet.observe(pool())).groups[1]?.onDemandFallback).toBe(true);
    // Still short: a second pass changes nothing.
    expect(await fleet.setCapacity(pool(), { warm: 2, burst: 3, warmPoolSize: 3 })).toEqual([]);
  });

  it("reverts to the configured spot share once the failures are older than the window", async () => {
    const { burst } = steadyPool(aws);
    burst.onDemandPercent = 100;
    const spotShare80 = pool({ burst: { spotShare: 0.8, onDemandFallback: true } });

    aws.activities = [failed(29, "InsufficientInstanceCapacity")];
    expect(await fleet.setCapacity(spotShare80, { warm: 2, burst: 1, warmPoolSize: 3 })).toEqual([]);
    expect(burst.onDemandPercent).toBe(100);

    aws.activities = [failed(31, "InsufficientInstanceCapacity")];
    expect(await fleet.setCapacity(spotShare80, { warm: 2, burst: 1, warmPoolSize: 3 })).toEqual([
      `UpdateAutoScalingGroup(group=${BURST}, onDemandPercent=20)`,
    ]);
    expect(inputs.update()).toEqual([toOnDemand(20)]);
    expect(burst.onDemandPercent).toBe(20);
  });

  it("reverts even while the burst group is empty", async () => {
    const { burst } = steadyPool(aws);
    burst.desired = 0;
    burst.onDemandPercent = 100;
    aws.activities = [failed(45, "InsufficientInstanceCapacity")];
    await fleet.setCapacity(pool(), { warm: 2, burst: 0, warmPoolSize: 3 });
    expect(inputs.update()).toEqual([toOnDemand(0)]);
  });

  it("ignores failures for other reasons, and activities that did not fail", async () => {
    steadyPool(aws);
    aws.activities = [
      failed(2, "The security group 'sg-123' does not exist. Launching EC2 instance failed."),
      failed(3, "InsufficientInstanceCapacity", "Successful"),
    ];
    expect(await fleet.setCapacity(pool(), { warm: 2, burst: 2, warmPoolSize: 3 })).toEqual([
      `SetDesiredCapacity(group=${BURST}, desired=2)`,
    ]);
    expect(inputs.update()).toEqual([]);
  });

  it("does not fall back when the pool turns the fallback off", async () => {
    steadyPool(aws);
    aws.activities = [failed(1, "InsufficientInstanceCapacity")];
    await fleet.setCapacity(pool({ burst: { spotShare: 1, onDemandFallback: false } }), {
      warm: 2,
      burst: 4,
      warmPoolSize: 3,
    });
    expect(inputs.activities()).toEqual([]);
    expect(inputs.update()).toEqual([]);
  });
});

// ─── lookup ──────────────────────────────────────────────────────────────────────────────────────

describe("lookup", () => {
  it("maps an instance to its pool and group", async () => {
    const { warm, burst } = steadyPool(aws);
    burst.instances = [
      {
        id: iid(0xc1),
        state: "InService",
        protected: true,
        spot: true,
        az: "us-east-1d",
        launchTime: minutesAgo(3),
      },
    ];
    warm.warmInstances = [
      { id: iid(0xb1), state: "Warmed:Stopped", protected: false, launchTime: minutesAgo(50) },
    ];

    expect(await fleet.lookup(iid(0xc1))).toEqual({
      id: iid(0xc1),
      pool: "x86",
      group: "burst",
      market: "spot",
      az: "us-east-1d",
      lifecycle: "in-service",
      protectedFromScaleIn: true,
      launchedAt: minutesAgo(3).toISOString(),
      instanceType: "c6a.xlarge",
    });
    expect(await fleet.lookup(iid(0xb1))).toMatchObject({
      pool: "x86",
      group: "warm",
      market: "on-demand",
      lifecycle: "stopped",
    });
    expect(autoScaling.commandCalls(DescribeAutoScalingInstancesCommand).map((c) => c.args[0].input)).toEqual(
      [{ InstanceIds: [iid(0xc1)] }, { InstanceIds: [iid(0xb1)] }],
    );
  });

  it("returns undefined for an instance of a foreign group, or of none", async () => {
    steadyPool(aws);
    aws.group({
      name: "someone-elses-asg",
      instances: [{ id: iid(0xf1), state: "InService", protected: false }],
    });
    expect(await fleet.lookup(iid(0xf1))).toBeUndefined();
    expect(await fleet.lookup(iid(0xf2))).toBeUndefined();
    // Only the instance in no group is asked of EC2: it could be of a warm group Hearth keeps.
    expect(ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input)).toEqual([
      { Filters: [{ Name: "instance-id", Values: [iid(0xf2)] }] },
    ]);
  });
});

// ─── handRunnerConfig / withdrawRunnerConfig ─────────────────────────────────────────────────────

describe("handRunnerConfig", () => {
  const secret = "eyJydW5uZXIiOiJzZWNyZXQtand0LWNvbmZpZyJ9";
  const handOver = { instanceId: iid(0xa1), slot: 1, runnerId: 4242, encodedJitConfig: secret };
  const name = `/hearth/runner-config/${iid(0xa1)}/1-4242`;
  const tags = [
    { Key: "hearth:app", Value: "hearth" },
    { Key: "hearth:stage", Value: "test" },
    { Key: "hearth:instance-arn", Value: `arn:aws:ec2:us-east-1:123456789012:instance/${iid(0xa1)}` },
  ];

  it("creates a SecureString <prefix>/<instance>/<slot>-<runner>, tagged with the instance's ARN, never overwriting", async () => {
    const handed = await fleet.handRunnerConfig(handOver);
    expect(ssm.commandCalls(PutParameterCommand).map((c) => c.args[0].input)).toEqual([
      { Name: name, Value: secret, Type: "SecureString", Tier: "Intelligent-Tiering", Tags: tags },
    ]);
    expect(handed).toEqual({
      parameter: name,
      calls: [`PutParameter(name=${name}, type=SecureString, tier=Intelligent-Tiering)`],
    });
    expect(JSON.stringify(handed)).not.toContain(secret);
    expect(aws.parameters.get(name)).toMatchObject({ value: secret, type: "SecureString", tier: "Standard" });
  });

  it("binds the config to the ARN in the fleet's own partition and region", async () => {
    const china = createAwsFleet({
      autoScaling: new AutoScalingClient({ region: "cn-north-1" }),
      ec2: new EC2Client({ region: "cn-north-1" }),
      ssm: new SSMClient({ region: "cn-north-1" }),
      groups: {},
      runnerConfigPrefix: "/hearth/cn/runners",
      stage: "cn",
      account: "210987654321",
      partition: "aws-cn",
    });
    await china.handRunnerConfig(handOver);
    expect(ssm.commandCalls(PutParameterCommand)[0]?.args[0].input.Tags).toContainEqual({
      Key: "hearth:instance-arn",
      Value: `arn:aws-cn:ec2:cn-north-1:210987654321:instance/${iid(0xa1)}`,
    });
  });

  it("puts a config larger than 4 KB in the advanced tier", async () => {
    const large = "A".repeat(5_000);
    const handed = await fleet.handRunnerConfig({ ...handOver, encodedJitConfig: large });
    expect(ssm.commandCalls(PutParameterCommand)[0]?.args[0].input).toMatchObject({
      Tier: "Advanced",
      Value: large,
    });
    expect(aws.parameters.get(name)?.tier).toBe("Advanced");
    expect(JSON.stringify(handed)).not.toContain(large);
  });

  it("ends a retried hand-over as the first one: the value written again, the tags put back", async () => {
    await fleet.handRunnerConfig(handOver);
    // Someone removed a tag in between: the retry restores it.
    delete aws.parameters.get(name)?.tags["hearth:instance-arn"];
    const handed = await fleet.handRunnerConfig(handOver);
    expect(handed.calls).toEqual([
      `PutParameter(name=${name}, type=SecureString, tier=Intelligent-Tiering, overwrite=true)`,
      `AddTagsToResource(parameter=${name}, instance=${iid(0xa1)})`,
    ]);
    // The retry's create is refused (ParameterAlreadyExists); the overwrite goes without Tags.
    const [, refused, retry] = ssm.commandCalls(PutParameterCommand).map((c) => c.args[0].input);
    expect(refused?.Overwrite).toBeUndefined();
    expect(retry).toMatchObject({ Overwrite: true });
    expect(retry?.Tags).toBeUndefined();
    expect(aws.parameters.get(name)).toMatchObject({
      version: 2,
      tags: Object.fromEntries(tags.map((t) => [t.Key, t.Value])),
    });
  });

  it("refuses a malformed hand-over before writing anything, without quoting the config", async () => {
    for (const bad of [
      { ...handOver, instanceId: "../../payments" },
      { ...handOver, slot: -1 },
      { ...handOver, slot: 1.5 },
      { ...handOver, runnerId: 0 },
      { ...handOver, encodedJitConfig: " " },
    ]) {
      const error = await fleet.handRunnerConfig(bad).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).toMatch(/runner config hand-over/);
      expect(error?.message).not.toContain(secret);
    }
    expect(ssm.commandCalls(PutParameterCommand)).toHaveLength(0);
  });

  it("keeps the value out of the error when SSM refuses it", async () => {
    const error = await fleet
      .handRunnerConfig({ ...handOver, encodedJitConfig: `${secret}${"B".repeat(9_000)}` })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(SSMServiceException);
    expect((error as Error).name).toBe("ValidationException");
    expect(String((error as Error).message)).toContain("[redacted]");
    expect(String((error as Error).message)).not.toContain(secret);
    expect(String((error as Error).stack)).not.toContain(secret);
    expect(aws.parameters.size).toBe(0);
  });
});

describe("the Parameter Store model", () => {
  it("refuses what AWS refuses: Tags with Overwrite, and an existing name without Overwrite", async () => {
    const client = new SSMClient({ region: "us-east-1" });
    const put = (input: Partial<ConstructorParameters<typeof PutParameterCommand>[0]>) =>
      client.send(
        new PutParameterCommand({ Name: "/hearth/test/x", Value: "v", Type: "SecureString", ...input }),
      );
    await expect(put({ Overwrite: true, Tags: [{ Key: "a", Value: "b" }] })).rejects.toThrow(
      /tags and overwrite can't be used together/,
    );
    await put({ Tags: [{ Key: "a", Value: "b" }] });
    await expect(put({})).rejects.toMatchObject({ name: "ParameterAlreadyExists" });
    await put({ Value: "w", Overwrite: true });
    expect(aws.parameters.get("/hearth/test/x")).toMatchObject({ value: "w", version: 2, tags: { a: "b" } });
    // An instance reads only what is tagged with its own ARN.
    await expect(
      aws
        .instanceSsm(iid(0xa1))
        .send(new GetParameterCommand({ Name: "/hearth/test/x", WithDecryption: true })),
    ).rejects.toMatchObject({ name: "AccessDeniedException" });
  });
});

describe("withdrawRunnerConfig", () => {
  const handOver = { instanceId: iid(0xa1), slot: 0, runnerId: 7, encodedJitConfig: "jit-secret" };

  it("deletes the parameter; one already gone is fine", async () => {
    const { parameter } = await fleet.handRunnerConfig(handOver);
    expect(await fleet.withdrawRunnerConfig(parameter)).toEqual([`DeleteParameter(name=${parameter})`]);
    expect(aws.parameters.has(parameter)).toBe(false);
    expect(await fleet.withdrawRunnerConfig(parameter)).toEqual([
      `DeleteParameter(name=${parameter}, found=false)`,
    ]);
    expect(ssm.commandCalls(DeleteParameterCommand).map((c) => c.args[0].input)).toEqual([
      { Name: parameter },
      { Name: parameter },
    ]);
  });

  it("refuses to delete anything that is not a runner config under its prefix", async () => {
    aws.parameters.set("/hearth/test/pools/x86/credentials", {
      value: "glrt-x",
      type: "SecureString",
      tier: "Standard",
      version: 1,
      tags: {},
    });
    for (const parameter of [
      "/hearth/test/pools/x86/credentials",
      "/hearth/runner-config/../test/pools/x86/credentials",
      `/hearth/runner-config/${iid(0xa1)}`,
      `/hearth/other/${iid(0xa1)}/0-7`,
    ]) {
      await expect(fleet.withdrawRunnerConfig(parameter)).rejects.toThrow(/not a runner config parameter/);
    }
    expect(ssm.commandCalls(DeleteParameterCommand)).toHaveLength(0);
  });

  it("passes on other failures (throttling past its retries, access denied)", async () => {
    aws.fail("DeleteParameter", ssmError("AccessDeniedException", "not authorized"));
    await expect(fleet.withdrawRunnerConfig(`/hearth/runner-config/${iid(0xa1)}/0-7`)).rejects.toThrow(
      /not authorized/,
    );
  });
});

// ─── a warm group Hearth keeps (warm.market: spot) ───────────────────────────────────────────────

describe("a spot warm group Hearth keeps through EC2", () => {
  const spotPool = (overrides: Partial<PoolConfig> = {}) =>
    pool({ warm: { warmPoolSize: 0, minReady: 0, market: "spot" }, ...overrides });
  const warmTags = {
    "hearth:app": "hearth",
    "hearth:stage": "test",
    "hearth:pool": "x86",
    "hearth:group": "warm",
  };
  const run = () => ec2.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
  const started = () =>
    ec2.commandCalls(StartInstancesCommand).flatMap((c) => c.args[0].input.InstanceIds ?? []);
  /** The EC2 calls that change something, in order. */
  const ec2Mutations = () =>
    ec2
      .calls()
      .map((call) => (call.args[0] as object).constructor.name.replace(/Command$/, ""))
      .filter((name) => !name.startsWith("Describe"));

  /** Only the burst group exists, with the launch template and subnets the warm group launches from. */
  function burstOnly() {
    return aws.group({
      name: BURST,
      max: 20,
      onDemandPercent: 0,
      subnets: ["subnet-a", "subnet-b", "subnet-c"],
    });
  }
  /** A stopped warm store, launched `minutes` ago on spot. */
  function store(minutes: number, extra: Partial<FakeEc2Instance> = {}): FakeEc2Instance {
    const instance = aws.runInstance({
      subnet: "subnet-a",
      instanceType: "c6a.xlarge",
      tags: warmTags,
      spot: true,
      requestId: `sir-${minutes}`,
    });
    aws.spotRequests.set(`sir-${minutes}`, {
      id: `sir-${minutes}`,
      type: "persistent",
      state: "active",
      instanceId: instance.id,
      tags: {},
      launch: { subnet: "subnet-a", instanceType: "c6a.xlarge", tags: warmTags },
    });
    Object.assign(instance, { ec2State: "stopped", launchTime: minutesAgo(minutes) }, extra);
    return instance;
  }

  it("launches persistent spot instances that stop on interruption, tagged, from the burst group's template, spread over its subnets", async () => {
    burstOnly();
    const calls = await fleet.setCapacity(spotPool(), { warm: 3, burst: 0, warmPoolSize: 0 });
    // No warm Auto Scaling group is looked up, resized or given a warm pool.
    expect(autoScaling.commandCalls(DescribeAutoScalingGroupsCommand).map((c) => c.args[0].input)).toEqual([
      { AutoScalingGroupNames: [BURST] },
    ]);
    expect(inputs.setDesired()).toEqual([]);
    expect(inputs.putWarmPool()).toEqual([]);
    const tags = (extra: Record<string, string> = {}) =>
      Object.entries({ ...warmTags, ...extra }).map(([Key, Value]) => ({ Key, Value }));
    expect(run()).toEqual(
      ["subnet-a", "subnet-b", "subnet-c"].map((SubnetId) => ({
        LaunchTemplate: { LaunchTemplateName: `${BURST}-lt`, Version: "$Latest" },
        InstanceType: "c6a.xlarge",
        MinCount: 1,
        MaxCount: 1,
        SubnetId,
        ClientToken: expect.stringMatching(/^[0-9a-f-]{36}$/),
        InstanceMarketOptions: {
          MarketType: "spot",
          // Not EC2's default of 7 days, after which a stopped store could not start again.
          SpotOptions: {
            SpotInstanceType: "persistent",
            InstanceInterruptionBehavior: "stop",
            ValidUntil: expect.any(Date),
          },
        },
        TagSpecifications: [
          {
            ResourceType: "instance",
            Tags: tags({ "hearth:spot-until": expect.any(String), Name: "hearth-test-x86" }),
          },
          { ResourceType: "volume", Tags: tags() },
          { ResourceType: "spot-instances-request", Tags: tags() },
        ],
      })),
    );
    expect(new Set(run().map((input) => input.ClientToken)).size).toBe(3);
    const validUntil = run()[0]?.InstanceMarketOptions?.SpotOptions?.ValidUntil as Date;
    expect(validUntil.getTime() - NOW.getTime()).toBe(365 * 86_400_000);
    expect(run()[0]?.TagSpecifications?.[0]?.Tags).toContainEqual({
      Key: "hearth:spot-until",
      Value: validUntil.toISOString(),
    });
    expect(calls).toEqual([
      "RunInstances(subnet=subnet-a, count=1, market=spot)",
      "RunInstances(subnet=subnet-b, count=1, market=spot)",
      "RunInstances(subnet=subnet-c, count=1, market=spot)",
    ]);
    expect(aws.ec2Instances.map((i) => [i.spot, i.tags["hearth:group"], i.az])).toEqual([
      [true, "warm", "us-east-1a"],
      [true, "warm", "us-east-1b"],
      [true, "warm", "us-east-1c"],
    ]);
    expect([...aws.spotRequests.values()].map((r) => r.type)).toEqual([
      "persistent",
      "persistent",
      "persistent",
    ]);
    // Launching counts as in service: the same target again changes nothing.
    expect(await fleet.setCapacity(spotPool(), { warm: 3, burst: 0, warmPoolSize: 0 })).toEqual([]);
  });

  it("observes the group from EC2's tags: counts, lifecycles, markets", async () => {
    burstOnly();
    const stopped = store(30);
    const running = store(20, { ec2State: "running" });
    const pending = aws.runInstance({
      subnet: "subnet-b",
      instanceType: "c6a.xlarge",
      tags: warmTags,
      spot: false,
    });
    const parking = store(1, { ec2State: "running", tags: { ...warmTags, "hearth:parking": "true" } });
    const stopping = store(10, { ec2State: "stopping" });
    store(40, { ec2State: "terminated" });
    // Another pool's, and an Auto Scaling group's instance with the same tags: not this group's.
    aws.runInstance({
      subnet: "subnet-a",
      instanceType: "c6a.xlarge",
      tags: { ...warmTags, "hearth:pool": "arm" },
      spot: true,
    });
    aws.group({
      name: "hearth-x86-warm-before",
      desired: 1,
      tags: warmTags,
      instances: [{ id: iid(0x77), state: "InService", protected: true }],
    });

    const { groups, instances } = await fleet.observe(spotPool());
    expect(groups[0]).toEqual({
      pool: "x86",
      group: "warm",
      name: WARM,
      desired: 2,
      max: 50,
      warmPoolSize: 1,
      onDemandFallback: false,
    });
    const lifecycles = Object.fromEntries(
      instances.map((i) => [i.id, [i.lifecycle, i.market, i.protectedFromScaleIn]]),
    );
    expect(lifecycles).toEqual({
      [stopped.id]: ["stopped", "spot", true],
      [running.id]: ["in-service", "spot", true],
      [pending.id]: ["pending", "on-demand", true],
      // Launched to be stopped: on its way into the warm pool, never in service.
      [parking.id]: ["stopping", "spot", true],
      [stopping.id]: ["stopping", "spot", true],
    });
    expect(instances.find((i) => i.id === running.id)).toMatchObject({
      group: "warm",
      az: "us-east-1a",
      launchedAt: minutesAgo(20).toISOString(),
      instanceType: "c6a.xlarge",
    });
  });

  it("starts the stopped stores in the planner's order, then the most recent, removing the parking tag first", async () => {
    burstOnly();
    const [old, recent, named, parked] = [store(300), store(5), store(100), store(50)];
    parked.tags["hearth:parking"] = "true";
    const calls = await fleet.setCapacity(spotPool(), {
      warm: 3,
      burst: 0,
      warmPoolSize: 1,
      resume: [named.id, parked.id],
    });
    expect(started()).toEqual([named.id, parked.id, recent.id]);
    expect(ec2.commandCalls(DeleteTagsCommand).map((c) => c.args[0].input)).toEqual([
      { Resources: [parked.id], Tags: [{ Key: "hearth:parking" }] },
    ]);
    expect(ec2Mutations()).toEqual(["StartInstances", "DeleteTags", "StartInstances", "StartInstances"]);
    expect(calls).toEqual([
      `StartInstances(instances=${named.id})`,
      `DeleteTags(instances=${parked.id}, tag=hearth:parking)`,
      `StartInstances(instances=${parked.id})`,
      `StartInstances(instances=${recent.id})`,
    ]);
    expect(parked.tags["hearth:parking"]).toBeUndefined();
    expect(old.ec2State).toBe("stopped");
    expect(run()).toEqual([]);
  });

  it("tries the next store when a start fails, then launches anew", async () => {
    burstOnly();
    const [first, second, third] = [store(5), store(10), store(15)];
    // The first was stopped by an interruption (only EC2 restarts it: not even tried, and observed
    // as such); the second has no capacity; the third was refused as only EC2 may start it.
    first.interrupted = true;
    const seen = (await fleet.observe(spotPool())).instances;
    expect(seen.find((i) => i.id === first.id)?.stoppedByInterruption).toBe(true);
    expect(seen.find((i) => i.id === second.id)?.stoppedByInterruption).toBeUndefined();
    aws.fail(
      "StartInstances",
      ec2Error("InsufficientInstanceCapacity", "no capacity"),
      ec2Error("IncorrectSpotRequestState", "only EC2 may start it"),
    );
    const calls = await fleet.setCapacity(spotPool(), {
      warm: 1,
      burst: 0,
      // As the planner sizes it: two stopped stores it may start (the interrupted one is none of the
      // warm pool), one of them to start.
      warmPoolSize: 1,
      resume: [first.id, second.id, third.id],
    });
    expect(calls).toEqual([
      `StartInstances(instances=${second.id}, failed=InsufficientInstanceCapacity)`,
      `StartInstances(instances=${third.id}, failed=IncorrectSpotRequestState)`,
      "RunInstances(subnet=subnet-b, count=1, market=spot)",
    ]);
    expect([first.ec2State, second.ec2State, third.ec2State]).toEqual(["stopped", "stopped", "stopped"]);
    // Other errors are no "try the next": they reach ScaleFleet.
    const denied = ec2Error("UnauthorizedOperation", "not allowed");
    aws.fail("StartInstances", denied);
    await expect(
      fleet.setCapacity(spotPool(), { warm: 2, burst: 0, warmPoolSize: 2, resume: [second.id] }),
    ).rejects.toBe(denied);
  });

  it("launches nothing in place of a store started for warmth that would not start", async () => {
    burstOnly();
    const [needed, extra, other] = [store(5), store(10), store(15)];
    const noCapacity = () => ec2Error("InsufficientInstanceCapacity", "no capacity");
    aws.fail("StartInstances", noCapacity(), noCapacity(), noCapacity());
    // Three to start, two of them for warmth only: none starts, one new instance stands in.
    const calls = await fleet.setCapacity(spotPool(), {
      warm: 3,
      burst: 0,
      warmPoolSize: 0,
      resume: [needed.id, extra.id, other.id],
      optional: 2,
    });
    expect(calls.filter((call) => call.startsWith("RunInstances"))).toEqual([
      "RunInstances(subnet=subnet-b, count=1, market=spot)",
    ]);
    expect(calls.filter((call) => call.startsWith("StartInstances"))).toHaveLength(3);
    // One of them started: it stands in for the needed one, and nothing is launched.
    aws.fail("StartInstances", noCapacity(), noCapacity());
    const later = await fleet.setCapacity(spotPool(), {
      warm: 4,
      burst: 0,
      warmPoolSize: 0,
      resume: [needed.id, extra.id, other.id],
      optional: 2,
    });
    expect(later).toEqual([
      `StartInstances(instances=${needed.id}, failed=InsufficientInstanceCapacity)`,
      `StartInstances(instances=${extra.id}, failed=InsufficientInstanceCapacity)`,
      `StartInstances(instances=${other.id})`,
    ]);
  });

  it("starts the stores for warmth several at once, after the needed ones one at a time", async () => {
    burstOnly();
    const stores = [store(5), store(10), store(15), store(20), store(25), store(30)];
    aws.overlap = true;
    const resume = stores.map((s) => s.id);
    const calls = await fleet.setCapacity(spotPool(), {
      warm: 5,
      burst: 0,
      warmPoolSize: 1,
      resume,
      optional: 4,
    });
    // The needed one alone, then the four for warmth together; the log keeps the plan's order.
    expect(calls).toEqual(resume.slice(0, 5).map((id) => `StartInstances(instances=${id})`));
    expect(aws.mostAtOnce.get("StartInstances")).toBe(4);
    expect(stores.map((s) => s.ec2State)).toEqual([
      "pending",
      "pending",
      "pending",
      "pending",
      "pending",
      "stopped",
    ]);
    // Among those started at once, one refused for capacity is no error, and nothing is launched
    // for it; another error reaches ScaleFleet once the others are logged.
    for (const s of stores) s.ec2State = "stopped";
    const denied = ec2Error("UnauthorizedOperation", "not allowed");
    aws.fail("StartInstances", ec2Error("InsufficientInstanceCapacity", "no capacity"));
    const refused = await fleet.setCapacity(spotPool(), {
      warm: 3,
      burst: 0,
      warmPoolSize: 3,
      resume,
      optional: 2,
    });
    expect(refused).toEqual([
      `StartInstances(instances=${stores[0]?.id}, failed=InsufficientInstanceCapacity)`,
      `StartInstances(instances=${stores[1]?.id})`,
      `StartInstances(instances=${stores[2]?.id})`,
      `StartInstances(instances=${stores[3]?.id})`,
    ]);
    for (const s of stores) s.ec2State = "stopped";
    aws.fail("StartInstances", denied);
    await expect(
      fleet.setCapacity(spotPool(), { warm: 3, burst: 0, warmPoolSize: 3, resume, optional: 3 }),
    ).rejects.toBe(denied);
  });

  it("parks a store in place of one an interruption stopped, and gives that one up an hour after its last start", async () => {
    burstOnly();
    const [waiting, old, healthy] = [store(30), store(61), store(90)];
    waiting.interrupted = true;
    old.interrupted = true;
    const { groups } = await fleet.observe(spotPool());
    expect(groups[0]?.warmPoolSize).toBe(1);
    // The planner keeps a warm pool of two: the healthy store, and a new one parked beside it.
    const calls = await fleet.setCapacity(spotPool(), { warm: 0, burst: 0, warmPoolSize: 2 });
    expect(calls).toEqual([
      `CancelSpotInstanceRequests(requests=${old.spotRequestId})`,
      `TerminateInstances(instances=${old.id})`,
      "RunInstances(subnet=subnet-b, count=1, market=spot, parking=true)",
    ]);
    expect([waiting.ec2State, old.ec2State, healthy.ec2State]).toEqual([
      "stopped",
      "shutting-down",
      "stopped",
    ]);
    // Within its hour, EC2 may start it again: it is kept, and never retired as an extra store.
    expect(await fleet.setCapacity(spotPool(), { warm: 0, burst: 0, warmPoolSize: 0 })).toEqual([
      expect.stringMatching(/^CancelSpotInstanceRequests/),
      expect.stringMatching(/^TerminateInstances/),
    ]);
    expect(waiting.ec2State).toBe("stopped");
  });

  it("retires a stopped store whose spot request ends within a day, and starts another", async () => {
    burstOnly();
    const soon = new Date(NOW.getTime() + 3600_000).toISOString();
    const later = new Date(NOW.getTime() + 200 * 86_400_000).toISOString();
    const ending = store(5, { tags: { ...warmTags, "hearth:spot-until": soon } });
    const lasting = store(10, { tags: { ...warmTags, "hearth:spot-until": later } });
    const calls = await fleet.setCapacity(spotPool(), {
      warm: 1,
      burst: 0,
      warmPoolSize: 0,
      resume: [ending.id, lasting.id],
    });
    expect(calls).toEqual([
      `CancelSpotInstanceRequests(requests=${ending.spotRequestId})`,
      `TerminateInstances(instances=${ending.id})`,
      `StartInstances(instances=${lasting.id})`,
    ]);
  });

  it("retires no store in place of a named one that could not start", async () => {
    burstOnly();
    const [named, other, third] = [store(5), store(10), store(15)];
    const noCapacity = () => ec2Error("InsufficientInstanceCapacity", "no capacity");
    aws.fail("StartInstances", noCapacity(), noCapacity(), noCapacity());
    // The plan counts the named store as started: two stores stay stopped, by its count.
    const calls = await fleet.setCapacity(spotPool(), {
      warm: 1,
      burst: 0,
      warmPoolSize: 2,
      resume: [named.id],
    });
    expect(calls.filter((call) => call.startsWith("RunInstances"))).toHaveLength(1);
    expect(ec2Mutations()).not.toContain("CancelSpotInstanceRequests");
    expect(ec2Mutations()).not.toContain("TerminateInstances");
    expect([named, other, third].map((i) => i.ec2State)).toEqual(["stopped", "stopped", "stopped"]);
  });

  it("retires no store in place of a named one it had no need to start", async () => {
    burstOnly();
    // In service already as many as the plan asks for: an instance the plan no longer counts (it
    // drains, about to be detached) still counts here, so the named store does not start. The plan
    // counted it as started: its warm pool of two is the other two.
    const draining = store(20, { ec2State: "running" });
    const [named, other, third] = [store(5), store(10), store(15)];
    const calls = await fleet.setCapacity(spotPool(), {
      warm: 1,
      burst: 0,
      warmPoolSize: 2,
      resume: [named.id],
      resumes: 1,
    });
    expect(calls).toEqual([]);
    expect([draining, named, other, third].map((i) => i.ec2State)).toEqual([
      "running",
      "stopped",
      "stopped",
      "stopped",
    ]);
  });

  it("launches retried jobs' capacity on-demand first, then resumes", async () => {
    burstOnly();
    const stopped = store(5);
    const calls = await fleet.setCapacity(spotPool(), {
      warm: 3,
      burst: 0,
      warmPoolSize: 0,
      onDemand: 2,
      resume: [stopped.id],
    });
    expect(run()[0]).toMatchObject({ MinCount: 1, SubnetId: "subnet-b" });
    expect(run().map((input) => input.InstanceMarketOptions)).toEqual([undefined, undefined]);
    // No spot request to tag for an on-demand launch.
    expect(run()[0]?.TagSpecifications?.map((t) => t.ResourceType)).toEqual(["instance", "volume"]);
    expect(calls).toEqual([
      "RunInstances(subnet=subnet-b, count=1, market=on-demand)",
      "RunInstances(subnet=subnet-c, count=1, market=on-demand)",
      `StartInstances(instances=${stopped.id})`,
    ]);
    expect(aws.ec2Instances.filter((i) => !i.spot)).toHaveLength(2);
  });

  it("falls back to on-demand when spot is short, and reports it for the fallback window", async () => {
    burstOnly();
    aws.spotCapacity = 0;
    const calls = await fleet.setCapacity(spotPool(), { warm: 1, burst: 0, warmPoolSize: 0 });
    expect(calls).toEqual([
      "RunInstances(subnet=subnet-a, count=1, market=spot, failed=InsufficientInstanceCapacity)",
      "RunInstances(subnet=subnet-a, count=1, market=on-demand)",
    ]);
    const [standIn] = aws.ec2Instances;
    expect(standIn).toMatchObject({ spot: false, tags: { "hearth:spot-fallback": NOW.toISOString() } });
    expect((await fleet.observe(spotPool())).groups[0]?.onDemandFallback).toBe(true);

    // Within the window, more capacity goes on-demand at once, keeping the first shortage's time.
    aws.spotCapacity = 10;
    await fleet.setCapacity(spotPool(), { warm: 2, burst: 0, warmPoolSize: 0 });
    expect(run().map((input) => input.InstanceMarketOptions?.MarketType ?? "on-demand")).toEqual([
      "spot",
      "on-demand",
      "on-demand",
    ]);
    expect(aws.ec2Instances[1]?.tags["hearth:spot-fallback"]).toBe(NOW.toISOString());

    // Once the shortage is older than the window: spot again, and no fallback reported.
    for (const i of aws.ec2Instances) i.tags["hearth:spot-fallback"] = minutesAgo(31).toISOString();
    expect((await fleet.observe(spotPool())).groups[0]?.onDemandFallback).toBe(false);
    await fleet.setCapacity(spotPool(), { warm: 3, burst: 0, warmPoolSize: 0 });
    expect(run().at(-1)?.InstanceMarketOptions?.MarketType).toBe("spot");
  });

  it("reports no call when spot is too short to park anything: nothing changed, the run may settle", async () => {
    burstOnly();
    aws.spotCapacity = 0;
    expect(await fleet.setCapacity(spotPool(), { warm: 0, burst: 0, warmPoolSize: 2 })).toEqual([]);
    expect(run()).toHaveLength(1);
    expect(aws.ec2Instances).toEqual([]);
    // Nothing parks on-demand: a store started later would run at the on-demand price.
    expect((await fleet.observe(spotPool())).groups[0]).toMatchObject({
      warmPoolSize: 0,
      onDemandFallback: false,
    });
  });

  it("grows the warm pool by parking: launched spot, stopped once running, started into service without the tag", async () => {
    burstOnly();
    const target = { warm: 0, burst: 0, warmPoolSize: 2 };
    expect(await fleet.setCapacity(spotPool(), target)).toEqual([
      "RunInstances(subnet=subnet-a, count=1, market=spot, parking=true)",
      "RunInstances(subnet=subnet-b, count=1, market=spot, parking=true)",
    ]);
    expect(run()[0]?.TagSpecifications?.[0]?.Tags).toContainEqual({ Key: "hearth:parking", Value: "true" });
    // Still pending: on its way into the pool, counted there, nothing more launched.
    let observed = await fleet.observe(spotPool());
    expect(observed.instances.map((i) => i.lifecycle)).toEqual(["stopping", "stopping"]);
    expect(observed.groups[0]?.desired).toBe(0);
    expect(await fleet.setCapacity(spotPool(), target)).toEqual([]);

    aws.step(); // EC2: running.
    const ids = aws.ec2Instances.map((i) => i.id);
    expect(await fleet.setCapacity(spotPool(), target)).toEqual([
      `StopInstances(instances=${ids.join("+")})`,
    ]);
    aws.step(); // EC2: stopped.
    observed = await fleet.observe(spotPool());
    expect(observed.instances.map((i) => i.lifecycle)).toEqual(["stopped", "stopped"]);
    expect(observed.groups[0]?.warmPoolSize).toBe(2);

    const [first] = ids;
    expect(
      await fleet.setCapacity(spotPool(), { ...target, warm: 1, warmPoolSize: 1, resume: [first as string] }),
    ).toEqual([`DeleteTags(instances=${first}, tag=hearth:parking)`, `StartInstances(instances=${first})`]);
    aws.step();
    observed = await fleet.observe(spotPool());
    expect(observed.instances.find((i) => i.id === first)?.lifecycle).toBe("in-service");
    expect(observed.groups[0]).toMatchObject({ desired: 1, warmPoolSize: 1 });
  });

  it("shrinks the warm pool: the oldest extra stores not named to resume go, request cancelled first", async () => {
    burstOnly();
    const [oldest, older, named, recent] = [store(400), store(300), store(500), store(5)];
    // A store that never served (still tagged for parking) goes before any other.
    const unused = store(1, { tags: { ...warmTags, "hearth:parking": "true" } });
    const calls = await fleet.setCapacity(spotPool(), {
      warm: 0,
      burst: 0,
      warmPoolSize: 1,
      resume: [named.id],
    });
    expect(ec2Mutations()).toEqual(["CancelSpotInstanceRequests", "TerminateInstances"]);
    const gone = [unused, oldest, older, recent];
    expect(ec2.commandCalls(CancelSpotInstanceRequestsCommand)[0]?.args[0].input).toEqual({
      SpotInstanceRequestIds: gone.map((i) => i.spotRequestId),
    });
    expect(calls).toEqual([
      `CancelSpotInstanceRequests(requests=${gone.map((i) => i.spotRequestId).join("+")})`,
      `TerminateInstances(instances=${gone.map((i) => i.id).join("+")})`,
    ]);
    // EC2 acts: the terminated instances stay gone (no persistent request relaunches them).
    aws.settle();
    const { instances, groups } = await fleet.observe(spotPool());
    expect(instances.map((i) => i.id)).toEqual([named.id]);
    expect(groups[0]?.warmPoolSize).toBe(1);
  });

  it("never stops an instance in service from setCapacity: only release does, after stillIdle", async () => {
    burstOnly();
    const [idle, busy] = [store(20, { ec2State: "running" }), store(30, { ec2State: "running" })];
    // Both in subnet-a: the new ones go where the group has fewest.
    expect(await fleet.setCapacity(spotPool(), { warm: 0, burst: 0, warmPoolSize: 2 })).toEqual([
      "RunInstances(subnet=subnet-b, count=1, market=spot, parking=true)",
      "RunInstances(subnet=subnet-c, count=1, market=spot, parking=true)",
    ]);
    expect([idle.ec2State, busy.ec2State]).toEqual(["running", "running"]);

    const asked: string[] = [];
    const result = await fleet.release(spotPool(), [idle.id, busy.id, iid(0xdead)], async (id) => {
      asked.push(id);
      return id === idle.id;
    });
    expect(result).toEqual({
      released: [idle.id],
      refused: [busy.id, iid(0xdead)],
      calls: [`StopInstances(instances=${idle.id})`],
    });
    expect(asked).toEqual([idle.id, busy.id]);
    expect(inputs.setProtection()).toEqual([]);
    expect([idle.ec2State, busy.ec2State]).toEqual(["stopping", "running"]);
  });

  it("releases an on-demand instance of the group by terminating it: the group keeps spot stores only", async () => {
    burstOnly();
    const spotStore = store(20, { ec2State: "running" });
    const onDemand = aws.runInstance({
      subnet: "subnet-b",
      instanceType: "c6a.xlarge",
      tags: warmTags,
      spot: false,
    });
    onDemand.ec2State = "running";
    const result = await fleet.release(spotPool(), [spotStore.id, onDemand.id], async () => true);
    expect(result.released).toEqual([spotStore.id, onDemand.id]);
    expect(result.calls).toEqual([
      `StopInstances(instances=${spotStore.id})`,
      `TerminateInstances(instances=${onDemand.id})`,
    ]);
    expect(ec2.commandCalls(CancelSpotInstanceRequestsCommand)).toEqual([]);
  });

  it("looks up, detaches (nothing to do) and terminates an instance of the group, its request cancelled first", async () => {
    burstOnly();
    const instance = store(20, { ec2State: "running" });
    expect(await fleet.lookup(instance.id)).toMatchObject({
      id: instance.id,
      pool: "x86",
      group: "warm",
      market: "spot",
      lifecycle: "in-service",
    });
    expect(await fleet.detach(spotPool(), instance.id)).toEqual([]);
    expect(await fleet.terminate(instance.id)).toEqual([
      `CancelSpotInstanceRequests(requests=${instance.spotRequestId})`,
      `TerminateInstances(instances=${instance.id})`,
    ]);
    expect(ec2Mutations()).toEqual(["CancelSpotInstanceRequests", "TerminateInstances"]);
    aws.settle();
    // Gone for good: a standing persistent request would have launched a new instance.
    expect(aws.ec2Instances.filter((i) => i.ec2State !== "terminated")).toEqual([]);
    expect(await fleet.lookup(instance.id)).toBeUndefined();
  });

  it("never takes an Auto Scaling group's instance for one of its own, detached or not", async () => {
    burstOnly();
    // An on-demand warm group's instance carries the same tags, and Auto Scaling's own.
    aws.group({
      name: WARM,
      desired: 1,
      tags: warmTags,
      instances: [{ id: iid(0x77), state: "InService", protected: true }],
    });
    await fleet.detach(pool(), iid(0x77));
    expect(aws.loose.map((i) => i.id)).toEqual([iid(0x77)]);
    expect(await fleet.lookup(iid(0x77))).toBeUndefined();
    expect((await fleet.observe(spotPool())).instances.map((i) => i.id)).toEqual([]);
    expect(await fleet.terminate(iid(0x77))).toEqual([`TerminateInstances(instances=${iid(0x77)})`]);
    expect(ec2.commandCalls(CancelSpotInstanceRequestsCommand)).toEqual([]);
  });

  it("refuses to launch without the burst group's subnets or launch template, with a clear error", async () => {
    const burst = aws.group({ name: BURST, max: 20, onDemandPercent: 0 });
    await expect(fleet.setCapacity(spotPool(), { warm: 1, burst: 0, warmPoolSize: 0 })).rejects.toThrow(
      `burst group ${BURST} (pool x86) has no subnets`,
    );
    burst.onDemandPercent = undefined;
    burst.subnets = ["subnet-a"];
    await expect(fleet.setCapacity(spotPool(), { warm: 1, burst: 0, warmPoolSize: 0 })).rejects.toThrow(
      `burst group ${BURST} (pool x86) has no launch template`,
    );
    expect(run()).toEqual([]);
    // Nothing to launch: nothing asked of them.
    expect(await fleet.setCapacity(spotPool(), { warm: 0, burst: 0, warmPoolSize: 0 })).toEqual([]);
  });

  it("keeps the on-demand warm group an Auto Scaling group: no EC2 launches", async () => {
    steadyPool(aws);
    await fleet.setCapacity(pool(), { warm: 4, burst: 0, warmPoolSize: 6, resume: [iid(1)], onDemand: 2 });
    expect(inputs.setDesired()[0]).toEqual({
      AutoScalingGroupName: WARM,
      DesiredCapacity: 4,
      HonorCooldown: false,
    });
    expect(run()).toEqual([]);
    expect(started()).toEqual([]);
  });
});
