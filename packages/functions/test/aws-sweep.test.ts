import { SFNClient } from "@aws-sdk/client-sfn";
import { BOOT_GRACE_MS } from "@hearth/core/fleet";
import type { SweepAction, SweepActOutcome, SweepSurvey } from "@hearth/core/sweep";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { functionPolicy } from "../../../infra/lib/iam";
import { groupNames, stageTags, tagKeys } from "../../../infra/lib/names";
import { FakeAws, installFakeAws, mockedClients } from "../../core/test/support/auto-scaling-fake";
import { createSweepHandler } from "../src/aws/handlers/sweep";
import type { LinkName } from "../src/aws/links";
import { createAwsRuntime } from "../src/aws/runtime";
import {
  type AwsTestStage,
  allLinks,
  captureStdout,
  forbidden,
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
 * The sweep's task Lambda in AWS: one function that follows the state it is given (Survey, Act on a
 * Map item, Finish, RecordFailure), over the AWS fleet driver against the Auto Scaling and EC2 model,
 * making only the calls its IAM policy allows: an orphan instance is detached and terminated.
 */

const sfn = mockClient(SFNClient);
const clients = mockedClients();
let stage: AwsTestStage;
beforeAll(async () => {
  stage = await startAwsTestStage();
  stage.setEnvironment({});
});
afterAll(() => stage.close());

describe("the sweep task Lambda", () => {
  it("marks a silent instance, terminates it at the next sweep, and calls only what its policy allows", async () => {
    sfn.reset();
    let offset = 0;
    const now = () => new Date(Date.now() + offset);
    const names = groupNames(STAGE, "x86_64");
    const aws = new FakeAws({ now });
    const tags = { ...stageTags(STAGE), [tagKeys.pool]: "x86_64" };
    aws.group({ name: names.warm, max: 10, desired: 1, tags: { ...tags, [tagKeys.group]: "warm" } });
    aws.group({ name: names.burst, max: 10, tags: { ...tags, [tagKeys.group]: "burst" } });
    for (const pool of ["aarch64"]) {
      for (const name of Object.values(groupNames(STAGE, pool))) aws.group({ name, max: 10 });
    }
    installFakeAws(aws, clients);
    aws.settle();
    aws.settle();
    const [instance] = aws.get(names.warm).instances;
    if (!instance) throw new Error("no instance");
    const dynamo = recordDynamoCalls(stage.tableName);
    try {
      const runtime = createAwsRuntime({
        read: (name) => allLinks(stage.tableName)[name as LinkName],
        now,
      });
      const handler = createSweepHandler(runtime);
      const context = lambdaContext("sweep") as never;
      const survey = async (sweepId: string) =>
        (await captureStdout(() => handler({ sweepId }, context))).result as SweepSurvey;

      // Launched just now: within its boot deadline, nothing to mark.
      const fresh = await survey("sweep-1");
      expect(fresh.complete).toBe(true);
      expect(fresh.marked["orphan-instance"]).toBe(0);

      // No heartbeat ever, past the boot deadline: marked, then due at the next sweep.
      offset = BOOT_GRACE_MS + 60_000;
      expect((await survey("sweep-2")).marked["orphan-instance"]).toBe(1);
      const next = await survey("sweep-3");
      const due = next.due.find((action: SweepAction) => action.subject === `instance:${instance.id}`);
      if (!due) throw new Error(`not due: ${JSON.stringify(next)}`);
      const outcome = (await handler({ sweepId: "sweep-3", action: due }, context)) as SweepActOutcome;
      expect(outcome.kind).toBe("done");
      expect(await handler({ survey: next, outcomes: [outcome] }, context)).toEqual({});

      const calls = [
        ...dynamo.calls,
        ...mockedCalls("autoscaling", clients.autoScaling),
        ...mockedCalls("ec2", clients.ec2),
        ...mockedCalls("states", sfn),
      ];
      const actions = new Set(calls.map((call) => call.action));
      for (const action of ["autoscaling:DetachInstances", "ec2:TerminateInstances", "ec2:DescribeInstances"])
        expect(actions).toContain(action);
      const policy = functionPolicy("sweep", scope, {
        tableArn: tableArn(stage.tableName),
        stateMachineArn: STATE_MACHINE_ARN,
        pools: ["x86_64", "aarch64"],
      });
      expect(forbidden(policy, calls)).toEqual([]);
      // The check can fail: the tick's policy allows none of it.
      const tick = functionPolicy("tick", scope, {
        tableArn: tableArn(stage.tableName),
        stateMachineArn: STATE_MACHINE_ARN,
        pools: ["x86_64", "aarch64"],
      });
      expect(forbidden(tick, calls).map((call) => call.action)).toEqual(
        expect.arrayContaining(["autoscaling:DetachInstances", "ec2:TerminateInstances"]),
      );
    } finally {
      dynamo.restore();
    }
  });
});
