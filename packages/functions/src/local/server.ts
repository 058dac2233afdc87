import { randomUUID } from "node:crypto";
import { type Clock, systemClock } from "@hearth/core/clock";
import { type ReconciliationSettings, reconciliationSchema, type Settings } from "@hearth/core/config";
import type { FleetPort } from "@hearth/core/fleet";
import { createGitLabLists } from "@hearth/core/gitlab-api/job-lists";
import type { InstanceRegistry } from "@hearth/core/instances";
import type { Journal } from "@hearth/core/journal";
import type { Leases } from "@hearth/core/leases";
import type { Ledger } from "@hearth/core/ledger";
import { localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import type { PollReport } from "@hearth/core/polling";
import { defaultPools, type PoolConfig } from "@hearth/core/pools";
import { scaleLease, type TickSummary } from "@hearth/core/scaling";
import { SimulatedFleet } from "@hearth/core/simulation/fleet";
import type { SimulatedDeliveries } from "@hearth/core/simulation/forge/deliveries";
import type { SimulatedForgeJobs } from "@hearth/core/simulation/forge/jobs";
import type { SimulatedForgeRunners } from "@hearth/core/simulation/forge/runners";
import { ensureTable, type Store } from "@hearth/core/table";
import type { AgentDeps } from "../agent";
import { composeHearth } from "../hearth";
import { acceptInterruptionEvents, handleInterruptionTasks } from "../interruptions";
import type { Logger } from "../log";
import { scaleFleetTasks } from "../scale";
import { sweepTasks } from "../sweep";
import { type DataLock, lockDataDir } from "./data-lock";
import { webhookSecrets } from "./generated-secrets";
import { createLocalHandleInterruption, type LocalHandleInterruption } from "./interruptions";
import { listen } from "./listen";
import { localGitLab } from "./local-gitlab";
import { localPolling } from "./local-polling";
import { localGitHub, localGitLabRunners, simulatedScopes } from "./local-runners";
import type { SimulatedRunners } from "./sim-runners";
import { createSimulatedApp } from "./simulated-app";
import { attachSimulation, type LocalSimulation } from "./simulation";
import { freeStaleLeases } from "./stale-leases";
import { serveStatusPage } from "./status-page";
import { createLocalSweep, type LocalSweep } from "./sweep";
import { startTicker } from "./ticker";
import { createLocalScaleFleet, type LocalScaleFleet } from "./workflows";

export { PortInUse } from "./listen";

/**
 * Local mode: Hearth in one process, composed by `composeHearth` as the Lambdas are, from local
 * ports: an embedded DynamoDB, the simulated fleet (or the AWS driver, `--fleet aws`), ScaleFleet
 * under aws-local-stepfunctions, work after the answer, the wall clock (or a test's), and the GitLab
 * API that is configured or simulated. The pieces: generated-secrets, local-gitlab, simulation (runners,
 * the simulation routes and snapshots), ticker, status-page, listen.
 */

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
  /**
   * The chance that starting a stopped spot warm instance (`warm.market: spot`) finds spot capacity,
   * in the simulated fleet; the fleet model's 0.9 by default.
   */
  spotStartSuccess?: number;
  /** ScaleFleet iterations per run, and a fixed wait between them (ms) if given. */
  maxIterations?: number;
  waitMs?: number;
  /** HandleInterruption's waits (ms) if given; as the definition says (30 s, or a warning's deadline) if not. */
  interruptionWaitMs?: number;
  /** The periodic tick (forecast, idle releases, missed webhooks); off when 0. Tests tick by hand. */
  tickSeconds?: number;
  /** The stage the status document names: `local`, or the stage whose groups `--fleet aws` drives. */
  stage?: string;
  /** The share of the simulated forges' webhooks dropped at random, from 0 to 1 (`--webhook-loss`). */
  webhookLoss?: number;
  /** Seeds which of the simulated forges' webhooks are dropped (1 by default). */
  webhookLossSeed?: number;
  /** Reconciliation's settings (`reconciliation` in the config file); their defaults when absent. */
  reconciliation?: ReconciliationSettings;
  /** Seconds between polls for missed webhooks: `reconciliation.pollMinutes` by default; off when 0. */
  pollSeconds?: number;
  /** A sweep every this many seconds; `reconciliation.sweepMinutes` by default, none when 0 (tests). */
  sweepSeconds?: number;
}

