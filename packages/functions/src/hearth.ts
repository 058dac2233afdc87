import { type ReconciliationSettings, reconciliationSchema } from "@hearth/core/config";
import type { FleetPort } from "@hearth/core/fleet";
import type { RunnerScope } from "@hearth/core/github-api";
import type { ScopeRunners } from "@hearth/core/github-api/runners";
import type { GitLabJobs } from "@hearth/core/gitlab-api";
import type { HeartbeatHold } from "@hearth/core/heartbeat";
import { createInstanceRegistry, type InstanceRegistry } from "@hearth/core/instances";
import { createInterruptionRecords, type InterruptionDeps } from "@hearth/core/interruptions";
import type { Job } from "@hearth/core/jobs";
import { createJournal, type Journal } from "@hearth/core/journal";
import { createLeases, type Leases } from "@hearth/core/leases";
import { createLedger, type Ledger } from "@hearth/core/ledger";
import type { PollDeps, PollReport } from "@hearth/core/polling";
import { loadPollReport } from "@hearth/core/polling/report";
import type { PoolConfig } from "@hearth/core/pools";
import {
  createRetryHolds,
  createRetryRecords,
  holdState,
  markJobsInterrupted,
  needsRetry,
  type RetryDeps,
  type RetryForges,
  retryAfterJobRecorded,
  retryAfterRunCompleted,
  retryHeld,
} from "@hearth/core/retries";
import { createRunnerRecords, type GitLabRunnerPort, type RunnerDeps } from "@hearth/core/runners";
import {
  createScalingRecords,
  leaseNotices,
  requestScale,
  type ScalingDeps,
  type ScalingRecords,
  type StartRun,
  type TickSummary,
} from "@hearth/core/scaling";
import { type AfterRecorded, afterJobRecorded } from "@hearth/core/scaling/after-recorded";
import { storePlacement } from "@hearth/core/stores/placement";
import type { SweepDeps, SweepGitLab } from "@hearth/core/sweep";
import type { Store } from "@hearth/core/table";
import type { AgentDeps } from "./agent";
import { createApp } from "./app";
import type { StartHandleInterruption } from "./interruptions";
import type { Logger } from "./log";

/**
 * The composition root: Hearth built from its ports, the same for the Lambdas and for local mode.
 * The hosts differ only in what they pass here (aws/runtime.ts, local/server.ts). Every port is read
 * on first use, so a Lambda reads only the links its own work needs.
 */

export type { StartHandleInterruption };

/** GitHub's runners of a scope (a repository, or an organization's runner group), as the App sees them. */
export type GitHubRunners = (scope: RunnerScope) => ScopeRunners;

export type { GitLabRunnerManagers } from "@hearth/core/gitlab-api";

/** The GitLab runner managers client, and each pool's runner token (`glrt-…`), if it has one. */
export type GitLabRunners = GitLabRunnerPort;

