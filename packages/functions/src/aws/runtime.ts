import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { type FleetPort, lazyFleet } from "@hearth/core/fleet";
import type { GitLabApiConfig, GitLabJobs } from "@hearth/core/gitlab-api";
import type { PoolConfig } from "@hearth/core/pools";
import type { Store } from "@hearth/core/table";
import { Resource } from "sst/resource";
import { composeHearth, type Hearth, type StartScaleFleet } from "../hearth";
import type { Logger } from "../log";
import { type Link, type LinkName, readLink, secretValue } from "./links";
import { createLambdaLogger } from "./log";
import { createHearthMetrics, type HearthMetrics } from "./metrics";

/**
 * How a Lambda builds Hearth: the ports `composeHearth` takes, from its links (DynamoDB's table, the
 * AWS fleet driver with the group names infra gave it, ScaleFleet's StartExecution, GitLab's API),
 * and its logs and metrics. Everything is made on first use, so a function reads only the links its work needs (the planner, for one, reads the pools
 * and nothing else), and made once per container, so warm invocations reuse clients and connections.
 */

export interface AwsRuntimeOptions {
  /** Reads a link; SST's `Resource` by default (which reads `SST_RESOURCE_*` and SST's key file). */
  read?: (name: string) => unknown;
  /** Makes the GitLab API client; by default `createGitLabJobs`, loaded at the first lookup. */
  gitlabClient?: (config: GitLabApiConfig) => GitLabJobs;
  now?: () => Date;
}

const sstResource = (name: string): unknown => (Resource as unknown as Record<string, unknown>)[name];

function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => {
    made ??= { value: make() };
    return made.value;
  };
}

export type { StartScaleFleet };

/**
 * The GitLab API client, loaded at the first lookup: the API function loads it only when a GitLab
 * job's tags are unknown, so its init stays small.
 */
const lazyGitLabClient = (config: GitLabApiConfig): GitLabJobs => {
  const client = once(async () => (await import("@hearth/core/gitlab-api/client")).createGitLabJobs(config));
  return { tagList: async (project, job) => (await client()).tagList(project, job) };
};

export interface AwsRuntime {
  link<N extends LinkName>(name: N): Link<N>;
  stage(): string;
  pools(): PoolConfig[];
  log: Logger;
  /** Powertools' logger itself, for `addContext` per invocation. */
  logger: ReturnType<typeof createLambdaLogger>["powertools"];
  metrics(): HearthMetrics;
  store(): Store;
  /** Hearth, composed from this function's links (the same composition as local mode's). */
  hearth: Hearth;
  fleet(): FleetPort;
  /** The GitLab API for tag lookups; undefined when no API token is set. */
  gitlab(): GitLabJobs | undefined;
  startScaleFleet(): StartScaleFleet;
  now: () => Date;
}

/** A unique, valid execution name (≤ 80 of `[A-Za-z0-9_-]`) that is also the run's lease holder. */
export const executionName = (pool: string): string => `${pool}-${randomUUID()}`;

export function createAwsRuntime(options: AwsRuntimeOptions = {}): AwsRuntime {
  const read = options.read ?? sstResource;
  const now = options.now ?? (() => new Date());
  const link = <N extends LinkName>(name: N) => readLink(read, name);

  const config = once(() => link("HearthConfig"));
  const stage = once(() => link("App").stage);
  // Every log line names the stage. Should the App link be broken, the logger says "unknown" and the
  // first real use of the stage throws the link's error.
  let stageForLogs = "unknown";
  try {
    stageForLogs = stage();
  } catch {
    stageForLogs = "unknown";
  }
  const { powertools, log } = createLambdaLogger(stageForLogs);
  const metrics = once(() => createHearthMetrics(stage()));

  const documents = once(() =>
    DynamoDBDocumentClient.from(new DynamoDBClient({}), { marshallOptions: { removeUndefinedValues: true } }),
  );
  const store = once((): Store => ({ client: documents(), tableName: link("Storage").tableName, now }));
  // The fleet's SDK clients (EC2's alone takes most of a second to load) are loaded on first use: the
  // API function needs them only for an unknown instance's first heartbeat.
  const fleet = once(() => {
    const { groups, runnerConfigPrefix, account, partition } = link("Fleet");
    return lazyFleet(async () => {
      const [{ AutoScalingClient }, { EC2Client }, { SSMClient }, { createAwsFleet, fleetClientConfig }] =
        await Promise.all([
          import("@aws-sdk/client-auto-scaling"),
          import("@aws-sdk/client-ec2"),
          import("@aws-sdk/client-ssm"),
          import("@hearth/core/fleet-aws"),
        ]);
      return createAwsFleet({
        autoScaling: new AutoScalingClient(fleetClientConfig()),
        ec2: new EC2Client(fleetClientConfig()),
        ssm: new SSMClient(fleetClientConfig()),
        groups,
        runnerConfigPrefix,
        stage: stage(),
        account,
        partition,
        now,
      });
    });
  });
  const gitlab = once(() => {
    const token = secretValue(link("GitlabApiToken"));
    if (!token) return undefined;
    return (options.gitlabClient ?? lazyGitLabClient)({ url: config().gitlabUrl, token });
  });
  const startScaleFleet = once((): StartScaleFleet => {
    const { stateMachineArn } = link("ScaleFleet");
    // Loaded on the first run to start: most webhooks find capacity and start none.
    const client = once(async () => {
      const sdk = await import("@aws-sdk/client-sfn");
      return { sfn: new sdk.SFNClient({}), StartExecutionCommand: sdk.StartExecutionCommand };
    });
    return async (pool, holder) => {
      const { sfn, StartExecutionCommand } = await client();
      await sfn.send(
        new StartExecutionCommand({
          stateMachineArn,
          name: holder,
          input: JSON.stringify({ pool, holder, iteration: 0, maxIterations: config().maxIterations }),
        }),
      );
    };
  });

  const hearth = composeHearth({
    store,
    pools: () => config().pools,
    fleet,
    gitlab,
    startScaleFleet,
    holder: executionName,
    // A Lambda freezes once it has answered: what may follow the answer runs before it.
    background: (task) => task(),
    log,
    now,
  });

  return {
    link,
    stage,
    pools: () => config().pools,
    log,
    logger: powertools,
    metrics,
    store,
    hearth,
    fleet,
    gitlab,
    startScaleFleet,
    now,
  };
}
