import { parseHearthConfig, stageSettings } from "@hearth/core/config";
import { SWEEP_ACT_CONCURRENCY, sweepDefinition } from "@hearth/core/workflows";
import validator from "asl-validator";
import { describe, expect, it } from "vitest";
import { functionSpecs } from "../lib/functions";
import {
  allows,
  autoScalingMutations,
  functionPolicy,
  type Scope,
  trustPolicy,
  violations,
} from "../lib/iam";
import { groupNames } from "../lib/names";
import { sweepScheduleExpression, sweepSchedulePolicy } from "../lib/sweep";

/** The Sweep as infra deploys it: its definition, its task function's permissions, its schedule. */

const taskArn = "arn:aws:lambda:eu-west-1:123456789012:function:hearth-prod-sweep";
const machineArn = "arn:aws:states:eu-west-1:123456789012:stateMachine:hearth-prod-sweep";
const scaleFleetArn = "arn:aws:states:eu-west-1:123456789012:stateMachine:hearth-prod-scale-fleet";
const scope: Scope = { partition: "aws", region: "eu-west-1", accountId: "123456789012", stage: "prod" };
const tableArn = "arn:aws:dynamodb:eu-west-1:123456789012:table/hearth-prod";
const pools = ["x86_64", "aarch64"];
const definition = sweepDefinition({
  survey: taskArn,
  act: taskArn,
  finish: taskArn,
  recordFailure: taskArn,
});

describe("the Sweep definition as deployed", () => {
  it("is valid Amazon States Language", () => {
    const result = validator(structuredClone(definition), { checkArn: true, checkPaths: true });
    expect(result.errorsText(), result.errorsText()).toBe("");
    expect(result.isValid).toBe(true);
  });

  it("is rejected by the validator when broken, so the check above can fail", () => {
    const broken = structuredClone(definition) as { States: Record<string, Record<string, unknown>> };
    (broken.States.Survey as Record<string, unknown>).Next = "Nowhere";
    expect(validator(broken).isValid).toBe(false);
  });

  it("invokes only the sweep function, whose handler exists, and acts a few at a time", () => {
    const resources = JSON.stringify(definition).match(/arn:aws:lambda:[^"]+/g) ?? [];
    expect(new Set(resources)).toEqual(new Set([taskArn]));
    expect(functionSpecs.sweep.handler).toBe("packages/functions/src/aws/sweep.handler");
    expect(definition.States.Act.MaxConcurrency).toBe(SWEEP_ACT_CONCURRENCY);
    expect(SWEEP_ACT_CONCURRENCY).toBeLessThanOrEqual(10);
  });
});

describe("the sweep function's permissions", () => {
  const policy = functionPolicy("sweep", scope, { tableArn, stateMachineArn: scaleFleetArn, pools });
  const instance = "arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0";
  const group = (name: string) =>
    `arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:uuid:autoScalingGroupName/${name}`;

  it("pass the least-privilege check", () => {
    expect(violations(policy, "prod")).toEqual([]);
  });

  it("terminate and detach only the stage's tagged instances and groups, and change no capacity", () => {
    const terminate = policy.Statement.find((s) => s.Action.includes("ec2:TerminateInstances"));
    expect(terminate?.Condition).toEqual({
      StringEquals: { "aws:ResourceTag/hearth:app": "hearth", "aws:ResourceTag/hearth:stage": "prod" },
    });
    expect(allows(policy, "ec2:TerminateInstances", instance)).toBe(true);
    expect(allows(policy, "autoscaling:DetachInstances", group(groupNames("prod", "x86_64").warm))).toBe(
      true,
    );
    expect(allows(policy, "autoscaling:DetachInstances", group("payments-prod"))).toBe(false);
    for (const action of autoScalingMutations) {
      expect(allows(policy, action, group(groupNames("prod", "x86_64").warm)), action).toBe(false);
    }
    for (const action of ["ec2:RunInstances", "ec2:StopInstances", "ec2:CreateTags"]) {
      expect(allows(policy, action, instance), action).toBe(false);
    }
  });

  it("read the cloud with the describe calls, and start only ScaleFleet", () => {
    expect(allows(policy, "ec2:DescribeInstances")).toBe(true);
    expect(allows(policy, "autoscaling:DescribeAutoScalingGroups")).toBe(true);
    expect(allows(policy, "states:StartExecution", scaleFleetArn)).toBe(true);
    expect(allows(policy, "states:StartExecution", machineArn)).toBe(false);
  });
});

describe("the Sweep's schedule", () => {
  it("runs every sweepMinutes, 5 by default, in Scheduler's rate syntax", () => {
    expect(
      sweepScheduleExpression(stageSettings(parseHearthConfig({}), "prod").reconciliation.sweepMinutes),
    ).toBe("rate(5 minutes)");
    const every = (minutes: number) =>
      sweepScheduleExpression(
        stageSettings(parseHearthConfig({ reconciliation: { sweepMinutes: minutes } }), "prod").reconciliation
          .sweepMinutes,
      );
    expect(every(1)).toBe("rate(1 minute)");
    expect(every(60)).toBe("rate(60 minutes)");
    expect(() => sweepScheduleExpression(0)).toThrow(/sweepMinutes/);
    expect(() => sweepScheduleExpression(2.5)).toThrow(/sweepMinutes/);
  });

  it("starts the Sweep with a role that may do that alone, assumed by Scheduler for this account only", () => {
    const policy = sweepSchedulePolicy(machineArn);
    expect(violations(policy, "prod")).toEqual([]);
    expect(allows(policy, "states:StartExecution", machineArn)).toBe(true);
    expect(allows(policy, "states:StartExecution", scaleFleetArn)).toBe(false);
    expect(allows(policy, "states:StopExecution", machineArn)).toBe(false);
    expect(allows(policy, "lambda:InvokeFunction", taskArn)).toBe(false);
    expect(trustPolicy("scheduler.amazonaws.com", "123456789012").Statement[0]).toMatchObject({
      Principal: { Service: "scheduler.amazonaws.com" },
      Condition: { StringEquals: { "aws:SourceAccount": "123456789012" } },
    });
  });
});
