import { randomUUID } from "node:crypto";
import { AutoScalingClient, DetachInstancesCommand } from "@aws-sdk/client-auto-scaling";
import { EC2Client, TerminateInstancesCommand } from "@aws-sdk/client-ec2";
import { SSMClient } from "@aws-sdk/client-ssm";
import { createAwsFleet } from "@hearth/core/fleet-aws";
import type { Heartbeat } from "@hearth/core/instances";
import { interruptionEvent } from "@hearth/core/interruptions";
import { localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import { defaultPools } from "@hearth/core/pools";
import { ensureTable } from "@hearth/core/table";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FakeAws, installFakeAws, mockedClients } from "../../core/test/support/auto-scaling-fake";
import { composeHearth, type Hearth } from "../src/hearth";
import { acceptInterruptionEvents, handleInterruptionTasks } from "../src/interruptions";
import { createLocalHandleInterruption, type LocalHandleInterruption } from "../src/local/interruptions";
import { silentLogger } from "../src/log";

/**
 * The HandleInterruption definition (the one infra deploys) run by aws-local-stepfunctions with its
 * task functions, over the AWS fleet driver against the stateful model of Auto Scaling and EC2, and
 * the table in embedded DynamoDB: events go in as EventBridge delivers them.
 */

const clients = mockedClients();
const [pool] = defaultPools;
if (!pool) throw new Error("no pool");
const WARM = "hearth-test-x86_64-warm";
const BURST = "hearth-test-x86_64-burst";

let embedded: Awaited<ReturnType<typeof startEmbeddedDynamo>> | undefined;
beforeAll(async () => {
  embedded = await startEmbeddedDynamo();
});
afterAll(async () => {
  await embedded?.close();
});

let aws: FakeAws;
let hearth: Hearth;
let machine: LocalHandleInterruption;
let started: string[];
let spot: [string, string];

beforeEach(async () => {
  aws = new FakeAws();
  aws.group({ name: WARM, max: 10 });
  aws.group({ name: BURST, max: 10, desired: 2, onDemandPercent: 0 });
  installFakeAws(aws, clients);
  aws.settle();
  spot = aws.get(BURST).instances.map((i) => i.id) as [string, string];
  const fleet = createAwsFleet({
    autoScaling: new AutoScalingClient({ region: "us-east-1" }),
    ec2: new EC2Client({ region: "us-east-1" }),
    ssm: new SSMClient({ region: "us-east-1" }),
    groups: { [pool.name]: { warm: WARM, burst: BURST } },
    runnerConfigPrefix: "/hearth/test/runners",
    stage: "test",
    account: "123456789012",
    partition: "aws",
  });
  const { client, documents } = localDynamoClients(embedded?.endpoint ?? "");
  const tableName = `interruption-${randomUUID()}`;
  await ensureTable(client, tableName);
  started = [];
  hearth = composeHearth({
    store: () => ({ client: documents, tableName, now: () => new Date() }),
    pools: () => [pool],
    fleet: () => fleet,
    gitlab: () => undefined,
    startScaleFleet: () => async (p) => {
      started.push(p);
    },
    holder: () => randomUUID(),
    background: (task) => task(),
    log: silentLogger,
    now: () => new Date(),
  });
  for (const id of spot) {
    const member = await fleet.lookup(id);
    if (member) await hearth.registry().register({ ...member, slots: 2 });
  }
  machine = createLocalHandleInterruption({
    tasks: handleInterruptionTasks(hearth.interruptions, silentLogger),
    log: silentLogger,
    waitMs: 5,
  });
});

const event = (kind: "warning" | "rebalance", instanceId: string) =>
  interruptionEvent({
    kind,
    instanceId,
    time: new Date().toISOString(),
    id: randomUUID(),
    account: "123456789012",
  });
const beat = (instanceId: string, runningJobs: Heartbeat["runningJobs"] = []): Heartbeat => ({
  instanceId,
  runner: "ready",
  slots: 2,
  runningJobs,
  cacheKeys: [],
  storeBytes: null,
  interruption: null,
});
const detachCalls = () =>
  clients.autoScaling.commandCalls(DetachInstancesCommand).map((c) => c.args[0].input);
