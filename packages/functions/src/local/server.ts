import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { type Clock, systemClock } from "@hearth/core/clock";
import type { Settings } from "@hearth/core/config";
import type { FleetPort } from "@hearth/core/fleet";
import { SimulatedFleet } from "@hearth/core/fleet-sim";
import { createGitLabJobs, type GitLabJobs } from "@hearth/core/gitlab-api";
import { createInstanceRegistry, type InstanceRegistry } from "@hearth/core/instances";
import { createJournal, type Journal } from "@hearth/core/journal";
import { createLeases } from "@hearth/core/leases";
import { createLedger, type Ledger } from "@hearth/core/ledger";
import { localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import { defaultPools, type PoolConfig, routeJob } from "@hearth/core/pools";
import { createPoolStates, requestScale, tick as runTick, type ScalingDeps } from "@hearth/core/scaling";
import { ensureTable, type Store } from "@hearth/core/table";
import { serve } from "@hono/node-server";
import { serveStatic } from "@hono/node-server/serve-static";
import type { AgentDeps } from "../agent";
import { createApp } from "../app";
import type { Logger } from "../log";
import { scaleFleetTasks } from "../scale";
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
}

export interface LocalHearth {
  url: string;
  ledger: Ledger;
  registry: InstanceRegistry;
  journal: Journal;
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
  const { settings, log } = options;
  const clock = options.clock ?? systemClock;
  const pools = options.pools ?? defaultPools;
  const generated: string[] = [];
  const secret = (value: string | undefined, name: string) => {
    if (value) return value;
    generated.push(name);
    return randomBytes(24).toString("hex");
  };
  const githubWebhookSecret = secret(settings.GITHUB_WEBHOOK_SECRET, "GITHUB_WEBHOOK_SECRET");
  const gitlabWebhookToken = secret(settings.GITLAB_WEBHOOK_TOKEN, "GITLAB_WEBHOOK_TOKEN");

  const dynamo = await startEmbeddedDynamo({ path: options.dataDir });
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  await ensureTable(client, TABLE_NAME);
  const store: Store = { client: documents, tableName: TABLE_NAME, now: () => new Date(clock.now()) };
  const ledger = createLedger(store);
  const registry = createInstanceRegistry(store);
  const journal = createJournal(store);
  const leases = createLeases(store);
  const poolStates = createPoolStates(store);

  const simulatedFleet = options.fleet
    ? null
    : new SimulatedFleet({ pools, clock, initialWarmPool: options.initialWarmPool ?? 2 });
  const fleet: FleetPort = options.fleet ?? (simulatedFleet as SimulatedFleet);

  // GitLab's API for tag lookups: the configured one, or (simulating) the forge this process plays.
  let selfUrl = "";
  let gitlab: GitLabJobs | undefined;
  if (settings.GITLAB_URL && settings.GITLAB_API_TOKEN) {
    gitlab = createGitLabJobs({ url: settings.GITLAB_URL, token: settings.GITLAB_API_TOKEN });
  } else if (simulatedFleet) {
    // The URL is known once the server listens; the client is made at the first lookup.
    let api: GitLabJobs | undefined;
    gitlab = {
      tagList(project, job) {
        api ??= createGitLabJobs({ url: `${selfUrl}/sim/gitlab`, token: "local" });
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
  });
  const scale = (pool: string) =>
    requestScale(deps, pool, (p, holder) => scaleFleet.start(p, holder), randomUUID());

  const pending = new Set<Promise<void>>();
  const background = (task: () => Promise<void>) => {
    const run = task().finally(() => pending.delete(run));
    pending.add(run);
  };

  let runners: SimulatedRunners | null = null;
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
      stage: "local",
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

  if (simulatedFleet) {
    runners = new SimulatedRunners({
      fleet: simulatedFleet,
      ledger,
      pools,
      clock,
      log,
      secrets: { githubWebhookSecret, gitlabWebhookToken, gitlabSigningToken: settings.GITLAB_SIGNING_TOKEN },
      send: async (path, init) => (await app.request(path, { method: "POST", ...init })).status,
    });
  }
  // Mounted before the first request, once the runners exist.
  if (runners) simRoutes(app, runners);
  // The status page (built by `npm start`'s prestart step), at `/`.
  const webRoot = relative(process.cwd(), fileURLToPath(new URL("../../../web/dist", import.meta.url)));
  app.use("/*", serveStatic({ root: webRoot }));

  const server = serve({ fetch: app.fetch, port: options.port, hostname: options.host ?? "127.0.0.1" });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) resolve();
    server.once("listening", () => resolve());
    server.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://${options.host && options.host !== "0.0.0.0" ? options.host : "127.0.0.1"}:${port}`;
  selfUrl = url;

  // With --data, the simulated machines outlive the process too, as real ones would.
  const snapshotFile =
    options.dataDir && simulatedFleet && runners ? join(options.dataDir, "simulation.json") : null;
  const saveSimulation = () => {
    if (!snapshotFile || !simulatedFleet || !runners) return;
    const snapshot = { fleet: simulatedFleet.snapshot(), runners: runners.snapshot() };
    writeFileSync(`${snapshotFile}.tmp`, JSON.stringify(snapshot));
    renameSync(`${snapshotFile}.tmp`, snapshotFile);
  };
  const tick = async () => {
    const summary = await runTick(
      deps,
      (pool, holder) => scaleFleet.start(pool, holder),
      () => randomUUID(),
    );
    for (const failure of summary.failures) log.error("tick step failed", { error: failure });
    saveSimulation();
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
  if (snapshotFile && existsSync(snapshotFile) && simulatedFleet && runners) {
    const saved = JSON.parse(readFileSync(snapshotFile, "utf8"));
    runners.restore(saved.runners);
    await simulatedFleet.restore(saved.fleet);
  }
  runners?.start();

  return {
    url,
    ledger,
    registry,
    journal,
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
      saveSimulation();
      runners?.stop();
      scaleFleet.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...pending]);
      await scaleFleet.idle();
      client.destroy();
      await dynamo.close();
    },
  };
}
