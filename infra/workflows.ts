import { scaleFleetDefinition } from "../packages/core/src/workflows";
import { fleetLink, hearthConfig, scope, settings } from "./config";
import { hearthFunction } from "./functions";
import { checked, stateMachinePolicy, trustPolicy } from "./lib/iam";
import { resourcePrefix } from "./lib/names";
import { githubAppId, githubAppPrivateKey, gitlabApiToken, gitlabRunnerTokens } from "./secrets";
import { storage } from "./storage";

/**
 * ScaleFleet: the state machine of @hearth/core/workflows (the very definition local mode runs), and
 * the five Lambdas its Task states invoke. A standard workflow: a run loops for up to 20 minutes.
 */
// Observe sees instances leave service: it deletes those instances' GitHub runners (the App) and
// GitLab runner managers (their pool's runner token), and retries the deletions its pool owes.
const forgeRunners = {
  GithubAppId: githubAppId,
  GithubAppPrivateKey: githubAppPrivateKey,
  GitlabRunnerTokens: gitlabRunnerTokens,
};
const observe = hearthFunction("observe", {
  HearthConfig: hearthConfig,
  Storage: storage,
  Fleet: fleetLink,
  GitlabApiToken: gitlabApiToken,
  ...forgeRunners,
});
const plan = hearthFunction("plan", { HearthConfig: hearthConfig });
const apply = hearthFunction("apply", {
  HearthConfig: hearthConfig,
  Storage: storage,
  Fleet: fleetLink,
});
const finish = hearthFunction("finish", { Storage: storage });
const recordFailure = hearthFunction("recordFailure", { Storage: storage });

const taskArns = [observe.arn, plan.arn, apply.arn, finish.arn, recordFailure.arn];

const role = new aws.iam.Role("ScaleFleetRole", {
  description: `Hearth ${settings.stage}: ScaleFleet invokes its task functions`,
  assumeRolePolicy: scope.apply((where) =>
    JSON.stringify(trustPolicy("states.amazonaws.com", where.accountId)),
  ),
});
const rolePolicy = new aws.iam.RolePolicy("ScaleFleetRolePolicy", {
  role: role.name,
  policy: $resolve(taskArns).apply((arns) =>
    JSON.stringify(checked(stateMachinePolicy(arns), settings.stage, "ScaleFleet role")),
  ),
});

export const scaleFleet = new aws.sfn.StateMachine(
  "ScaleFleetStateMachine",
  {
    name: `${resourcePrefix(settings.stage)}-scale-fleet`,
    type: "STANDARD",
    roleArn: role.arn,
    definition: $resolve(taskArns).apply(([o, p, a, f, r]) =>
      JSON.stringify(
        scaleFleetDefinition({
          observe: o as string,
          plan: p as string,
          apply: a as string,
          finish: f as string,
          recordFailure: r as string,
        }),
      ),
    ),
  },
  // The role must be able to invoke the tasks before Step Functions validates the definition.
  { dependsOn: [rolePolicy] },
);

/** The state machine's ARN for the functions that start runs (`ScaleFleet` link). */
export const scaleFleetLink = new sst.Linkable("ScaleFleet", {
  properties: { stateMachineArn: scaleFleet.arn },
});
