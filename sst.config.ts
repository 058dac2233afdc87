/// <reference path="./.sst/platform/config.d.ts" />

/**
 * Hearth on AWS: `npx sst deploy --stage <name>`. Each concern of the stage is one file in infra/,
 * imported in dependency order; a later flow (spot interruptions, the sweep, polling) is one more
 * file and one more import here. What infra computes (IAM, alarms, groups, tables) is plain data in
 * infra/lib, tested without SST.
 */
export default $config({
  app(input) {
    const production = input?.stage === "production";
    return {
      name: "hearth",
      home: "aws",
      // Production keeps its data if the stage is removed, and refuses `sst remove` outright.
      removal: production ? "retain" : "remove",
      protect: production,
      providers: { aws: { version: "7.20.0" } },
    };
  },
  async run() {
    const { settings } = await import("./infra/config");
    const storage = await import("./infra/storage");
    await import("./infra/secrets");
    const workflows = await import("./infra/workflows");
    const api = await import("./infra/api");
    const fleet = await import("./infra/fleet");
    await import("./infra/schedules");
    const web = await import("./infra/web");
    // Last: alarms watch every function the files above created.
    const alarms = await import("./infra/alarms");

    return {
      stage: settings.stage,
      api: api.api.url,
      githubWebhook: api.webhookUrls.github,
      gitlabWebhook: api.webhookUrls.gitlab,
      statusPage: web.site.url,
      table: storage.table.name,
      scaleFleet: workflows.scaleFleet.arn,
      binaryCache: fleet.cacheBucketName,
      autoScalingGroups: fleet.groupNamesByPool,
      amiParameters: fleet.amiParameters,
      alarmTopic: alarms.topic.arn,
      alarmEventPattern: alarms.eventPattern,
    };
  },
});
