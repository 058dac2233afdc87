import { interruptionDetailTypes } from "../../packages/core/src/interruptions/events";
import type { PolicyDocument } from "./iam";

/**
 * HandleInterruption's EventBridge side as plain data: one rule per event EC2 puts on the default bus
 * for a spot instance at risk, each with the state machine itself as its target (the execution's input
 * is the event, in AWS's shape), and the role EventBridge assumes to start it.
 */

export interface InterruptionRule {
  /** Part of the component and rule names. */
  key: "spot-warning" | "rebalance";
  description: string;
  eventPattern: { source: ["aws.ec2"]; "detail-type": [string] };
}

export const interruptionRules: InterruptionRule[] = interruptionDetailTypes.map((detailType) => ({
  key: detailType.includes("Warning") ? "spot-warning" : "rebalance",
  description: `Hearth: ${detailType} → HandleInterruption`,
  eventPattern: { source: ["aws.ec2"], "detail-type": [detailType] },
}));

/** What EventBridge may do with the rules' role: start HandleInterruption, nothing else. */
export function eventTargetPolicy(stateMachineArn: string): PolicyDocument {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "StartHandleInterruption",
        Effect: "Allow",
        Action: ["states:StartExecution"],
        Resource: [stateMachineArn],
      },
    ],
  };
}
