/// <reference path="./.sst/platform/config.d.ts" />

/**
 * Hearth on AWS: `npx sst deploy --stage <name>`. Each concern of the stage is one file in infra/,
 * imported in dependency order. What infra computes (IAM, alarms, groups, the table) is plain data in
 * infra/lib, tested without SST; `npm run typecheck:infra` checks these files against SST's and
 * Pulumi's types.
 *
 * A later flow is one more file here, imported before the alarms, as `infra/interruptions.ts` is
 * (HandleInterruption, and the default-bus rules for EC2's spot events that start it) and
 * `infra/sweep.ts` (the Sweep, and the Scheduler schedule that starts it): `infra/polling.ts` (the
 * poll function and its schedule). Its functions come from `hearthFunction` (infra/functions.ts), which gives them the
 * runtime, logs, links and least-privilege policy, and the alarms their error alarm; their links and
 * policy are entries in the tables of packages/functions/src/aws/links.ts and infra/lib, which the
 * type checker makes complete.
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
    const interruptions = await import("./infra/interruptions");
    const sweep = await import("./infra/sweep");
    const api = await import("./infra/api");
    const fleet = await import("./infra/fleet");
    await import("./infra/schedules");
    await import("./infra/polling");
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
      handleInterruption: interruptions.handleInterruption.arn,
      sweep: sweep.sweep.arn,
      binaryCache: fleet.cacheBucketName,
      autoScalingGroups: fleet.groupNamesByPool,
      amiParameters: fleet.amiParameters,
      alarmTopic: alarms.topic.arn,
      alarmEventPattern: alarms.eventPattern,
    };
  },
});
