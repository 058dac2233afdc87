import { hearthConfig, settings } from "./config";
import { hearthFunction } from "./functions";
import { githubAppId, githubAppPrivateKey, gitlabApiToken } from "./secrets";
import { storage } from "./storage";
import { scaleFleet, scaleFleetLink } from "./workflows";

/**
 * Polling for missed webhooks: a function on a schedule (`reconciliation.pollMinutes`, one minute by
 * default). It reads the forges with the App (its failed webhook deliveries, its installations' runs
 * and jobs) and the GitLab API token (pending and running jobs), records what it finds in the table,
 * and starts ScaleFleet for it: those links and nothing else.
 */
const poll = hearthFunction(
  "poll",
  {
    HearthConfig: hearthConfig,
    Storage: storage,
    ScaleFleet: scaleFleetLink,
    GitlabApiToken: gitlabApiToken,
    GithubAppId: githubAppId,
    GithubAppPrivateKey: githubAppPrivateKey,
  },
  { stateMachineArn: scaleFleet.arn },
);

const minutes = settings.reconciliation.pollMinutes;

export const pollSchedule = new sst.aws.CronV2("Poll", {
  schedule: `rate(${minutes} ${minutes === 1 ? "minute" : "minutes"})`,
  function: poll.arn,
  // A missed poll is made up by the next one; a retry would only overlap it.
  retries: 0,
});
