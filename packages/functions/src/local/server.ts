import { randomBytes, randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { type Clock, systemClock } from "@hearth/core/clock";
import type { Settings } from "@hearth/core/config";
import type { FleetPort } from "@hearth/core/fleet";
import { type GitLabJobs, TagsUnavailable } from "@hearth/core/gitlab-api";
import { createGitLabJobs } from "@hearth/core/gitlab-api/client";
import { createInstanceRegistry, type InstanceRegistry } from "@hearth/core/instances";
import { createJournal, type Journal } from "@hearth/core/journal";
import { createLeases, type Leases } from "@hearth/core/leases";
import { createLedger, type Ledger } from "@hearth/core/ledger";
import { localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import { defaultPools, type PoolConfig, routeJob } from "@hearth/core/pools";
import {
  createPoolStates,
  leaseNotices,
  requestScale,
  tick as runTick,
  type ScalingDeps,
  scaleLease,
} from "@hearth/core/scaling";
import { SimulatedFleet } from "@hearth/core/simulation/fleet";
import { ensureTable, type Store } from "@hearth/core/table";
import { serve } from "@hono/node-server";
import { serveStatic } from "@hono/node-server/serve-static";
import type { AgentDeps } from "../agent";
import { createApp } from "../app";
import type { Logger } from "../log";
import { scaleFleetTasks } from "../scale";
import { type DataLock, lockDataDir } from "./data-lock";
import { type SimulationFiles, simulationFiles } from "./sim-files";
import { simRoutes } from "./sim-routes";
import { SimulatedRunners } from "./sim-runners";
import { createLocalScaleFleet, type LocalScaleFleet } from "./workflows";

export interface LocalOptions {
  port: number;
  host?: string;
  /** Keep the embedded DynamoDB in this folder instead of in memory. */
  dataDir?: string;
  settings: Settings;
  log: Logger;
  pools?: readonly PoolConfig[];
  /** The wall clock by default; tests pass a FakeClock. */
  clock?: Clock;
  /** A different fleet (the AWS driver in single-host mode); the simulated fleet by default. */
  fleet?: FleetPort;
  /** How heartbeats prove which instance sends them, with another fleet (a signed STS request). */
  identify?: AgentDeps["identify"];
  /** Stopped instances each simulated warm pool starts with. */
  initialWarmPool?: number;
  /** ScaleFleet iterations per run, and a fixed wait between them (ms) if given. */
  maxIterations?: number;
  waitMs?: number;
  /** The periodic tick (forecast, idle releases, missed webhooks); off when 0. Tests tick by hand. */
  tickSeconds?: number;
  /** The stage the status document names: `local`, or the stage whose groups `--fleet aws` drives. */
  stage?: string;
}

/** The port is taken: one clear sentence, no stack. */
export class PortInUse extends Error {
  constructor(host: string, port: number) {
    super(`${host}:${port} is already in use by another process; choose another port with --port`);
  }
}

export interface LocalHearth {
  url: string;
  ledger: Ledger;
  registry: InstanceRegistry;
  journal: Journal;
  leases: Leases;
  pools: readonly PoolConfig[];
  clock: Clock;
  /** The simulated fleet and its runners, unless another fleet drives real machines. */
  simulation: { fleet: SimulatedFleet; runners: SimulatedRunners } | null;
  scaleFleet: LocalScaleFleet;
  /** The secrets in effect, including ones generated because none was configured. */
  secrets: { githubWebhookSecret: string; gitlabWebhookToken: string };
  generated: string[];
  /** What the periodic timer does: refresh the forecast, and run ScaleFleet for pools with work. */
  tick(): Promise<void>;
  /** Resolves when the work started so far (tag lookups, ScaleFleet runs) has settled. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export const TABLE_NAME = "hearth";

/** Hearth in one process: the app on a port, an embedded DynamoDB, ScaleFleet, crons and a fleet. */
export async function startLocal(options: LocalOptions): Promise<LocalHearth> {
  const { settings } = options;
  const generated: string[] = [];
  const secret = (value: string | undefined, name: string) => {
    if (value) return value;
    generated.push(name);
    return randomBytes(24).toString("hex");
  };
  const githubWebhookSecret = secret(settings.GITHUB_WEBHOOK_SECRET, "GITHUB_WEBHOOK_SECRET");
  const gitlabWebhookToken = secret(settings.GITLAB_WEBHOOK_TOKEN, "GITLAB_WEBHOOK_TOKEN");

  // Before anything in the directory is read or written: one process per `--data`.
  const lock: DataLock | null = options.dataDir ? lockDataDir(options.dataDir) : null;
  const undo: Array<() => Promise<void> | void> = [() => lock?.release()];
  try {
    return await startWith(options, { lock, undo, generated, githubWebhookSecret, gitlabWebhookToken });
  } catch (error) {
    for (const step of undo.reverse()) await step();
    throw error;
  }
}

async function startWith(
  options: LocalOptions,
  context: {
    lock: DataLock | null;
    undo: Array<() => Promise<void> | void>;
    generated: string[];
    githubWebhookSecret: string;
    gitlabWebhookToken: string;
  },
): Promise<LocalHearth> {
  const { settings, log } = options;
  const clock = options.clock ?? systemClock;
  const pools = options.pools ?? defaultPools;
  const { lock, undo, generated, githubWebhookSecret, gitlabWebhookToken } = context;
  const host = options.host ?? "127.0.0.1";

  const dynamo = await startEmbeddedDynamo({ path: options.dataDir });
  undo.push(() => dynamo.close());
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  undo.push(() => client.destroy());
  await ensureTable(client, TABLE_NAME);
  const store: Store = { client: documents, tableName: TABLE_NAME, now: () => new Date(clock.now()) };
  const ledger = createLedger(store);
  const registry = createInstanceRegistry(store);
  const journal = createJournal(store);
  const leases = createLeases(store);
  const poolStates = createPoolStates(store);

  if (lock) {
    // The lock proves that no other process of this directory is alive, so no run that holds a lease
    // here is: free them, or scaling would wait for them to expire.
    const held: string[] = [];
    for (const pool of pools) {
      if (await leases.get(scaleLease(pool.name))) {
        await leases.clear(scaleLease(pool.name));
        held.push(pool.name);
      }
    }
    if (held.length) {
      log.info("freed ScaleFleet leases left by a previous process of this data directory", {
        pools: held.join(" "),
        why: "this process holds the directory's lock, so the runs that held them are gone",
      });
    }
  }

  const simulatedFleet = options.fleet
    ? null
    : new SimulatedFleet({ pools, clock, initialWarmPool: options.initialWarmPool ?? 2 });
  const fleet: FleetPort = options.fleet ?? (simulatedFleet as SimulatedFleet);

  // GitLab's API for tag lookups: the configured one, or (simulating) the forge this process plays,
  // which knows the tags of the jobs the demo described and of no others.
  let selfUrl = "";
  let gitlab: GitLabJobs | undefined;
  let runners: SimulatedRunners | null = null;
  let saidNoTags = false;
  /** Said once, not for every job: without a GitLab API, tags are unknown and jobs go untagged. */
  const noTagLookup = () => {
    if (saidNoTags) return;
    saidNoTags = true;
    log.warn(
      "GitLab jobs' tags cannot be looked up: no GitLab API is configured (GITLAB_URL and GITLAB_API_TOKEN); " +
        "jobs whose tags are unknown go to the untagged pool. Said once.",
    );
  };
  const gitlabConfigured = Boolean(settings.GITLAB_URL && settings.GITLAB_API_TOKEN);
  if (settings.GITLAB_URL && settings.GITLAB_API_TOKEN) {
    gitlab = createGitLabJobs({ url: settings.GITLAB_URL, token: settings.GITLAB_API_TOKEN });
  } else if (simulatedFleet) {
    // The URL is known once the server listens; the client is made at the first lookup.
    let api: GitLabJobs | undefined;
    gitlab = {
      tagList(project, job) {
        if (!runners?.tagsOf(job)) {
          noTagLookup();
          return Promise.reject(new TagsUnavailable(job));
        }
        api ??= createGitLabJobs({ url: `${selfUrl}/sim/gitlab`, token: settings.STATUS_TOKEN ?? "local" });
        return api.tagList(project, job);
      },
    };
  }

  const deps: ScalingDeps = {
    pools,
    ledger,
    registry,
    journal,
    leases,
    poolStates,
    fleet,
    gitlab,
    now: store.now,
  };
  const scaleFleet = createLocalScaleFleet({
    tasks: scaleFleetTasks(deps, log),
    log,
    maxIterations: options.maxIterations ?? 60,
    waitMs: options.waitMs,
    release: (pool, holder) => leases.release(scaleLease(pool), holder),
  });
  const leaseHeld = leaseNotices(deps, (fields) =>
    log.info("a ScaleFleet run already holds the pool's lease; it scales for this job", fields),
  );
  const scale = async (pool: string) => {
    const outcome = await requestScale(deps, pool, (p, holder) => scaleFleet.start(p, holder), randomUUID());
    if (outcome === "running") await leaseHeld(pool);
  };

  const pending = new Set<Promise<void>>();
  const background = (task: () => Promise<void>) => {
    const run = task().finally(() => pending.delete(run));
    pending.add(run);
  };

  const app = createApp({
    ledger,
    log,
    now: store.now,
    github: { secret: githubWebhookSecret },
    gitlab: {
      token: gitlabWebhookToken,
      signingToken: settings.GITLAB_SIGNING_TOKEN,
      api: gitlab,
    },
    background,
    onJobQueued: async (job) => {
      if (job.source === "gitlab" && !job.labelsKnown && !gitlabConfigured && !simulatedFleet) noTagLookup();
      const route = routeJob(job, pools);
      if ("pool" in route) await scale(route.pool);
    },
    status: {
      pools,
      ledger,
      registry,
      journal,
      poolStates,
      now: store.now,
      stage: options.stage ?? "local",
      token: settings.STATUS_TOKEN,
    },
    agent: {
      registry,
      ledger,
      journal,
      fleet,
      pools,
      // Simulated: each instance's agent presents its own token.
      identify:
        options.identify ??
        ((c) => {
          const token = /^Bearer (.+)$/.exec(c.req.header("authorization") ?? "")?.[1];
          return token && simulatedFleet ? (simulatedFleet.instanceForToken(token)?.id ?? null) : null;
        }),
    },
  });

  // With --data, the simulated machines outlive the process too, as real ones would.
  let files: SimulationFiles | null = null;
  if (simulatedFleet) {
    const sim = simulatedFleet;
    runners = new SimulatedRunners({
      fleet: sim,
      ledger,
      pools,
      clock,
      log,
      secrets: { githubWebhookSecret, gitlabWebhookToken, gitlabSigningToken: settings.GITLAB_SIGNING_TOKEN },
      send: async (path, init) => {
        // Written before the control plane hears of it (see sim-files.ts).
        files?.flush("state");
        return (await app.request(path, { method: "POST", ...init })).status;
      },
      changed: (part) => files?.changed(part),
    });
    const simRunners = runners;
    if (options.dataDir) {
      files = simulationFiles(options.dataDir, {
        state: () => {
          const { jobs: _jobs, ...rest } = simRunners.snapshot();
          return { fleet: sim.snapshot(), runners: rest };
        },
        jobs: () => simRunners.describedJobs(),
      });
    }
    sim.subscribe({ changed: () => files?.changed("state") });
    simRoutes(app, runners, {
      token: settings.STATUS_TOKEN,
      described: () => files?.flush("jobs"),
    });
  }
  // The status page (built by `npm start`'s prestart step), at `/`.
  const webRoot = relative(process.cwd(), fileURLToPath(new URL("../../../web/dist", import.meta.url)));
  app.use("/*", serveStatic({ root: webRoot }));

  // The simulation picks up where it was before the first tick or request can look at it.
  const saved = files?.load();
  if (saved && simulatedFleet && runners) {
    runners.restore(saved.runners);
    await simulatedFleet.restore(saved.fleet);
    await runners.afterRestore();
  } else files?.changed("state");

  const server = serve({ fetch: app.fetch, port: options.port, hostname: host });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) resolve();
    server.once("listening", () => resolve());
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "EADDRINUSE" ? new PortInUse(host, options.port) : error),
    );
  });
  undo.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  const url = `http://${host !== "0.0.0.0" && host !== "::" ? (host.includes(":") ? `[${host}]` : host) : "127.0.0.1"}:${port}`;
  selfUrl = url;

  const tick = async () => {
    const summary = await runTick(
      deps,
      (pool, holder) => scaleFleet.start(pool, holder),
      () => randomUUID(),
    );
    for (const failure of summary.failures) log.error("tick step failed", { error: failure });
    for (const run of summary.runs) if (run.outcome === "running") await leaseHeld(run.pool);
    files?.flush();
  };
  let stopTicking = () => {};
  const tickSeconds = options.tickSeconds ?? 60;
  if (tickSeconds > 0) {
    // A first tick at once, so the status page shows the fleet from the start.
    background(async () => {
      try {
        await tick();
      } catch (error) {
        log.error("tick failed", { error: error instanceof Error ? error.message : String(error) });
      }
    });
    const schedule = () => {
      stopTicking = clock.after(tickSeconds * 1000, async () => {
        try {
          await tick();
        } catch (error) {
          log.error("tick failed", { error: error instanceof Error ? error.message : String(error) });
        }
        schedule();
      });
    };
    schedule();
  }
  runners?.start();

  return {
    url,
    ledger,
    registry,
    journal,
    leases,
    pools,
    clock,
    simulation: simulatedFleet && runners ? { fleet: simulatedFleet, runners } : null,
    scaleFleet,
    secrets: { githubWebhookSecret, gitlabWebhookToken },
    generated,
    tick,
    async idle() {
      do {
        while (pending.size) await Promise.allSettled([...pending]);
        await scaleFleet.idle();
      } while (pending.size);
    },
    async close() {
      stopTicking();
      runners?.stop();
      files?.close();
      // Runs stop where they are; their leases are freed, so the next start scales at once.
      await scaleFleet.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...pending]);
      await scaleFleet.idle();
      files?.close();
      client.destroy();
      await dynamo.close();
      lock?.release();
    },
  };
}
