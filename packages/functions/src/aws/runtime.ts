import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { type FleetPort, lazyFleet } from "@hearth/core/fleet";
import type { GitHubClientConfig } from "@hearth/core/github-api/client";
import type { ScopeRunners } from "@hearth/core/github-api/runners";
import type { GitLabApiConfig, GitLabJobs } from "@hearth/core/gitlab-api";
import type { PoolConfig } from "@hearth/core/pools";
import type { StartRun } from "@hearth/core/scaling";
import type { SweepGitLab } from "@hearth/core/sweep";
import type { Store } from "@hearth/core/table";
import { Resource } from "sst/resource";
import {
  composeHearth,
  type GitHubRunners,
  type GitLabRunnerManagers,
  type GitLabRunners,
  type Hearth,
  type PollingPorts,
  type StartHandleInterruption,
} from "../hearth";
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
  /** Makes the GitLab runner managers client; by default `createGitLabRunnerManagers`, loaded at the first call. */
  gitlabRunnerManagers?: (config: { url: string }) => GitLabRunnerManagers;
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

/**
 * The GitLab API client, loaded at the first lookup: the API function loads it only when a GitLab
 * job's tags are unknown, so its init stays small.
 */
const lazyGitLabClient = (config: GitLabApiConfig): GitLabJobs => {
  const client = once(async () => (await import("@hearth/core/gitlab-api/client")).createGitLabJobs(config));
  return {
    tagList: async (project, job) => (await client()).tagList(project, job),
    retryJob: async (project, job) => {
      const loaded = await client();
      if (!loaded.retryJob) throw new Error("this GitLab client cannot retry jobs");
      return loaded.retryJob(project, job);
    },
  };
};

/**
 * GitHub's runner API through the App, loaded at the first call: Octokit, its plugins and the JWT
 * signing take a while to load, and most invocations make no GitHub call. One client (installation
 * tokens cached and renewed) and one minting budget per container, shared by every scope.
 */
export function lazyGitHubRunners(config: GitHubClientConfig): GitHubRunners {
  const loaded = once(async () => {
    const [{ createGitHubClient }, { MintingBudget, runnersFor }] = await Promise.all([
      import("@hearth/core/github-api/client"),
      import("@hearth/core/github-api/runners"),
    ]);
    return { client: createGitHubClient(config), budget: new MintingBudget(), runnersFor };
  });
  const scopes = new Map<string, Promise<ScopeRunners>>();
  const runnersOf = (key: string, scope: Parameters<GitHubRunners>[0]) => {
    let runners = scopes.get(key);
    if (!runners) {
      runners = loaded().then(({ client, budget, runnersFor }) => runnersFor(client, scope, budget));
      scopes.set(key, runners);
    }
    return runners;
  };
  return (scope) => {
    const key = JSON.stringify(scope);
    return {
      generateJitConfig: async (request) => (await runnersOf(key, scope)).generateJitConfig(request),
      deleteRunner: async (runnerId) => (await runnersOf(key, scope)).deleteRunner(runnerId),
      rerunFailedJobs: async (runId) => {
        const runners = await runnersOf(key, scope);
        if (!runners.rerunFailedJobs) throw new Error("only a repository's runs can be re-run");
        return runners.rerunFailedJobs(runId);
      },
      // The sweep's reads: the scope's runners, one runner, one job, and the rate bucket they count in.
      bucket: async () => {
        const runners = await runnersOf(key, scope);
        if (!runners.bucket) throw new Error("this GitHub client cannot say its rate bucket");
        return runners.bucket();
      },
      listRunners: async (page) => {
        const runners = await runnersOf(key, scope);
        if (!runners.listRunners) throw new Error("this GitHub client cannot list runners");
        return runners.listRunners(page);
      },
      getRunner: async (runnerId) => {
        const runners = await runnersOf(key, scope);
        if (!runners.getRunner) throw new Error("this GitHub client cannot read a runner");
        return runners.getRunner(runnerId);
      },
      getJob: async (jobId) => {
        const runners = await runnersOf(key, scope);
        if (!runners.getJob) throw new Error("this GitHub client cannot read a job");
        return runners.getJob(jobId);
      },
    };
  };
}

