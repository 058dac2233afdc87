import { join } from "node:path";
import { loadHearthConfig, stageSettings } from "../packages/core/src/config/file";
import { MAX_ITERATIONS } from "./lib/functions";
import type { Scope } from "./lib/iam";
import { componentNames, groupNames, parameterPaths } from "./lib/names";

/**
 * The stage's settings, from the same `hearth.config.json` (and the same `defaultPools`) as local
 * mode, and where the stage lives. Everything else in infra/ reads these.
 */
export const settings = stageSettings(
  loadHearthConfig(process.env.HEARTH_CONFIG ?? join($cli.paths.root, "hearth.config.json")),
  $app.stage,
);

/** Each pool's part in component names (`X8664`), refusing pools whose names would collide. */
export const poolComponent = componentNames(settings.pools);

const identity = aws.getCallerIdentityOutput({});
const region = aws.getRegionOutput({});
const partition = aws.getPartitionOutput({});

export const scope = $util.all([identity.accountId, region.region, partition.partition]).apply(
  ([accountId, regionName, partitionName]): Scope => ({
    accountId,
    region: regionName,
    partition: partitionName,
    stage: settings.stage,
  }),
);

/** What the functions need of the settings (the `HearthConfig` link). */
export const hearthConfig = new sst.Linkable("HearthConfig", {
  properties: {
    pools: settings.pools,
    gitlabUrl: settings.gitlab.url,
    githubApiUrl: settings.github.apiUrl,
    maxIterations: MAX_ITERATIONS,
    // Polling's interval and budget share; the sweep's interval, share and dry run.
    reconciliation: settings.reconciliation,
  },
});

/**
 * The fleet's Auto Scaling group names, the JIT config path, and the account and partition that
 * instance ARNs name (the `Fleet` link). The names are fixed by the stage and pool, so functions can
 * link them before infra/fleet.ts creates the groups.
 */
export const fleetLink = new sst.Linkable("Fleet", {
  properties: {
    groups: Object.fromEntries(
      settings.pools.map((pool) => [pool.name, groupNames(settings.stage, pool.name)]),
    ),
    runnerConfigPrefix: parameterPaths(settings.stage).runnerConfigs,
    account: scope.apply((where) => where.accountId),
    partition: scope.apply((where) => where.partition),
  },
});
