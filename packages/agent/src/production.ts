import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { systemClock } from "@hearth/core/clock";
import { type Agent, createAgent } from "./agent";
import { createControlPlane } from "./aws/control-plane";
import { createImdsClient, type ImdsClient } from "./aws/imds";
import { createSsmParameters } from "./aws/ssm";
import { parseAgentParameter, type ResolvedAgentFile } from "./config";
import type { AgentPorts, GitLabPort, LogPort, RunnersPort } from "./ports";
import { systemdGitLab } from "./system/gitlab";
import { fileMemory } from "./system/memory";
import { systemdRunners } from "./system/runners";
import { hostStore } from "./system/store";
import { type Systemctl, systemctl } from "./system/systemctl";

/** One JSON line per event on stderr (the journal); fields never hold a secret. */
export const jsonLog: LogPort = {
  info: (message, fields) => console.error(JSON.stringify({ level: "info", message, ...fields })),
  warn: (message, fields) => console.error(JSON.stringify({ level: "warn", message, ...fields })),
};

export interface ProductionOptions {
  imds?: ImdsClient;
  systemctl?: Systemctl;
  /** SSM's endpoint (tests). */
  ssmEndpoint?: string;
  log?: LogPort;
}

/**
 * The agent on a real instance: IMDS, SSM and the heartbeat in AWS, runners and gitlab-runner in
 * systemd. Waits for IMDS and the agent config parameter (retrying: the network may come up late).
 */
export async function productionAgent(
  file: ResolvedAgentFile,
  options: ProductionOptions = {},
): Promise<Agent> {
  const log = options.log ?? jsonLog;
  const imds = options.imds ?? createImdsClient();
  const credentials = () => imds.credentials();
  const parameters = createSsmParameters({
    region: file.region,
    credentials,
    ...(options.ssmEndpoint ? { endpoint: options.ssmEndpoint } : {}),
  });
  const agentParameter = await parameters.get(file.agentConfigParameter);
  if (agentParameter === null)
    throw new Error(`the agent config parameter ${file.agentConfigParameter} is missing`);
  const { heartbeatUrl } = parseAgentParameter(agentParameter);
  const runnerCommand = file.runnerCommand;
  if (runnerCommand !== null) {
    await access(runnerCommand, constants.X_OK).catch(() =>
      log.warn("the runner command is not an executable file", { runnerCommand }),
    );
  }
  const run = options.systemctl ?? systemctl();
  const runners: RunnersPort =
    runnerCommand !== null && file.runnerUnit !== null
      ? systemdRunners({
          systemctl: run,
          configDir: file.runnerConfigDir ?? "/run/hearth/runners",
          unit: file.runnerUnit,
        })
      : absentRunners;
  const gitlab: GitLabPort =
    file.gitlabRunnerService !== null && file.gitlabSystemIdFile !== null
      ? systemdGitLab({
          systemctl: run,
          service: file.gitlabRunnerService,
          systemIdFile: file.gitlabSystemIdFile,
          envFile: file.gitlabRunnerEnvFile,
          jobsUrl: file.gitlabJobsUrl,
          configFile: file.gitlabConfigFile,
        })
      : absentGitLab;
  const ports: AgentPorts = {
    imds,
    controlPlane: createControlPlane({ heartbeatUrl, region: file.region, credentials }),
    parameters,
    runners,
    gitlab,
    store: hostStore({ pushQueueDir: file.pushQueueDir, stateDir: file.stateDir }),
    clock: systemClock,
    log,
    memory: fileMemory(join(file.stateDir, "slots.json")),
  };
  return createAgent(ports, {
    slots: file.slots,
    poolCredentialsParameter: file.poolCredentialsParameter,
    runnerConfigPrefix: file.runnerConfigPrefix,
    heartbeatSeconds: file.heartbeatSeconds,
    maxJobSeconds: file.maxJobSeconds,
  });
}

/** An image without GitHub runners: a config handed to it cannot be started (the control plane hears). */
const absentRunners: RunnersPort = {
  start: async () => {
    throw new Error("this image runs no GitHub runners");
  },
  stop: async () => {},
  inspect: async (slots) => new Map(slots.map((slot) => [slot, { state: "exited" as const }])),
};

/** An image without gitlab-runner: a pool's GitLab credentials cannot be used on it. */
const absentGitLab: GitLabPort = {
  start: async () => {
    throw new Error("this image runs no gitlab-runner");
  },
  drain: async () => {},
  abort: async () => {},
  stop: async () => {},
  active: async () => false,
  runningJobs: async () => null,
};