/** The GitLab runner managers client, loaded at the first call (plain fetch, no gitbeaker). */
async function loadGitLabRunnerManagers(config: { url: string }): Promise<GitLabRunnerManagers> {
  return (await import("@hearth/core/gitlab-api/runner-client")).createGitLabRunnerManagers(config);
}

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
  /**
   * GitHub's runners per scope, through the App (`GithubAppId`, `GithubAppPrivateKey`) at the stage's
   * `githubApiUrl`; undefined when the App is not configured. Made once per container.
   */
  github(): GitHubRunners | undefined;
  /** Counts a GitHub App authentication failure for `pool` (the `GitHubAuthErrors` metric and its alarm). */
  githubAuthFailed(pool: string): void;
  /** GitLab's runner managers and each pool's runner token; undefined when no pool has a token. */
  gitlabRunners(): GitLabRunners | undefined;
  startScaleFleet(): StartRun;
  /**
   * Polling's clients: the App's (no retry on a rate limit: the governor answers it) and GitLab's
   * lists with the API token, each loaded at the first poll; a forge left out when not configured.
   */
  polling(): Promise<PollingPorts | undefined>;
  /** StartExecution of HandleInterruption, named by instance and notice; reads its link at the first start. */
  startHandleInterruption(): StartHandleInterruption;
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
  const github = once((): GitHubRunners | undefined => {
    // Both read, so that a function reads every link it declares whether or not the App is set.
    const appId = secretValue(link("GithubAppId"));
    const privateKey = secretValue(link("GithubAppPrivateKey"));
    if (!appId || !privateKey) {
      if (appId || privateKey) {
        log.warn("the GitHub App is half configured: no GitHub runner is minted", {
          missing: appId ? "GithubAppPrivateKey" : "GithubAppId",
        });
      }
      return undefined;
    }
    return lazyGitHubRunners({
      credentials: { kind: "app", appId, privateKey },
      baseUrl: config().githubApiUrl,
    });
  });
  // The sweep lists pool runners' managers and reads jobs with the API token; loaded at its first call.
  const gitlabLists = once((): SweepGitLab | undefined => {
    const token = secretValue(link("GitlabApiToken"));
    if (!token) return undefined;
    const url = config().gitlabUrl;
    const lists = once(async () =>
      (await import("@hearth/core/gitlab-api/job-lists")).createGitLabLists({ url, token }),
    );
    return { url, lists: { page: async (path) => (await lists()).page(path) } };
  });
  const githubAuthFailed = (pool: string) => metrics().githubAuthFailure(pool);
  const gitlabRunners = once((): GitLabRunners | undefined => {
    const tokens = new Map(
      Object.entries(link("GitlabRunnerTokens").tokens).flatMap(([pool, token]) =>
        token.trim() ? [[pool, token.trim()] as const] : [],
      ),
    );
    if (tokens.size === 0) return undefined;
    const url = config().gitlabUrl;
    const managers = once(async () =>
      options.gitlabRunnerManagers
        ? options.gitlabRunnerManagers({ url })
        : loadGitLabRunnerManagers({ url }),
    );
    return {
      managers: {
        deleteManager: async (token, systemId) => (await managers()).deleteManager(token, systemId),
        runnerId: async (token) => (await managers()).runnerId(token),
      },
      tokenOf: (pool) => tokens.get(pool),
    };
  });
  const startScaleFleet = once((): StartRun => {
    const { stateMachineArn } = link("ScaleFleet");
    // Loaded on the first run to start: most webhooks find capacity and start none.
    const client = once(async () => {
      const sdk = await import("@aws-sdk/client-sfn");
      return { sfn: new sdk.SFNClient({}), StartExecutionCommand: sdk.StartExecutionCommand };
    });
    return async (pool, holder, how) => {
      const { sfn, StartExecutionCommand } = await client();
      await sfn.send(
        new StartExecutionCommand({
          stateMachineArn,
          name: holder,
          input: JSON.stringify({
            pool,
            holder,
            iteration: 0,
            maxIterations: config().maxIterations,
            ...(how?.supersede ? { supersede: true } : {}),
          }),
        }),
      );
    };
  });

  // Read when a heartbeat first reports a notice (rare): the API function's other work never reads it.
  const interruptionMachine = once(() => link("HandleInterruption").stateMachineArn);
  const sfnClient = once(async () => {
    const sdk = await import("@aws-sdk/client-sfn");
    return { sfn: new sdk.SFNClient({}), sdk };
  });
  const startHandleInterruption = once(
    (): StartHandleInterruption => async (notice) => {
      const stateMachineArn = interruptionMachine();
      const { sfn, sdk } = await sfnClient();
      const { handleInterruptionExecutionName } = await import("@hearth/core/workflows");
      try {
        await sfn.send(
          new sdk.StartExecutionCommand({
            stateMachineArn,
            name: handleInterruptionExecutionName(notice.instanceId, notice.kind),
            input: JSON.stringify({ notice }),
          }),
        );
        return "started";
      } catch (error) {
        // The same instance and notice started before (a heartbeat retried): that execution handles it.
        if ((error as { name?: string })?.name === "ExecutionAlreadyExists") return "already-started";
        throw error;
      }
    },
  );

  const polling = once(async (): Promise<PollingPorts | undefined> => {
    const { githubApiUrl, gitlabUrl } = config();
    const appId = secretValue(link("GithubAppId"));
    const privateKey = secretValue(link("GithubAppPrivateKey"));
    const gitlabToken = secretValue(link("GitlabApiToken"));
    const [github, gitlab] = await Promise.all([
      appId && privateKey
        ? import("@hearth/core/github-api/client").then(({ createGitHubClient }) => ({
            client: createGitHubClient({
              credentials: { kind: "app", appId, privateKey },
              baseUrl: githubApiUrl,
              rateLimitRetries: 0,
            }),
          }))
        : undefined,
      gitlabToken
        ? import("@hearth/core/gitlab-api/job-lists").then(({ createGitLabLists }) => ({
            lists: createGitLabLists({ url: gitlabUrl, token: gitlabToken }),
            url: gitlabUrl,
          }))
        : undefined,
    ]);
    return { github, gitlab };
  });

  const hearth = composeHearth({
    store,
    pools: () => config().pools,
    fleet,
    gitlab,
    github,
    githubAuthFailed,
    retried: (pool) => metrics().retry(pool),
    reconciliation: () => config().reconciliation,
    gitlabLists,
    gitlabRunners,
    startScaleFleet,
    startHandleInterruption,
    polling,
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
    github,
    githubAuthFailed,
    gitlabRunners,
    startScaleFleet,
    polling,
    startHandleInterruption,
    now,
  };
}
