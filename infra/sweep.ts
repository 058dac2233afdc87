import { sweepDefinition } from "../packages/core/src/workflows";
import { fleetLink, hearthConfig, scope, settings } from "./config";
import { hearthFunction } from "./functions";
import { checked, stateMachinePolicy, trustPolicy } from "./lib/iam";
import { resourcePrefix } from "./lib/names";
import { sweepScheduleExpression, sweepSchedulePolicy } from "./lib/sweep";
import { githubAppId, githubAppPrivateKey, gitlabApiToken, gitlabRunnerTokens } from "./secrets";
import { storage } from "./storage";
import { scaleFleet, scaleFleetLink } from "./workflows";

/**
 * The Sweep: the state machine of @hearth/core/workflows (the very definition local mode runs), its
 * task function (one Lambda for its Task states), and an EventBridge Scheduler schedule that starts it
 * every `reconciliation.sweepMinutes` (5 by default). A standard workflow: its Map acts on each due
 * mark a few at a time, and a run takes minutes at most.
 *
 * The schedule targets the state machine directly rather than a cron function that would start it:
 * one fewer Lambda, and Scheduler names each execution uniquely, which is the sweep's id.
 */
const sweepTask = hearthFunction(
  "sweep",
  {
    HearthConfig: hearthConfig,
    Storage: storage,
    Fleet: fleetLink,
    ScaleFleet: scaleFleetLink,
    GitlabApiToken: gitlabApiToken,
    GithubAppId: githubAppId,
    GithubAppPrivateKey: githubAppPrivateKey,
    GitlabRunnerTokens: gitlabRunnerTokens,
  },
  { stateMachineArn: scaleFleet.arn },
);

const role = new aws.iam.Role("SweepRole", {
  description: `Hearth ${settings.stage}: the Sweep invokes its task function`,
  assumeRolePolicy: scope.apply((where) =>
    JSON.stringify(trustPolicy("states.amazonaws.com", where.accountId)),
  ),
});
const rolePolicy = new aws.iam.RolePolicy("SweepRolePolicy", {
  role: role.name,
  policy: sweepTask.arn.apply((arn) =>
    JSON.stringify(checked(stateMachinePolicy([arn]), settings.stage, "Sweep role")),
  ),
});

export const sweep = new aws.sfn.StateMachine(
  "SweepStateMachine",
  {
    name: `${resourcePrefix(settings.stage)}-sweep`,
    type: "STANDARD",
    roleArn: role.arn,
    definition: sweepTask.arn.apply((arn) =>
      JSON.stringify(sweepDefinition({ survey: arn, act: arn, finish: arn, recordFailure: arn })),
    ),
  },
  // The role must be able to invoke the task before Step Functions validates the definition.
  { dependsOn: [rolePolicy] },
);

const scheduleRole = new aws.iam.Role("SweepScheduleRole", {
  description: `Hearth ${settings.stage}: EventBridge Scheduler starts the Sweep`,
  assumeRolePolicy: scope.apply((where) =>
    JSON.stringify(trustPolicy("scheduler.amazonaws.com", where.accountId)),
  ),
});
new aws.iam.RolePolicy("SweepScheduleRolePolicy", {
  role: scheduleRole.name,
  policy: sweep.arn.apply((arn) =>
    JSON.stringify(checked(sweepSchedulePolicy(arn), settings.stage, "Sweep schedule role")),
  ),
});

export const sweepSchedule = new aws.scheduler.Schedule("SweepSchedule", {
  name: `${resourcePrefix(settings.stage)}-sweep`,
  description: `Hearth ${settings.stage}: the sweep, every ${settings.reconciliation.sweepMinutes} minutes`,
  scheduleExpression: sweepScheduleExpression(settings.reconciliation.sweepMinutes),
  flexibleTimeWindow: { mode: "OFF" },
  target: {
    arn: sweep.arn,
    roleArn: scheduleRole.arn,
    input: "{}",
    // A missed sweep is made up by the next one; a retry would only overlap it.
    retryPolicy: { maximumRetryAttempts: 0 },
  },
});