const terminateCalls = () => clients.ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input);
const until = async (done: () => Promise<boolean> | boolean, what: string) => {
  for (let i = 0; i < 400; i++) {
    if (await done()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting: ${what}`);
};

describe("HandleInterruption under aws-local-stepfunctions, over the AWS driver", () => {
  it("a warning detaches once (the group replaces it once), asks for a run, and ends when EC2 has reclaimed it", async () => {
    const [atRisk, survivor] = spot;
    const send = (body: unknown) => acceptInterruptionEvents(body, (notice) => machine.start(notice));
    expect(await send([event("warning", atRisk), event("rebalance", atRisk)])).toEqual([
      { instanceId: atRisk, kind: "warning", outcome: "started" },
      { instanceId: atRisk, kind: "rebalance", outcome: "started" },
    ]);
    // EventBridge delivers again: the execution's name makes it a no-op.
    expect(await send(event("warning", atRisk))).toEqual([
      { instanceId: atRisk, kind: "warning", outcome: "already-started" },
    ]);
    await until(
      async () => (await hearth.registry().get(atRisk))?.interruption?.action === "terminate",
      "drained",
    );
    await until(() => detachCalls().length > 0, "detached");
    expect(detachCalls()).toEqual([
      { AutoScalingGroupName: BURST, InstanceIds: [atRisk], ShouldDecrementDesiredCapacity: false },
    ]);
    aws.settle();
    const burst = aws.get(BURST);
    expect(burst.desired).toBe(2);
    expect(burst.instances.map((i) => i.id)).toContain(survivor);
    expect(burst.instances.map((i) => i.id)).not.toContain(atRisk);
    expect(burst.instances.filter((i) => i.state === "InService")).toHaveLength(2);
    // Asked right after the detach, within the same step.
    await until(() => started.length > 0, "a ScaleFleet run asked");
    expect(started).toEqual([pool.name]);

    // The deadline: EC2 reclaims the detached instance, and no group replaces it again.
    aws.interrupt(atRisk);
    aws.settle();
    await machine.idle();
    expect(await hearth.registry().get(atRisk)).toBeUndefined();
    expect(detachCalls()).toHaveLength(1);
    expect(terminateCalls()).toEqual([]);
    expect(aws.get(BURST).instances).toHaveLength(2);
    const reasons = (await hearth.journal().latest(20)).map((entry) => entry.reason);
    expect(reasons).toContainEqual(
      expect.stringMatching(new RegExp(`${atRisk} got a spot interruption warning`)),
    );
  });

  it("a rebalance terminates the instance only once it has drained and is idle", async () => {
    const [atRisk] = spot;
    await acceptInterruptionEvents(event("rebalance", atRisk), (notice) => machine.start(notice));
    await until(() => detachCalls().length > 0, "detached");
    // Busy: heartbeats report a running job, for a good while of Settle's rounds.
    for (let i = 0; i < 20; i++) {
      await hearth.registry().heartbeat(atRisk, beat(atRisk, [{ source: "gitlab", id: "9" }]));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(terminateCalls()).toEqual([]);
    expect(await hearth.interruptions.fleet.exists(atRisk)).toBe(true);
    // Its job done, it drains idle: terminated.
    await until(async () => {
      await hearth.registry().heartbeat(atRisk, beat(atRisk));
      return terminateCalls().length > 0;
    }, "terminated");
    await machine.idle();
    expect(terminateCalls()).toEqual([{ InstanceIds: [atRisk] }]);
    aws.settle();
    expect(await hearth.interruptions.fleet.exists(atRisk)).toBe(false);
    // Nothing replaced it a second time.
    expect(aws.get(BURST).instances).toHaveLength(2);
  });

  it("an unknown instance's event ends at Claim, journaled", async () => {
    await acceptInterruptionEvents(event("warning", "i-0000000000000beef"), (notice) =>
      machine.start(notice),
    );
    await machine.idle();
    expect(detachCalls()).toEqual([]);
    expect((await hearth.journal().latest(5)).map((e) => e.reason)).toEqual([
      "ignored a spot warning for i-0000000000000beef: not a Hearth instance",
    ]);
  });
});
