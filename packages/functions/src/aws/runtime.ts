import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { type FleetPort, lazyFleet } from "@hearth/core/fleet";
import type { GitLabApiConfig, GitLabJobs } from "@hearth/core/gitlab-api";
import { createInstanceRegistry, type InstanceRegistry } from "@hearth/core/instances";
import { createJournal, type Journal } from "@hearth/core/journal";
import { createLeases, type Leases } from "@hearth/core/leases";
import { createLedger, type Ledger } from "@hearth/core/ledger";
import type { PoolConfig } from "@hearth/core/pools";
import { createPoolStates, type PoolStates, type ScalingDeps } from "@hearth/core/scaling";
import type { Store } from "@hearth/core/table";
import { Resource } from "sst/resource";
import type { Logger } from "../log";
import { type Link, type LinkName, readLink, secretValue } from "./links";
import { createLambdaLogger } from "./log";
import { createHearthMetrics, type HearthMetrics } from "./metrics";

/**
 * How a Lambda builds Hearth from its links: the stores on the one table, the AWS fleet driver with
 * the group names infra gave it, ScaleFleet's StartExecution, logs and metrics. Everything is made on
 * first use, so a function reads only the links its work needs (the planner, for one, reads the pools
 * and nothing else), and made once per container, so warm invocations reuse clients and connections.
 */

export interface AwsRuntimeOptions {
  /** Reads a link; SST's `Resource` by default (which reads `SST_RESOURCE_*` and SST's key file). */
  read?: (name: string) => unknown;
  /**
   * Makes the GitLab API client, for the functions that look up tags (`createGitLabJobs`). Passed in
   * rather than imported, so that the API function's bundle leaves the GitLab client out.
   */
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

export type StartScaleFleet = (pool: string, holder: string) => Promise<void>;

export interface AwsRuntime {
  link<N extends LinkName>(name: N): Link<N>;
  stage(): string;
  pools(): PoolConfig[];
  log: Logger;
  /** Powertools' logger itself, for `addContext` per invocation. */
  logger: ReturnType<typeof createLambdaLogger>["powertools"];
  metrics(): HearthMetrics;
  store(): Store;
  ledger(): Ledger;
  registry(): InstanceRegistry;
  journal(): Journal;
  leases(): Leases;
  poolStates(): PoolStates;
  fleet(): FleetPort;
  /** The GitLab API for tag lookups; undefined when no API token is set. */
  gitlab(): GitLabJobs | undefined;
  startScaleFleet(): StartScaleFleet;
  /** ScaleFleet's dependencies; each is built when a step first touches it. */
  scalingDeps: ScalingDeps;
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
  const ledger = once(() => createLedger(store()));
  const registry = once(() => createInstanceRegistry(store()));
  const journal = once(() => createJournal(store()));
  const leases = once(() => createLeases(store()));
  const poolStates = once(() => createPoolStates(store()));
  // The fleet's SDK clients (EC2's alone takes most of a second to load) are loaded on first use: the
  // API function needs them only for an unknown instance's first heartbeat.
  const fleet = once(() => {
    const { groups, runnerConfigPrefix } = link("Fleet");
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
        now,
      });
    });
  });
  const gitlab = once(() => {
    const token = secretValue(link("GitlabApiToken"));
    if (!token) return undefined;
    if (!options.gitlabClient)
      throw new Error("this function has no GitLab client: it does not look up tags");
    return options.gitlabClient({ url: config().gitlabUrl, token });
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

  const scalingDeps: ScalingDeps = {
    get pools() {
      return config().pools;
    },
    get ledger() {
      return ledger();
    },
    get registry() {
      return registry();
    },
    get journal() {
      return journal();
    },
    get leases() {
      return leases();
    },
    get poolStates() {
      return poolStates();
    },
    get fleet() {
      return fleet();
    },
    get gitlab() {
      return gitlab();
    },
    now,
  };

  return {
    link,
    stage,
    pools: () => config().pools,
    log,
    logger: powertools,
    metrics,
    store,
    ledger,
    registry,
    journal,
    leases,
    poolStates,
    fleet,
    gitlab,
    startScaleFleet,
    scalingDeps,
    now,
  };
}
