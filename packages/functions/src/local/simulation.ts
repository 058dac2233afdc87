import type { Clock } from "@hearth/core/clock";
import type { Ledger } from "@hearth/core/ledger";
import type { PoolConfig } from "@hearth/core/pools";
import type { SimulatedFleet } from "@hearth/core/simulation/fleet";
import { SimulatedForgeRunners } from "@hearth/core/simulation/forge/runners";
import type { Hono } from "hono";
import type { EventOutcome } from "../interruptions";
import type { Logger } from "../log";
import { type SimulationFiles, simulationFiles } from "./sim-files";
import { simForgeRoutes } from "./sim-forge-routes";
import { simRoutes } from "./sim-routes";
import { SimulatedRunners } from "./sim-runners";

/**
 * The simulated machines' side of local mode: runners on the simulated fleet's instances, which claim
 * jobs and send the forge's webhooks to `app`; the simulated forges' runners (GitHub's JIT runners, a
 * GitLab runner per pool and its managers) and their APIs; the simulation routes (`/sim/…`); and, with
 * `--data`, the snapshots that let the machines outlive the process, as real ones would.
 */
export interface LocalSimulation {
  runners: SimulatedRunners;
  forge: SimulatedForgeRunners;
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
}): LocalSimulation {
  const { fleet, app } = options;
  let files: SimulationFiles | null = null;
  const forge = new SimulatedForgeRunners({
    now: () => options.clock.now(),
    changed: () => files?.changed("state"),
  });
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
      const response = await app.request(path, { method: "POST", ...init });
      return { status: response.status, body: await response.text() };
    },
    forge,
    readRunnerConfig: (instanceId, parameter) => fleet.readRunnerConfig(instanceId, parameter),
    changed: (part) => files?.changed(part),
  });
  if (options.dataDir) {
    files = simulationFiles(options.dataDir, {
      state: () => {
        const { jobs: _jobs, ...rest } = runners.snapshot();
        return { fleet: fleet.snapshot(), runners: rest, forge: forge.snapshot() };
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
  });
  simForgeRoutes(app, forge, { token: options.statusToken, written: () => files?.flush("state") });
  // Each pool's GitLab runner, made once (a restored one is kept, token and all).
  const poolRunners = () => {
    for (const pool of options.pools) {
      forge.gitlab.poolRunner(pool.name, { tagList: pool.labels, runUntagged: pool.untagged });
    }
  };
  return {
    runners,
    forge,
    files,
    async restore() {
      const saved = files?.load();
      if (!saved) {
        poolRunners();
        files?.changed("state");
        return;
      }
      if (saved.forge) forge.restore(saved.forge);
      poolRunners();
      runners.restore(saved.runners);
      await fleet.restore(saved.fleet);
      await runners.afterRestore();
    },
  };
}
