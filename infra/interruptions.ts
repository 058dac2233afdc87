import { handleInterruptionDefinition } from "../packages/core/src/workflows";
import { fleetLink, hearthConfig, scope, settings } from "./config";
import { hearthFunction } from "./functions";
import { checked, stateMachinePolicy, trustPolicy } from "./lib/iam";
import { eventTargetPolicy, interruptionRules } from "./lib/interruptions";
import { pascal, resourcePrefix, stageTags } from "./lib/names";
import { githubAppId, githubAppPrivateKey, gitlabRunnerTokens } from "./secrets";
import { storage } from "./storage";
import { scaleFleet, scaleFleetLink } from "./workflows";

/**
 * HandleInterruption: the state machine of @hearth/core/workflows (the very definition local mode
 * runs), its task function (one Lambda for its four Task states), and an EventBridge rule per spot
 * event on the default bus whose target is the state machine itself. A standard workflow: an
 * execution lasts until its instance is gone.
 */
const interruption = hearthFunction(
  "interruption",
  {
    HearthConfig: hearthConfig,
    Storage: storage,
    Fleet: fleetLink,
    ScaleFleet: scaleFleetLink,
    GithubAppId: githubAppId,
    GithubAppPrivateKey: githubAppPrivateKey,
    GitlabRunnerTokens: gitlabRunnerTokens,
  },
  { stateMachineArn: scaleFleet.arn },
);

const role = new aws.iam.Role("HandleInterruptionRole", {
  description: `Hearth ${settings.stage}: HandleInterruption invokes its task function`,
  assumeRolePolicy: scope.apply((where) =>
    JSON.stringify(trustPolicy("states.amazonaws.com", where.accountId)),
  ),
});
const rolePolicy = new aws.iam.RolePolicy("HandleInterruptionRolePolicy", {
  role: role.name,
  policy: interruption.arn.apply((arn) =>
    JSON.stringify(checked(stateMachinePolicy([arn]), settings.stage, "HandleInterruption role")),
  ),
});

export const handleInterruption = new aws.sfn.StateMachine(
  "HandleInterruptionStateMachine",
  {
    name: `${resourcePrefix(settings.stage)}-handle-interruption`,
    type: "STANDARD",
    roleArn: role.arn,
    definition: interruption.arn.apply((arn) =>
      JSON.stringify(
        handleInterruptionDefinition({ claim: arn, drain: arn, settle: arn, recordFailure: arn }),
      ),
    ),
  },
  // The role must be able to invoke the task before Step Functions validates the definition.
  { dependsOn: [rolePolicy] },
);

/** The state machine's ARN for the API, whose heartbeat starts it on an agent's report (`HandleInterruption` link). */
export const handleInterruptionLink = new sst.Linkable("HandleInterruption", {
  properties: { stateMachineArn: handleInterruption.arn },
});

// EventBridge starts an execution per event, with the event as its input.
const eventsRole = new aws.iam.Role("InterruptionEventsRole", {
  description: `Hearth ${settings.stage}: EC2's spot events start HandleInterruption`,
  assumeRolePolicy: scope.apply((where) =>
    JSON.stringify(trustPolicy("events.amazonaws.com", where.accountId)),
  ),
});
new aws.iam.RolePolicy("InterruptionEventsRolePolicy", {
  role: eventsRole.name,
  policy: handleInterruption.arn.apply((arn) =>
    JSON.stringify(checked(eventTargetPolicy(arn), settings.stage, "interruption events role")),
  ),
});

for (const spec of interruptionRules) {
  const rule = new aws.cloudwatch.EventRule(`InterruptionRule${pascal(spec.key)}`, {
    name: `${resourcePrefix(settings.stage)}-${spec.key}`,
    description: spec.description,
    eventPattern: JSON.stringify(spec.eventPattern),
    tags: stageTags(settings.stage),
  });
  new aws.cloudwatch.EventTarget(`InterruptionTarget${pascal(spec.key)}`, {
    rule: rule.name,
    arn: handleInterruption.arn,
    roleArn: eventsRole.arn,
  });
}