export interface HearthPorts {
  /** The table: DynamoDB's endpoint (AWS, or embedded dynalite) and the table's name. */
  store(): Store;
  pools(): readonly PoolConfig[];
  /** The AWS driver, or the simulated fleet. */
  fleet(): FleetPort;
  /** GitLab's API for tag lookups; undefined when none is configured (tags are then unknown). */
  gitlab(): GitLabJobs | undefined;
  /**
   * GitHub's runners API for a scope (the App's installation there, or a local token); undefined
   * when no GitHub credentials are configured: no GitHub runner is then registered.
   */
  github?(): GitHubRunners | undefined;
  /** Records that the GitHub App failed to authenticate for a pool (the alarm's metric in AWS). */
  githubAuthFailed?(pool: string): void;
  /** GitLab's runner managers with the pools' tokens; undefined when no pool has a token. */
  gitlabRunners?(): GitLabRunners | undefined;
  /** Counts a retry Hearth asked of a forge for an interrupted job (the `Retries` metric in AWS). */
  retried?(pool: string): void;
  /** Reconciliation's settings (`reconciliation` in hearth.config.json); its defaults when absent. */
  reconciliation?(): ReconciliationSettings;
  /** GitLab's list API with the API token, for the sweep; undefined when no API token is configured. */
  gitlabLists?(): SweepGitLab | undefined;
  /** StartExecution in AWS; aws-local-stepfunctions locally. */
  startScaleFleet(): StartRun;
  /**
   * HandleInterruption for a notice an agent reports (StartExecution in AWS, aws-local-stepfunctions
   * locally); absent: reports are only recorded.
   */
  startHandleInterruption?(): StartHandleInterruption;
  /**
   * How polling reads the forges (the App's client, GitLab's lists) and its settings; undefined, or
   * a forge left out, when it is not configured.
   */
  polling?(): Promise<PollingPorts | undefined>;
  /** A new run's name, which is also its lease holder. */
  holder(pool: string): string;
  /**
   * How work runs that may follow the answer (a GitLab tag lookup). A Lambda freezes once it has
   * answered, so there it runs before the answer, within the lookup's budget; locally, after it.
   */
  background(task: () => Promise<void>): Promise<void>;
  log: Logger;
  now(): Date;
}

/** Polling's forge clients (`rateLimitRetries: 0` for GitHub's) and `reconciliation` settings. */
export type PollingPorts = Pick<PollDeps, "github" | "gitlab">;

/** What only a host that serves HTTP gives: the webhook secrets, the status page's, the agent's identity. */
export interface HttpPorts {
  secrets: {
    githubWebhookSecret: string | undefined;
    gitlabWebhookToken: string | undefined;
    gitlabSigningToken: string | undefined;
  };
  status: { stage: string; token: string | undefined; allowOrigin?: string };
  /** The instance a heartbeat comes from: IAM in AWS, a token (or a signed STS request) locally. */
  identify: AgentDeps["identify"];
  /** What a caller `identify` cannot name gets (`AgentDeps.unidentified`; 401 unless said). */
  unidentified?: AgentDeps["unidentified"];
}

export interface Hearth {
  ledger(): Ledger;
  registry(): InstanceRegistry;
  journal(): Journal;
  leases(): Leases;
  scalingRecords(): ScalingRecords;
  /**
   * ScaleFleet's dependencies; each is built when a step first touches it. The steps themselves
   * (`scaleFleetTasks`) are bound by the hosts that run them, so that the API function's bundle leaves
   * the fleet's SDK clients out.
   */
  scaling: ScalingDeps;
  /** HandleInterruption's dependencies (its steps, `handleInterruptionTasks`, are bound by the hosts). */
  interruptions: InterruptionDeps;
  /** The sweep's dependencies, loaded at its first step (its steps, `sweepTasks`, are bound by the hosts). */
  sweep(): Promise<SweepDeps>;
  /** A webhook recorded a queued job: its tags, its pool, a spare slot or a run (core's `afterJobRecorded`). */
  afterJobRecorded(job: Job): Promise<AfterRecorded>;
  /**
   * A spot warning for an instance: the jobs it runs are marked interrupted, to be retried once their
   * forge has ended them (HandleInterruption's `onJobsInterrupted`).
   */
  onJobsInterrupted(notice: { instanceId: string; pool: string; at: string }): Promise<void>;
  /** Retries' dependencies (the forges' retry calls, read when first used). */
  retries: RetryDeps;
  /** The minute tick: forecast, missed webhooks, ScaleFleet for pools with work. */
  tick(): Promise<TickSummary>;
  /**
   * One poll of the forges for jobs whose webhook was missed: what it finds is recorded as a webhook's
   * job, and its pool scaled for as a webhook's (core's `pollOnce`).
   */
  poll(): Promise<PollReport>;
  /** The HTTP surface: webhooks, status, heartbeats. */
  app(http: HttpPorts): ReturnType<typeof createApp>;
}