export interface LocalHearth {
  url: string;
  ledger: Ledger;
  registry: InstanceRegistry;
  journal: Journal;
  leases: Leases;
  pools: readonly PoolConfig[];
  clock: Clock;
  /** The simulated fleet, its runners and the simulated forges', unless another fleet drives real machines. */
  simulation: {
    fleet: SimulatedFleet;
    runners: SimulatedRunners;
    forge: SimulatedForgeRunners;
    forgeJobs: SimulatedForgeJobs;
    deliveries: SimulatedDeliveries;
  } | null;
  scaleFleet: LocalScaleFleet;
  /** HandleInterruption's executions (not awaited by `idle`: one lasts until its instance is gone). */
  handleInterruption: LocalHandleInterruption;
  /** The Sweep: `run()` sweeps now (as `POST /sim/sweep` does) and resolves with its survey and outcomes. */
  sweep: LocalSweep;
  /** The secrets in effect, including ones generated because none was configured. */
  secrets: { githubWebhookSecret: string; gitlabWebhookToken: string };
  generated: string[];
  /**
   * What the periodic timer does: refresh the forecast, sum up the stores' health, and run ScaleFleet
   * for pools with work.
   */
  tick(): Promise<TickSummary>;
  /** One poll of the forges for jobs whose webhooks were missed (what the poll timer does). */
  poll(): Promise<PollReport>;
  /** Resolves when the work started so far (tag lookups, ScaleFleet runs) has settled. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export const TABLE_NAME = "hearth";

/** Hearth in one process: the app on a port, an embedded DynamoDB, ScaleFleet, the tick and a fleet. */
export async function startLocal(options: LocalOptions): Promise<LocalHearth> {
  // Before anything in the directory is read or written: one process per `--data`.
  const lock: DataLock | null = options.dataDir ? lockDataDir(options.dataDir) : null;
  const undo: Array<() => Promise<void> | void> = [() => lock?.release()];
  try {
    return await startWith(options, lock, undo);
  } catch (error) {
    for (const step of undo.reverse()) await step();
    throw error;
  }
}

async function startWith(
  options: LocalOptions,
  lock: DataLock | null,
  undo: Array<() => Promise<void> | void>,
): Promise<LocalHearth> {
  const { settings, log } = options;
  const clock = options.clock ?? systemClock;
  const reconciliation = options.reconciliation ?? reconciliationSchema.parse({});
  const pools = options.pools ?? defaultPools;
  const host = options.host ?? "127.0.0.1";
  const { githubWebhookSecret, gitlabWebhookToken, generated } = webhookSecrets(settings);

  const dynamo = await startEmbeddedDynamo({ path: options.dataDir });
  undo.push(() => dynamo.close());
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  undo.push(() => client.destroy());
  await ensureTable(client, TABLE_NAME);
  const store: Store = { client: documents, tableName: TABLE_NAME, now: () => new Date(clock.now()) };

  const simulatedFleet = options.fleet
    ? null
    : new SimulatedFleet({
        pools,
        clock,
        initialWarmPool: options.initialWarmPool ?? 2,
        ...(options.spotStartSuccess !== undefined ? { spotStartSuccess: options.spotStartSuccess } : {}),
      });
  const fleet: FleetPort = options.fleet ?? (simulatedFleet as SimulatedFleet);
  let selfUrl = "";
  let simulation: LocalSimulation | null = null;
  const gitlab = localGitLab({
    settings,
    log,
    simulated: simulatedFleet
      ? { knows: (job) => Boolean(simulation?.runners.tagsOf(job)), url: () => selfUrl }
      : undefined,
  });

  const pending = new Set<Promise<void>>();
  const background = (task: () => Promise<void>) => {
    const run = task().finally(() => pending.delete(run));
    pending.add(run);
  };
  let scaleFleet: LocalScaleFleet | undefined;
  let handleInterruption: LocalHandleInterruption | undefined;
  // With the simulated forges, every pool's GitHub runners register somewhere (`local` by default).
  const hearthPools = simulatedFleet ? simulatedScopes(pools) : pools;
  const githubApp = simulatedFleet ? createSimulatedApp() : undefined;
  const hearth = composeHearth({
    store: () => store,
    pools: () => hearthPools,
    fleet: () => fleet,
    gitlab: () => gitlab,
    github: () =>
      localGitHub({
        settings,
        simulated: simulatedFleet ? { url: () => selfUrl, now: () => clock.now() } : undefined,
      }),
    gitlabRunners: () =>
      simulatedFleet ? localGitLabRunners({ url: () => selfUrl, forge: () => simulation?.forge }) : undefined,
    reconciliation: () => reconciliation,
    // The sweep lists managers with the GitLab API token: the configured GitLab's, or the simulated one's.
    gitlabLists: () => {
      const configured = settings.GITLAB_URL && settings.GITLAB_API_TOKEN;
      if (!configured && !simulatedFleet) return undefined;
      const url = configured ? (settings.GITLAB_URL as string) : `${selfUrl}/sim/gitlab`;
      const token = configured ? (settings.GITLAB_API_TOKEN as string) : (settings.STATUS_TOKEN ?? "local");
      return { url, lists: createGitLabLists({ url, token }) };
    },
    startScaleFleet: () => (pool, holder, how) => (scaleFleet as LocalScaleFleet).start(pool, holder, how),
    startHandleInterruption: () => (notice) => (handleInterruption as LocalHandleInterruption).start(notice),
    polling: async () =>
      localPolling({
        settings,
        simulated: githubApp
          ? { url: () => selfUrl, app: githubApp, forgeJobs: () => simulation?.forgeJobs }
          : undefined,
      }),
    holder: () => randomUUID(),
    // Work that may follow the answer runs after it: this process keeps running.
    background: async (task) => background(task),
    log,
    now: store.now,
  });
  const leases = hearth.leases();
  scaleFleet = createLocalScaleFleet({
    tasks: scaleFleetTasks(hearth.scaling, log),
    log,
    maxIterations: options.maxIterations ?? 60,
    waitMs: options.waitMs,
    release: (pool, holder) => leases.release(scaleLease(pool), holder),
  });
  const interruptions = createLocalHandleInterruption({
    tasks: handleInterruptionTasks(hearth.interruptions, log),
    log,
    waitMs: options.interruptionWaitMs,
  });
  handleInterruption = interruptions;
  const sweep = createLocalSweep({
    tasks: sweepTasks(() => hearth.sweep(), log),
    log,
    clock,
    everySeconds: options.sweepSeconds ?? reconciliation.sweepMinutes * 60,
    background,
  });
  undo.push(() => sweep.stop());
  if (lock) await freeStaleLeases(leases, pools, log);

  const app = hearth.app({
    secrets: { githubWebhookSecret, gitlabWebhookToken, gitlabSigningToken: settings.GITLAB_SIGNING_TOKEN },
    status: { stage: options.stage ?? "local", token: settings.STATUS_TOKEN },
    // Simulated: each instance's agent presents its own token.
    identify:
      options.identify ??
      ((c) => {
        const token = /^Bearer (.+)$/.exec(c.req.header("authorization") ?? "")?.[1];
        return token && simulatedFleet ? (simulatedFleet.instanceForToken(token)?.id ?? null) : null;
      }),
  });
  if (simulatedFleet) {
    simulation = attachSimulation({
      fleet: simulatedFleet,
      app,
      ledger: hearth.ledger(),
      pools,
      clock,
      log,
      secrets: { githubWebhookSecret, gitlabWebhookToken, gitlabSigningToken: settings.GITLAB_SIGNING_TOKEN },
      statusToken: settings.STATUS_TOKEN,
      dataDir: options.dataDir,
      interruptionEvents: (body) => acceptInterruptionEvents(body, (notice) => interruptions.start(notice)),
      sweep: () => sweep.run(),
      ...(options.webhookLoss !== undefined ? { webhookLoss: options.webhookLoss } : {}),
      ...(options.webhookLossSeed !== undefined ? { seed: options.webhookLossSeed } : {}),
      ...(githubApp ? { githubApp } : {}),
    });
  }
  serveStatusPage(app);
  await simulation?.restore();

  const listening = await listen(app.fetch, host, options.port);
  undo.push(() => listening.close());
  const { url } = listening;
  selfUrl = url;

  const files = simulation?.files ?? null;
  const runners = simulation?.runners ?? null;
  const tick = async () => {
    const summary = await hearth.tick();
    for (const failure of summary.failures) log.error("tick step failed", { error: failure });
    files?.flush();
    return summary;
  };
  const tickSeconds = options.tickSeconds ?? 60;
  const stopTicking =
    tickSeconds > 0 ? startTicker({ clock, seconds: tickSeconds, tick, background, log }) : () => {};
  const poll = async () => {
    const report = await hearth.poll();
    files?.flush();
    return report;
  };
  // Polling runs on its own timer, as its own schedule does in AWS.
  const pollSeconds = options.pollSeconds ?? reconciliation.pollMinutes * 60;
  const stopPolling =
    pollSeconds > 0
      ? startTicker({
          clock,
          seconds: pollSeconds,
          tick: async () => {
            await poll();
          },
          background,
          log,
          name: "poll",
        })
      : () => {};
  runners?.start();

  return {
    url,
    ledger: hearth.ledger(),
    registry: hearth.registry(),
    journal: hearth.journal(),
    leases,
    pools,
    clock,
    simulation:
      simulatedFleet && simulation
        ? {
            fleet: simulatedFleet,
            runners: simulation.runners,
            forge: simulation.forge,
            forgeJobs: simulation.forgeJobs,
            deliveries: simulation.deliveries,
          }
        : null,
    scaleFleet,
    handleInterruption: interruptions,
    sweep,
    secrets: { githubWebhookSecret, gitlabWebhookToken },
    generated,
    tick,
    poll,
    async idle() {
      do {
        while (pending.size) await Promise.allSettled([...pending]);
        await scaleFleet.idle();
      } while (pending.size);
    },
    async close() {
      stopTicking();
      stopPolling();
      runners?.stop();
      files?.close();
      // Runs stop where they are; their leases are freed, so the next start scales at once.
      await sweep.stop();
      await interruptions.stop();
      await scaleFleet.stop();
      await listening.close();
      await Promise.allSettled([...pending]);
      await scaleFleet.idle();
      files?.close();
      client.destroy();
      await dynamo.close();
      lock?.release();
    },
  };
}
