import { parseHearthConfig, stageSettings } from "@hearth/core/config";
import {
  parseInterruptionEvents,
  REBALANCE_DETAIL_TYPE,
  WARNING_DETAIL_TYPE,
} from "@hearth/core/interruptions";
import { handleInterruptionDefinition } from "@hearth/core/workflows";
import validator from "asl-validator";
import { describe, expect, it } from "vitest";
import { alarms } from "../lib/alarms";
import { functionSpecs } from "../lib/functions";
import { allows, violations } from "../lib/iam";
import { eventTargetPolicy, interruptionRules } from "../lib/interruptions";

/** HandleInterruption as infra deploys it: its definition, the EventBridge rules, their role, its alarm. */

const taskArn = "arn:aws:lambda:eu-west-1:123456789012:function:hearth-production-interruption";
const machineArn = "arn:aws:states:eu-west-1:123456789012:stateMachine:hearth-production-handle-interruption";
const definition = handleInterruptionDefinition({
  claim: taskArn,
  drain: taskArn,
  settle: taskArn,
  recordFailure: taskArn,
});

/** EventBridge's content filtering, for the patterns used here: every key's values list the event's. */
const matches = (pattern: Record<string, string[]>, event: Record<string, unknown>) =>
  Object.entries(pattern).every(([key, values]) => values.includes(event[key] as string));

describe("the HandleInterruption definition as deployed", () => {
  it("is valid Amazon States Language", () => {
    const result = validator(structuredClone(definition), { checkArn: true, checkPaths: true });
    expect(result.errorsText(), result.errorsText()).toBe("");
    expect(result.isValid).toBe(true);
  });

  it("is rejected by the validator when broken, so the check above can fail", () => {
    const broken = structuredClone(definition) as { States: Record<string, Record<string, unknown>> };
    (broken.States.Drain as Record<string, unknown>).Next = "Nowhere";
    expect(validator(broken).isValid).toBe(false);
  });

  it("invokes only the interruption function, whose handler exists", () => {
    const resources = Object.values(definition.States).flatMap((state) =>
      "Resource" in state ? [state.Resource as string] : [],
    );
    expect(new Set(resources)).toEqual(new Set([taskArn]));
    expect(functionSpecs.interruption.handler).toBe("packages/functions/src/aws/interruption.handler");
  });
});

describe("the EventBridge rules", () => {
  const warning = {
    version: "0",
    id: "7e7f1a54-3f52-4c5e-9f0e-000000000001",
    "detail-type": WARNING_DETAIL_TYPE,
    source: "aws.ec2",
    account: "123456789012",
    time: "2026-12-01T10:00:00Z",
    region: "eu-west-1",
    resources: ["arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0"],
    detail: { "instance-id": "i-0123456789abcdef0", "instance-action": "terminate" },
  };
  const rebalance = {
    ...warning,
    "detail-type": REBALANCE_DETAIL_TYPE,
    detail: { "instance-id": "i-0123456789abcdef0" },
  };

  it("match each spot event, AWS's shapes that the state machine's Claim reads, and nothing else of EC2", () => {
    expect(interruptionRules.map((rule) => rule.key)).toEqual(["spot-warning", "rebalance"]);
    for (const event of [warning, rebalance]) {
      const matched = interruptionRules.filter((rule) => matches(rule.eventPattern, event));
      expect(matched).toHaveLength(1);
      expect(parseInterruptionEvents(event)).toHaveLength(1);
    }
    const stateChange = { ...warning, "detail-type": "EC2 Instance State-change Notification" };
    expect(interruptionRules.some((rule) => matches(rule.eventPattern, stateChange))).toBe(false);
    expect(
      interruptionRules.some((rule) => matches(rule.eventPattern, { ...warning, source: "custom" })),
    ).toBe(false);
  });

  it("start HandleInterruption with a role that may do that alone", () => {
    const policy = eventTargetPolicy(machineArn);
    expect(violations(policy, "production")).toEqual([]);
    expect(allows(policy, "states:StartExecution", machineArn)).toBe(true);
    expect(allows(policy, "states:StartExecution", `${machineArn}-other`)).toBe(false);
    expect(allows(policy, "states:StopExecution", machineArn)).toBe(false);
    expect(allows(policy, "lambda:InvokeFunction", taskArn)).toBe(false);
  });
});

describe("the interruptions alarm", () => {
  it("fires per pool when more spot instances than the setting were interrupted within an hour", () => {
    const settings = stageSettings(
      parseHearthConfig({ alarms: { thresholds: { interruptionsPerHour: 4 } } }),
      "production",
    );
    const specs = alarms(settings, { apiId: "a", functions: {}, stateMachineArn: "arn:aws:states:x" });
    for (const pool of settings.pools) {
      expect(specs.find((a) => a.key === `interruptions-${pool.name}`)).toMatchObject({
        comparisonOperator: "GreaterThanThreshold",
        threshold: 4,
        treatMissingData: "notBreaching",
        metrics: [
          {
            namespace: "Hearth",
            metricName: "Interruptions",
            dimensions: { service: "hearth", stage: "production", pool: pool.name },
            stat: "Sum",
            period: 3600,
          },
        ],
      });
    }
    const defaults = alarms(stageSettings(parseHearthConfig({}), "production"), {
      apiId: "a",
      functions: {},
      stateMachineArn: "arn:aws:states:x",
    });
    expect(defaults.find((a) => a.key === "interruptions-x86_64")?.threshold).toBe(10);
  });
});
