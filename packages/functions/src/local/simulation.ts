import type { Clock } from "@hearth/core/clock";
import type { Ledger } from "@hearth/core/ledger";
import type { PoolConfig } from "@hearth/core/pools";
import type { SimulatedFleet } from "@hearth/core/simulation/fleet";
import {
  type ForgeJob,
  type ForgeRequest,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  type RunInfo,
  workflowJobPayload,
  workflowRunPayload,
} from "@hearth/core/simulation/forge";
import { SimulatedDeliveries } from "@hearth/core/simulation/forge/deliveries";
import { SimulatedListingFaults } from "@hearth/core/simulation/forge/faults";
import { type SimJobStatus, SimulatedForgeJobs } from "@hearth/core/simulation/forge/jobs";
import { SimulatedForgeRunners } from "@hearth/core/simulation/forge/runners";
import type { Hono } from "hono";
import type { EventOutcome } from "../interruptions";
import type { Logger } from "../log";
import { type SimulationFiles, simulationFiles } from "./sim-files";
import { type SimForgeRouteOptions, simForgeRoutes } from "./sim-forge-routes";
import { simRoutes } from "./sim-routes";
import { SimulatedRunners } from "./sim-runners";
import { simSweepRoutes } from "./sim-sweep-routes";

/**
 * The simulated machines' side of local mode: runners on the simulated fleet's instances, which claim
 * jobs and send the forge's webhooks to `app`; the simulated forges' runners (GitHub's JIT runners, a
 * GitLab runner per pool and its managers) and their APIs; the simulation routes (`/sim/…`); and, with
 * `--data`, the snapshots that let the machines outlive the process, as real ones would.
 */
export interface LocalSimulation {
  runners: SimulatedRunners;
  forge: SimulatedForgeRunners;
  /** The simulated forges' jobs and runs: GitLab's retry and GitHub's re-run act on them. */
  forgeJobs: SimulatedForgeJobs;
  /** Every webhook the simulated forges sent (or dropped, at the loss rate), for redelivery. */
  deliveries: SimulatedDeliveries;
  /** Faults injected into the forges' runner listings (`PUT /sim/forge/faults`). */
  faults: SimulatedListingFaults;
  files: SimulationFiles | null;
  /** Picks up where the saved simulation was, before the first tick or request can look at it. */
  restore(): Promise<void>;
}

