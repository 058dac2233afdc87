import { randomUUID } from "node:crypto";
import { SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import type { Heartbeat } from "@hearth/core/instances";
import { interruptionEvent } from "@hearth/core/interruptions";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { functionPolicy } from "../../../infra/lib/iam";
import { groupNames } from "../../../infra/lib/names";
import { FakeAws, installFakeAws, mockedClients } from "../../core/test/support/auto-scaling-fake";
import { createInterruptionHandler } from "../src/aws/handlers/interruption";
import type { LinkName } from "../src/aws/links";
import { createAwsRuntime } from "../src/aws/runtime";
import {
  type AwsTestStage,
  allLinks,
  captureStdout,
  forbidden,
  INTERRUPTION_MACHINE_ARN,
  lambdaContext,
  mockedCalls,
  recordDynamoCalls,
  STAGE,
  STATE_MACHINE_ARN,
  scope,
  startAwsTestStage,
  tableArn,
} from "./support/aws";

/**
 * HandleInterruption in AWS: the heartbeat's StartExecution (named by instance and notice, a repeat
 * harmless), and the one task Lambda, which follows the execution's state from step to step.
 */

const sfn = mockClient(SFNClient);
const clients = mockedClients();
let stage: AwsTestStage;
beforeAll(async () => {
  stage = await startAwsTestStage();
  stage.setEnvironment({});
});
afterAll(() => stage.close());

const runtime = () => createAwsRuntime({ read: (name) => allLinks(stage.tableName)[name as LinkName] });

describe("HandleInterruption's start from a heartbeat", () => {
  it("names the execution by instance and notice; a repeat is already started", async () => {
    sfn.reset();
    const exists = Object.assign(new Error("Execution Already Exists"), { name: "ExecutionAlreadyExists" });
    sfn
      .on(StartExecutionCommand)
      .resolvesOnce({ executionArn: "arn:x", startDate: new Date() })
      .rejectsOnce(exists)
      .rejectsOnce(new Error("AccessDenied"));
    const start = runtime().startHandleInterruption();
    const notice = {
      kind: "warning" as const,
      instanceId: "i-0123456789abcdef0",
      action: "terminate" as const,
      at: "2026-12-01T10:00:00.000Z",
      deadline: "2026-12-01T10:02:00.000Z",
      source: "agent" as const,
    };
    expect(await start(notice)).toBe("started");
    expect(await start(notice)).toBe("already-started");
    await expect(start(notice)).rejects.toThrow(/AccessDenied/);
    const [first] = sfn.commandCalls(StartExecutionCommand).map((call) => call.args[0].input);
    expect(first).toEqual({
      stateMachineArn: INTERRUPTION_MACHINE_ARN,
      name: "i-0123456789abcdef0-warning",
      input: JSON.stringify({ notice }),
    });
  });
});

describe("the interruption task Lambda", () => {
  it("claims, drains (counting the interruption once), settles and records a failure, by the state it is given", async () => {
    sfn.reset();
    sfn.on(StartExecutionCommand).resolves({ executionArn: "arn:x", startDate: new Date() });
    const names = groupNames(STAGE, "x86_64");
    const aws = new FakeAws();
    aws.group({ name: names.warm, max: 10 });
    aws.group({ name: names.burst, max: 10, desired: 1, onDemandPercent: 0 });
    installFakeAws(aws, clients);
    aws.settle();
    const [instance] = aws.get(names.burst).instances;
    if (!instance) throw new Error("no instance");
    const handler = createInterruptionHandler(runtime());
    const context = lambdaContext("interruption") as never;
    // EventBridge's input: the event itself.
    const event = interruptionEvent({
      kind: "warning",
      instanceId: instance.id,
      time: new Date().toISOString(),
      id: randomUUID(),
      account: "123456789012",
    });
    const claim = await handler(event, context);
    expect(claim).toMatchObject({ handled: true, pool: "x86_64", previous: null });
    const drained = await captureStdout(() => handler({ ...event, claim }, context));
    expect(drained.result).toMatchObject({ pool: "x86_64", done: false });
    const counted = drained.lines.filter((line) => line.includes('"Interruptions"'));
    expect(counted).toHaveLength(1);
    expect(aws.get(names.burst).instances.map((i) => i.id)).not.toContain(instance.id);
    // Not gone yet; then EC2 reclaims it.
    expect(await handler({ ...event, claim, progress: drained.result }, context)).toMatchObject({
      done: false,
    });
    aws.interrupt(instance.id);
    aws.settle();
    expect(await handler({ ...event, claim, progress: drained.result }, context)).toMatchObject({
      done: true,
      outcome: "gone",
    });
    expect(await handler({ ...event, claim, error: { Error: "Hearth.Boom", Cause: "x" } }, context)).toEqual(
      {},
    );
    // The same event again (EventBridge retries): not handled twice.
    expect(await handler(event, context)).toMatchObject({ handled: false, reason: "repeated" });
  });

  it("makes only AWS calls its IAM policy allows, terminating a drained instance after a rebalance included", async () => {
    sfn.reset();
    sfn.on(StartExecutionCommand).resolves({ executionArn: "arn:x", startDate: new Date() });
    const names = groupNames(STAGE, "x86_64");
    const aws = new FakeAws({ seed: 2 });
    aws.group({ name: names.warm, max: 10 });
    aws.group({ name: names.burst, max: 10, desired: 2, onDemandPercent: 0 });
    installFakeAws(aws, clients);
    aws.settle();
    // Not the instance the test above claimed (the model's ids repeat from one model to the next).
    const [, instance] = aws.get(names.burst).instances;
    if (!instance) throw new Error("no instance");
    const dynamo = recordDynamoCalls(stage.tableName);
    try {
      const aws_ = runtime();
      const handler = createInterruptionHandler(aws_);
      const context = lambdaContext("interruption") as never;
      const event = interruptionEvent({
        kind: "rebalance",
        instanceId: instance.id,
        time: new Date().toISOString(),
        id: randomUUID(),
        account: "123456789012",
      });
      const claim = await handler(event, context);
      expect(claim).toMatchObject({ handled: true });
      let progress = (await captureStdout(() => handler({ ...event, claim }, context))).result;
      const beat: Heartbeat = {
        instanceId: instance.id,
        runner: "ready",
        slots: 2,
        runningJobs: [],
        cacheKeys: [],
        storeBytes: null,
        interruption: null,
      };
      for (let i = 0; i < 3 && !(progress as { done: boolean }).done; i++) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        await aws_.hearth.registry().heartbeat(instance.id, beat);
        progress = await handler({ ...event, claim, progress }, context);
      }
      expect(progress).toMatchObject({ done: true, outcome: "terminated" });
      const calls = [
        ...dynamo.calls,
        ...mockedCalls("autoscaling", clients.autoScaling),
        ...mockedCalls("ec2", clients.ec2),
        ...mockedCalls("states", sfn),
      ];
      const actions = new Set(calls.map((call) => call.action));
      // (ScaleFleet's StartExecution: the test above left the pool's run holding its lease.)
      for (const action of ["autoscaling:DetachInstances", "ec2:TerminateInstances", "ec2:DescribeInstances"])
        expect(actions).toContain(action);
      const policy = functionPolicy("interruption", scope, {
        tableArn: tableArn(stage.tableName),
        stateMachineArn: STATE_MACHINE_ARN,
        pools: ["x86_64", "aarch64"],
      });
      expect(forbidden(policy, calls)).toEqual([]);
      // The check can fail: the API's policy does not allow these.
      const api = functionPolicy("api", scope, {
        tableArn: tableArn(stage.tableName),
        stateMachineArn: STATE_MACHINE_ARN,
        interruptionMachineArn: INTERRUPTION_MACHINE_ARN,
        pools: ["x86_64", "aarch64"],
      });
      expect(forbidden(api, calls).map((call) => call.action)).toEqual(
        expect.arrayContaining(["autoscaling:DetachInstances", "ec2:TerminateInstances"]),
      );
    } finally {
      dynamo.restore();
    }
  });
});
