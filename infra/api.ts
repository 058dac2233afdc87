import { fleetLink, hearthConfig } from "./config";
import { hearthFunction } from "./functions";
import { handleInterruption, handleInterruptionLink } from "./interruptions";
import { apiRoutes } from "./lib/api";
import {
  githubAppId,
  githubAppPrivateKey,
  githubWebhookSecret,
  gitlabApiToken,
  gitlabSigningToken,
  gitlabWebhookToken,
  statusToken,
} from "./secrets";
import { storage } from "./storage";
import { scaleFleet, scaleFleetLink } from "./workflows";

/**
 * The HTTP API: one function (one Hono app, as in local mode) behind API Gateway's HTTP API. Only the
 * routes below exist; anything else is API Gateway's 404 and never reaches the function.
 *
 * One function rather than three: the routes share the app and its cold start, and their permissions
 * differ only by two read-only lookups (the heartbeat's DescribeAutoScalingInstances and
 * DescribeInstances). The heartbeat route is the one that must not be open, and API Gateway enforces
 * that before the function runs: it requires a SigV4 signature from a role allowed to invoke exactly
 * that route (the fleet's instance roles).
 */
export const api = new sst.aws.ApiGatewayV2("Api", {
  // CORS is the app's: `GET /api/status` answers the status page's preflight itself.
  cors: false,
  accessLog: { retention: "1 month" },
  transform: {
    stage: (args) => {
      // A ceiling on what a flood of requests can cost; far above any forge's delivery rate.
      args.defaultRouteSettings = { throttlingBurstLimit: 500, throttlingRateLimit: 200 };
    },
  },
});

export const apiFunction = hearthFunction(
  "api",
  {
    HearthConfig: hearthConfig,
    Storage: storage,
    Fleet: fleetLink,
    ScaleFleet: scaleFleetLink,
    HandleInterruption: handleInterruptionLink,
    GithubWebhookSecret: githubWebhookSecret,
    GitlabWebhookToken: gitlabWebhookToken,
    GitlabSigningToken: gitlabSigningToken,
    GitlabApiToken: gitlabApiToken,
    StatusToken: statusToken,
    GithubAppId: githubAppId,
    GithubAppPrivateKey: githubAppPrivateKey,
  },
  { stateMachineArn: scaleFleet.arn, interruptionMachineArn: handleInterruption.arn },
);

for (const { route, iam } of apiRoutes) {
  api.route(route, apiFunction.arn, iam ? { auth: { iam: true } } : {});
}

export const webhookUrls = {
  github: $interpolate`${api.url}/webhooks/github`,
  gitlab: $interpolate`${api.url}/webhooks/gitlab`,
};