export function attachSimulation(options: {
  fleet: SimulatedFleet;
  app: Hono;
  ledger: Ledger;
  pools: readonly PoolConfig[];
  clock: Clock;
  log: Logger;
  secrets: {
    githubWebhookSecret: string;
    gitlabWebhookToken: string;
    gitlabSigningToken: string | undefined;
  };
  statusToken: string | undefined;
  dataDir: string | undefined;
  /** EventBridge events, each starting HandleInterruption: `POST /sim/aws/events`, and the fleet's own. */
  interruptionEvents?: (body: unknown) => Promise<EventOutcome[]>;
  /** The share of the forges' webhooks dropped at random (`--webhook-loss`); none by default. */
  webhookLoss?: number;
  /** Seeds which deliveries are dropped. */
  seed?: number;
  /** The GitHub App local mode polls as, whose JWT the simulated GitHub accepts. */
  githubApp?: SimForgeRouteOptions["app"];
  /** A sweep run now, answered with its survey and outcomes (`POST /sim/sweep`). */
  sweep?: () => Promise<unknown>;
}): LocalSimulation {
  const { fleet, app } = options;
  let files: SimulationFiles | null = null;
  const forge = new SimulatedForgeRunners({
    now: () => options.clock.now(),
    changed: () => files?.changed("state"),
  });
  const forgeJobs = new SimulatedForgeJobs({
    changed: () => files?.changed("state"),
    now: () => options.clock.now(),
  });
  const post = async (path: string, init: { headers: Record<string, string>; body: string }) => {
    const response = await app.request(path, { method: "POST", ...init });
    return { status: response.status, body: await response.text() };
  };
  // Every webhook the forges send goes through their deliveries: recorded, and dropped at the loss rate.
  const deliveries = new SimulatedDeliveries({
    send: (request) => post(request.path, { headers: request.headers, body: request.body }),
    now: () => options.clock.now(),
    lossRate: options.webhookLoss ?? 0,
    seed: options.seed ?? 1,
  });
  const deliver = async (request: ForgeRequest): Promise<{ status: number; body: string }> => {
    try {
      const record = await deliveries.deliver(request);
      return { status: record.statusCode, body: "" };
    } catch (error) {
      options.log.warn("simulated forge webhook failed", {
        path: request.path,
        error: error instanceof Error ? error.message : String(error),
      });
      return { status: 0, body: "" };
    }
  };
  /** What the forge learns from a webhook it sends: a job's status, and so a run's completion. */
  const observe = async (path: string, init: { headers: Record<string, string>; body: string }) => {
    const seen = observedJob(path, init);
    if (!seen) return;
    const completed = forgeJobs.observe(seen.job, seen.status, seen.run);
    if (!completed) return;
    const now = new Date(options.clock.now()).toISOString();
    const request = githubDelivery(
      workflowRunPayload({ ...completed, createdAt: now, updatedAt: now }),
      options.secrets,
      "workflow_run",
    );
    await deliver(request);
  };
  /** A job's `queued` webhook, as the forge sends it when it queues the job. */
  const queuedDelivery = (job: ForgeJob): ForgeRequest => {
    const createdAt = new Date(options.clock.now()).toISOString();
    return job.source === "github"
      ? githubDelivery(workflowJobPayload(job, "queued", { createdAt }), options.secrets)
      : gitlabDelivery(jobHookPayload(job, "pending", { createdAt }), options.secrets, new Date(createdAt));
  };
  /** Jobs a retry or re-run created: described with their first run's durations, then queued. */
  const retried = (jobs: ForgeJob[]) => {
    const described = jobs.map((job) => ({
      job,
      ...(forgeJobs.durations(job) ?? { warmSeconds: 60, coldSeconds: 60 }),
    }));
    runners.describe(described);
    // The forge sends the new jobs' webhooks after it has answered the API call.
    setTimeout(async () => {
      for (const job of jobs) await deliver(queuedDelivery(job));
    }, 0);
  };
  const runners = new SimulatedRunners({
    fleet,
    ledger: options.ledger,
    pools: options.pools,
    clock: options.clock,
    log: options.log,
    secrets: options.secrets,
    send: async (path, init) => {
      // Written before the control plane hears of it (see sim-files.ts).
      files?.flush("state");
      // Heartbeats go straight to the control plane; webhooks are the forge's deliveries.
      const answer = path.startsWith("/webhooks/")
        ? await deliver({ path: path as ForgeRequest["path"], ...init })
        : await post(path, init);
      // The forge's state changes whether or not its webhook arrived.
      await observe(path, init);
      return answer;
    },
    described: (jobs) => {
      for (const { job, warmSeconds, coldSeconds } of jobs) forgeJobs.add(job, { warmSeconds, coldSeconds });
    },
    forge,
    readRunnerConfig: (instanceId, parameter) => fleet.readRunnerConfig(instanceId, parameter),
    changed: (part) => files?.changed(part),
  });
  if (options.dataDir) {
    files = simulationFiles(options.dataDir, {
      state: () => {
        const { jobs: _jobs, ...rest } = runners.snapshot();
        return {
          fleet: fleet.snapshot(),
          runners: rest,
          forge: forge.snapshot(),
          forgeJobs: forgeJobs.snapshot(),
        };
      },
      jobs: () => runners.describedJobs(),
    });
  }
  fleet.subscribe({
    changed: () => files?.changed("state"),
    // What EC2 puts on the default bus when it interrupts an instance goes where the rules send it.
    awsEvent: async (event) => {
      try {
        await options.interruptionEvents?.(event);
      } catch (error) {
        options.log.error("a simulated spot event was not handled", {
          error: error instanceof Error ? error.message : String(error),
        });
      }
    },
  });
  simRoutes(app, runners, {
    token: options.statusToken,
    described: () => files?.flush("jobs"),
    interruptionEvents: options.interruptionEvents,
    gitlabJob: (project, job) => forgeJobs.gitlabJob(project, job),
    fleet,
    forge: {
      async create(jobs, webhook) {
        let delivered = 0;
        let dropped = 0;
        if (webhook === "none") return { delivered, dropped };
        for (const { job } of jobs) {
          const record = await deliveries.deliver(queuedDelivery(job));
          if (record.statusCode >= 200 && record.statusCode < 400) delivered += 1;
          else dropped += 1;
        }
        return { delivered, dropped };
      },
      webhookLoss: {
        get: () => deliveries.lossRate,
        set: (rate) => {
          deliveries.lossRate = rate;
        },
      },
    },
  });
  const faults = new SimulatedListingFaults();
  simSweepRoutes(app, {
    forge,
    faults,
    runners,
    pools: options.pools,
    written: () => files?.flush("state"),
    ...(options.sweep ? { sweep: options.sweep } : {}),
  });
  simForgeRoutes(app, forge, {
    token: options.statusToken,
    written: () => files?.flush("state"),
    jobs: { forge: forgeJobs, retried },
    deliveries,
    ...(options.githubApp ? { app: options.githubApp } : {}),
    faults,
    now: () => options.clock.now(),
  });
  // Each pool's GitLab runner, made once (a restored one is kept, token and all).
  const poolRunners = () => {
    for (const pool of options.pools) {
      forge.gitlab.poolRunner(pool.name, { tagList: pool.labels, runUntagged: pool.untagged });
    }
  };
  return {
    runners,
    forge,
    forgeJobs,
    deliveries,
    faults,
    files,
    async restore() {
      const saved = files?.load();
      if (!saved) {
        poolRunners();
        files?.changed("state");
        return;
      }
      if (saved.forge) forge.restore(saved.forge);
      if (saved.forgeJobs) forgeJobs.restore(saved.forgeJobs);
      poolRunners();
      runners.restore(saved.runners);
      await fleet.restore(saved.fleet);
      await runners.afterRestore();
    },
  };
}