function once<T>(make: () => T): () => T {
  let made: { value: T } | undefined;
  return () => {
    made ??= { value: make() };
    return made.value;
  };
}

/**
 * `plain`, with each of `getters` read through on every access: a dependency is built when first
 * used (most of them once, by `once`), so a host never builds what its path does not touch.
 */
function lazily<G extends Record<string, () => unknown>, P extends object>(
  getters: G,
  plain: P,
): P & { readonly [K in keyof G]: ReturnType<G[K]> } {
  const target = { ...plain };
  for (const [name, get] of Object.entries(getters)) {
    Object.defineProperty(target, name, { get, enumerable: true });
  }
  return target as P & { readonly [K in keyof G]: ReturnType<G[K]> };
}

export function composeHearth(ports: HearthPorts): Hearth {
  const { log } = ports;
  const ledger = once(() => createLedger(ports.store()));
  const registry = once(() => createInstanceRegistry(ports.store()));
  const journal = once(() => createJournal(ports.store()));
  const leases = once(() => createLeases(ports.store()));
  const scalingRecords = once(() => createScalingRecords(ports.store()));
  const runnerRecords = once(() => createRunnerRecords(ports.store()));
  const gitlab = once(() => ports.gitlab());
  // Runner identity. Each forge's port is read when first used: the API function mints with the App
  // and never reads the GitLab runner tokens.
  const github = once(() => {
    const port = ports.github?.();
    const scoped = ports.pools().filter((pool) => pool.github);
    if (!port && scoped.length) {
      log.warn("no GitHub credentials are configured: these pools' GitHub runners are not registered", {
        pools: scoped.map((pool) => pool.name).join(","),
      });
    }
    return port;
  });
  const gitlabRunners = once(() => ports.gitlabRunners?.());
  const runners = once(
    (): RunnerDeps => ({
      records: runnerRecords(),
      fleet: ports.fleet(),
      get github() {
        return github();
      },
      get gitlab() {
        return gitlabRunners();
      },
      journal: journal(),
      now: () => ports.now(),
      authFailed: (_error, pool) => ports.githubAuthFailed?.(pool),
      log,
    }),
  );

  const scaling: ScalingDeps = lazily(
    {
      pools: () => ports.pools(),
      ledger,
      registry,
      journal,
      leases,
      scalingRecords,
      fleet: () => ports.fleet(),
      gitlab,
      runners,
      hold: () => holdFor("run"),
    },
    { now: () => ports.now() },
  );
  const retryRecords = once(() => createRetryRecords(ports.store()));
  const retryHolds = once(() => createRetryHolds(ports.store()));
  const forges: RetryForges = {
    get gitlab() {
      const api = gitlab();
      const retryJob = api?.retryJob;
      return retryJob
        ? { retryJob: (project: string, job: string) => retryJob.call(api, project, job) }
        : undefined;
    },
    get github() {
      const port = github();
      if (!port) return undefined;
      return {
        async rerunFailedJobs(repository: string, runId: string) {
          const runners = port({ repository });
          if (!runners.rerunFailedJobs) throw new Error("this GitHub client cannot re-run jobs");
          return runners.rerunFailedJobs(runId);
        },
      };
    },
  };
  const retries: RetryDeps = lazily(
    { ledger, registry, journal, records: retryRecords, pools: () => ports.pools(), holds: retryHolds },
    {
      forges,
      now: () => ports.now(),
      retried: (pool: string) => ports.retried?.(pool),
      // Read when a run is started: from ScaleFleet's own Observe the lease is held, and none is.
      requestRun: (pool: string) =>
        requestScale(
          scaling,
          pool,
          (p, holder, how) => ports.startScaleFleet()(p, holder, how),
          ports.holder(pool),
          {
            covered: false,
          },
        ),
    },
  );
  /**
   * The retry hold as the heartbeat and ScaleFleet's Observe see it. After a heartbeat, waiting
   * retries are tried as background work (a Lambda does it before answering); Observe waits for them.
   */
  function holdFor(caller: "heartbeat" | "run"): HeartbeatHold {
    return {
      state: (pool) => holdState(retries, pool),
      retryPending: async (pool) => {
        const task = async () => {
          for (const outcome of await retryHeld(retries, pool)) {
            if (outcome.kind !== "held") log.info("held retry", { pool, outcome: outcome.kind });
          }
        };
        if (caller === "run") return task();
        return ports.background(async () => {
          try {
            await task();
          } catch (error) {
            log.warn("could not try the pool's held retries", {
              pool,
              error: error instanceof Error ? error.message : String(error),
            });
          }
        });
      },
    };
  }
  /** A spot warning: the jobs the instance runs are marked, to be retried once their forge ends them. */
  async function onJobsInterrupted(notice: { instanceId: string; pool: string; at: string }): Promise<void> {
    const marked = await markJobsInterrupted(retries, notice);
    if (marked.length) {
      log.info("jobs marked interrupted", { instance: notice.instanceId, jobs: marked.length });
    }
    // A job whose failure was recorded before the warning was handled gets no later event: retry it now.
    for (const key of marked) {
      const job = await retries.ledger.get(key);
      if (job && needsRetry(job)) await retryAfterJobRecorded(retries, job);
    }
  }

  const interruptionRecords = once(() => createInterruptionRecords(ports.store()));
  const interruptions: InterruptionDeps = lazily(
    {
      pools: () => ports.pools(),
      registry,
      records: interruptionRecords,
      fleet: () => ports.fleet(),
      journal,
      leases,
      scalingRecords,
      runners,
      startScaleFleet: () => ports.startScaleFleet(),
    },
    { holder: (pool: string) => ports.holder(pool), onJobsInterrupted, now: () => ports.now(), log },
  );
  // The sweep. Its forge calls go through rate governors per token, within reconciliation's share.
  const reconciliation = once(() => ports.reconciliation?.() ?? reconciliationSchema.parse({}));
  // Loaded by the sweep alone: the API function's bundle leaves its marks and governors out.
  const sweep = once(async (): Promise<SweepDeps> => {
    const [{ createSweepGovernors, storedSweepBudget }, { createSweepMarks }] = await Promise.all([
      import("@hearth/core/sweep/governors"),
      import("@hearth/core/sweep/marks"),
    ]);
    const sweepGovernors = once(() => createSweepGovernors(reconciliation(), () => ports.now().getTime()));
    return lazily(
      {
        pools: () => ports.pools(),
        ledger,
        registry,
        journal,
        fleet: () => ports.fleet(),
        runners,
        gitlab: once(() => ports.gitlabLists?.()),
        marks: once(() => createSweepMarks(ports.store())),
        governors: sweepGovernors,
        // Polling's stored governors: the two keep under one share of each token's budget together.
        budget: once(() =>
          storedSweepBudget({ store: ports.store(), leases: leases(), governors: sweepGovernors() }),
        ),
        settings: once(() => ({ dryRun: reconciliation().dryRun })),
      },
      { retries, now: () => ports.now() },
    );
  });

  // Which run holds a pool, when a job starts none: once a minute per pool (and per container).
  const leaseHeld = leaseNotices(scaling, (fields) =>
    log.info("a ScaleFleet run already holds the pool's lease; it scales for this job", fields),
  );

  const afterRecorded = async (job: Job): Promise<AfterRecorded> => {
    const result = await afterJobRecorded(
      {
        pools: scaling.pools,
        ledger: scaling.ledger,
        leases: scaling.leases,
        scalingRecords: scaling.scalingRecords,
        gitlab: scaling.gitlab,
        startScaleFleet: ports.startScaleFleet(),
        holder: ports.holder,
      },
      job,
    );
    switch (result.kind) {
      case "requested":
        log.info("scale requested", {
          pool: result.pool,
          job: job.id,
          outcome: result.outcome,
          tags: result.tags,
        });
        if (result.outcome === "running") await leaseHeld(result.pool);
        break;
      case "tags_pending":
        log.warn("gitlab tag lookup failed; the tick looks again", {
          job: job.id,
          project: job.projectId,
          error: result.error,
        });
        break;
      default:
        break;
    }
    return result;
  };

  return {
    ledger,
    registry,
    journal,
    leases,
    scalingRecords,
    scaling,
    interruptions,
    sweep,
    afterJobRecorded: afterRecorded,
    retries,
    onJobsInterrupted,
    async tick() {
      // Loaded by the tick alone: the API function's bundle leaves it out.
      const { tick } = await import("@hearth/core/scaling/tick");
      const summary = await tick(scaling, ports.startScaleFleet(), ports.holder);
      for (const run of summary.runs) if (run.outcome === "running") await leaseHeld(run.pool);
      return summary;
    },
    async poll() {
      // Loaded by the poll alone: the API function's bundle leaves the forges' listings out.
      const [{ pollOnce, pollFigures }, polling] = await Promise.all([
        import("@hearth/core/polling"),
        ports.polling?.(),
      ]);
      // Read first, as a webhook's path would: what the poll finds may start a run.
      ports.startScaleFleet();
      const report = await pollOnce({
        store: ports.store(),
        ledger: ledger(),
        leases: leases(),
        journal: journal(),
        pools: ports.pools(),
        github: polling?.github,
        gitlab: polling?.gitlab,
        budgetShare: reconciliation().budgetShare,
        pollMinutes: reconciliation().pollMinutes,
        scale: afterRecorded,
        // As the webhooks' path does: a poll's job may be an interrupted one that failed, or a re-run's.
        recorded: async (job) => {
          try {
            const outcome = await retryAfterJobRecorded(retries, job);
            if (outcome.kind !== "none")
              log.info("job retry", { source: job.source, job: job.id, outcome: outcome.kind });
          } catch (error) {
            log.error("job retry failed", {
              source: job.source,
              job: job.id,
              error: error instanceof Error ? error.message : String(error),
            });
          }
        },
        holder: ports.holder("poll"),
        now: () => ports.now(),
      });
      log.info("poll", {
        ...pollFigures(report),
        skipped: report.forges
          .filter((forge) => forge.status === "skipped")
          .map((forge) => forge.forge)
          .join(","),
      });
      return report;
    },
    app(http) {
      const pools = ports.pools();
      return createApp({
        ledger: ledger(),
        log,
        now: () => ports.now(),
        github: { secret: http.secrets.githubWebhookSecret },
        gitlab: { token: http.secrets.gitlabWebhookToken, signingToken: http.secrets.gitlabSigningToken },
        background: (task) => ports.background(task),
        afterJobRecorded: async (job) => {
          await afterRecorded(job);
        },
        retries: {
          afterJobRecorded: (job) => retryAfterJobRecorded(retries, job),
          afterRunCompleted: (run) => retryAfterRunCompleted(retries, run),
        },
        agent: {
          registry: registry(),
          ledger: ledger(),
          journal: journal(),
          fleet: ports.fleet(),
          pools,
          runners: runners(),
          startInterruption: ports.startHandleInterruption?.(),
          hold: holdFor("heartbeat"),
          placement: storePlacement({
            ledger: ledger(),
            registry: registry(),
            pools,
            now: () => ports.now(),
            log,
          }),
          now: () => ports.now(),
          identify: http.identify,
          ...(http.unidentified ? { unidentified: http.unidentified } : {}),
        },
        status: {
          pools,
          ledger: ledger(),
          registry: registry(),
          journal: journal(),
          scalingRecords: scalingRecords(),
          runnerRecords: runnerRecords(),
          retryHolds: retryHolds(),
          pollReport: () => loadPollReport(ports.store()),
          now: () => ports.now(),
          ...http.status,
        },
      });
    },
  };
}
