import { hearthConfig } from "./config";
import { hearthFunction } from "./functions";
import { gitlabApiToken } from "./secrets";
import { storage } from "./storage";
import { scaleFleetLink } from "./workflows";

/**
 * The crons. For now, the minute tick: it refreshes the forecast, reports the queue, and starts
 * ScaleFleet for every pool (idle instances age out, and jobs whose webhook never came are served).
 */
const tick = hearthFunction("tick", {
  HearthConfig: hearthConfig,
  Storage: storage,
  ScaleFleet: scaleFleetLink,
  GitlabApiToken: gitlabApiToken,
});

export const tickSchedule = new sst.aws.CronV2("Tick", {
  schedule: "rate(1 minute)",
  function: tick.arn,
  // A missed tick is made up by the next one, a minute later.
  retries: 0,
});