/** The job and its status a simulated forge's webhook tells of (the payloads `simulation/forge` makes). */
function observedJob(
  path: string,
  init: { headers: Record<string, string>; body: string },
): { job: ForgeJob; status: SimJobStatus; run: Partial<RunInfo> } | undefined {
  let payload: Record<string, unknown>;
  try {
    payload = JSON.parse(init.body) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (path === "/webhooks/github" && init.headers["x-github-event"] === "workflow_job") {
    const job = payload.workflow_job as Record<string, unknown>;
    const repository = payload.repository as { full_name: string };
    const conclusion = job.conclusion as string | null;
    const status: SimJobStatus =
      payload.action === "completed"
        ? conclusion === "success" || conclusion === "skipped"
          ? "success"
          : conclusion === "cancelled"
            ? "canceled"
            : "failed"
        : payload.action === "in_progress"
          ? "running"
          : "queued";
    return {
      job: {
        source: "github",
        id: String(job.id),
        project: repository.full_name,
        projectId: "",
        pipelineId: String(job.run_id),
        name: String(job.name),
        labels: job.labels as string[],
        attempt: Number(job.run_attempt ?? 1),
      },
      status,
      run: {
        ...(typeof job.created_at === "string" ? { createdAt: job.created_at } : {}),
        ...(status !== "queued" && typeof job.started_at === "string" ? { startedAt: job.started_at } : {}),
        ...(typeof job.runner_name === "string" ? { runnerName: job.runner_name } : {}),
        ...(typeof job.runner_id === "number" ? { runnerId: job.runner_id } : {}),
      },
    };
  }
  if (path === "/webhooks/gitlab") {
    const build = String(payload.build_status);
    const status: SimJobStatus =
      build === "success" || build === "failed" || build === "canceled"
        ? build
        : build === "running"
          ? "running"
          : "queued";
    const project = payload.project as { path_with_namespace: string } | undefined;
    const runner = payload.runner as { id?: unknown; description?: string } | null | undefined;
    return {
      job: {
        source: "gitlab",
        id: String(payload.build_id),
        project: project?.path_with_namespace ?? String(payload.project_name),
        projectId: String(payload.project_id),
        pipelineId: String(payload.pipeline_id),
        name: String(payload.build_name),
        labels: [],
        attempt: Number(payload.retries_count ?? 0),
      },
      status,
      run: {
        ...(isoOf(payload.build_created_at) ? { createdAt: isoOf(payload.build_created_at) } : {}),
        ...(isoOf(payload.build_started_at) ? { startedAt: isoOf(payload.build_started_at) } : {}),
        ...(runner?.description ? { runnerName: runner.description } : {}),
        ...(typeof runner?.id === "number" ? { runnerId: runner.id } : {}),
      },
    };
  }
  return undefined;
}

/** GitLab's hook time (`2026-01-02 03:04:05 UTC`) as ISO 8601, or undefined. */
function isoOf(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const ms = Date.parse(value.replace(" UTC", "Z").replace(" ", "T"));
  return Number.isFinite(ms) ? new Date(ms).toISOString() : undefined;
}
