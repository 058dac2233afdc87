import { FakeClock } from "@hearth/core/clock";
import { heartbeatSchema } from "@hearth/core/instances";
import { Agent, type AgentSettings } from "../../src/agent";
import type {
  AgentPorts,
  ControlPlaneAnswer,
  GitLabCredentials,
  HeartbeatBody,
  ImdsPort,
  JobKey,
  LogPort,
  ParametersPort,
  RunnerObservation,
  RunnersPort,
  SpotAction,
  StoreFigures,
} from "../../src/ports";

export const INSTANCE = "i-0123456789abcdef0";
export const PREFIX = "/hearth/test/runners/";

/** IMDS as the logic sees it: an instance id and whatever notice a test schedules. */
export class FakeImds implements ImdsPort {
  spot: SpotAction | null = null;
  rebalance: { noticeTime: string } | null = null;
  down = false;
  polls = 0;
  async instanceId() {
    return INSTANCE;
  }
  async region() {
    return "eu-west-1";
  }
  async spotAction() {
    this.polls += 1;
    if (this.down) throw new Error("IMDS is not answering");
    return this.spot;
  }
  async rebalanceRecommendation() {
    return this.rebalance;
  }
}

export interface HandedConfig {
  slot: number;
  runnerId: number;
  parameter: string;
}

/**
 * The control plane's side of the protocol, as `packages/core/src/heartbeat` keeps it: every heartbeat
 * is checked with core's `heartbeatSchema`; a config handed for a slot comes back in every answer
 * until a heartbeat reports its runner; a draining instance (a notice, or `drain`) gets no config.
 */
export class FakeControlPlane {
  readonly beats: HeartbeatBody[] = [];
  /** Why heartbeats failed core's schema: always empty unless the agent is wrong. */
  readonly invalid: string[] = [];
  /** Epoch ms of each heartbeat received, taken or not. */
  readonly attempts: number[] = [];
  handed: HandedConfig[] = [];
  drain = false;
  /** Protocol 2: the instance is being released (the answer says `release`, and hands no config). */
  release = false;
  /** Protocol 3: the pool holds its spot runners (the answer says `hold`, and hands no config). */
  hold = false;
  /** Unreachable: the port throws, as fetch does. */
  down = false;
  /** An HTTP refusal to give instead of an answer. */
  refuse: { status: number; code: string } | null = null;
  protocol = 3;
  private interrupted = false;

  constructor(private readonly clock: FakeClock) {}

  readonly port = {
    heartbeat: async (body: HeartbeatBody): Promise<ControlPlaneAnswer> => {
      this.attempts.push(this.clock.now());
      if (this.down) throw new Error("connect ECONNREFUSED");
      const parsed = heartbeatSchema.safeParse(JSON.parse(JSON.stringify(body)));
      if (!parsed.success) {
        this.invalid.push(parsed.error.message);
        return { status: 400, body: { error: { code: "invalid_heartbeat", message: parsed.error.message } } };
      }
      if (this.refuse)
        return { status: this.refuse.status, body: { error: { code: this.refuse.code, message: "no" } } };
      this.beats.push(body);
      if (body.interruption) this.interrupted = true;
      const reported = new Set((body.slotRunners ?? []).map((runner) => runner.runnerId));
      // A config is picked up once a heartbeat reports its runner.
      this.handed = this.handed.filter((config) => !reported.has(config.runnerId));
      const draining = this.drain || this.interrupted;
      const protocol = Math.min(body.protocol ?? 0, this.protocol);
      if (protocol < 1)
        return { status: 200, body: { status: "ok", instance: body.instanceId, runner: body.runner } };
      return {
        status: 200,
        body: {
          status: "ok",
          protocol,
          instance: body.instanceId,
          runner: draining ? "draining" : body.runner,
          instructions: {
            runnerConfigs:
              draining || (this.release && protocol >= 2) || (this.hold && protocol >= 3)
                ? []
                : this.handed.map((config) => ({
                    ...config,
                    name: `hearth-${body.instanceId}-${config.slot}`,
                  })),
            drain: draining,
            cancel: [],
            ...(protocol >= 2 ? { release: this.release } : {}),
            ...(protocol >= 3 ? { hold: this.hold } : {}),
          },
        },
      };
    },
  };

  /** Hands a config for a slot, as a mint would: the value lives in the parameters. */
  hand(parameters: FakeParameters, slot: number, runnerId: number): HandedConfig {
    const config = { slot, runnerId, parameter: `${PREFIX}${INSTANCE}/${slot}-${runnerId}` };
    parameters.values.set(config.parameter, `jit-config-${runnerId}`);
    this.handed.push(config);
    return config;
  }

  get last(): HeartbeatBody {
    const beat = this.beats.at(-1);
    if (!beat) throw new Error("no heartbeat yet");
    return beat;
  }
}

export class FakeParameters implements ParametersPort {
  readonly values = new Map<string, string>();
  readonly reads: string[] = [];
  async get(name: string) {
    this.reads.push(name);
    return this.values.get(name) ?? null;
  }
}

/** Runner.Listener per slot: started with a config, takes a job, exits. */
export class FakeRunners implements RunnersPort {
  readonly slots = new Map<number, { config: string; observed: RunnerObservation }>();
  readonly started: Array<{ slot: number; config: string }> = [];
  readonly stopped: Array<{ slot: number; at: number }> = [];
  constructor(private readonly clock: FakeClock) {}
  async start(slot: number, config: string) {
    if (this.slots.get(slot)?.observed.state === "listening") throw new Error("slot busy");
    this.started.push({ slot, config });
    this.slots.set(slot, { config, observed: { state: "listening" } });
  }
  async stop(slot: number) {
    this.stopped.push({ slot, at: this.clock.now() });
    const runner = this.slots.get(slot);
    if (runner) runner.observed = { state: "exited" };
  }
  async inspect(slots: readonly number[]) {
    const seen = new Map<number, RunnerObservation>();
    for (const slot of slots) {
      const runner = this.slots.get(slot);
      if (runner) seen.set(slot, runner.observed);
    }
    return seen;
  }
  takeJob(slot: number, job: JobKey) {
    const runner = this.slots.get(slot);
    if (!runner) throw new Error("no runner");
    runner.observed = { state: "running", job };
  }
  finish(slot: number) {
    const runner = this.slots.get(slot);
    if (runner) runner.observed = { state: "exited" };
  }
}

export class FakeGitLab {
  readonly calls: string[] = [];
  started: { credentials: GitLabCredentials; systemId: string } | null = null;
  jobs: JobKey[] = [];
  /** The id gitlab-runner wrote to its config.toml once registered; null before. */
  registeredId: number | null = null;
  /** Stopped (systemctl stop): it takes no job, and ends once its jobs have finished. */
  stopped = false;
  readonly port = {
    start: async (credentials: GitLabCredentials, systemId: string) => {
      this.calls.push("start");
      this.started = { credentials, systemId };
      this.stopped = false;
    },
    drain: async () => void this.calls.push("SIGQUIT"),
    abort: async () => void this.calls.push("SIGTERM"),
    stop: async () => {
      this.calls.push("stop");
      this.stopped = true;
    },
    active: async () => Boolean(this.started) && (!this.stopped || this.jobs.length > 0),
    runningJobs: async () => (this.started ? this.jobs : null),
    runnerId: async () => (this.started ? this.registeredId : null),
  };
}

export class RecordingLog implements LogPort {
  readonly lines: Array<{ level: string; message: string; fields?: Record<string, unknown> }> = [];
  info(message: string, fields?: Record<string, unknown>) {
    this.lines.push({ level: "info", message, fields });
  }
  warn(message: string, fields?: Record<string, unknown>) {
    this.lines.push({ level: "warn", message, fields });
  }
  get text() {
    return JSON.stringify(this.lines);
  }
}

export function harness(settings: Partial<AgentSettings> = {}) {
  const clock = new FakeClock(Date.parse("2026-03-02T10:00:00.000Z"));
  const imds = new FakeImds();
  const controlPlane = new FakeControlPlane(clock);
  const parameters = new FakeParameters();
  const runners = new FakeRunners(clock);
  const gitlab = new FakeGitLab();
  const log = new RecordingLog();
  const figures: StoreFigures = {
    storeBytes: 21_474_836_480,
    freeDiskBytes: 53_687_091_200,
    pushQueueDepth: 3,
    pushLagSeconds: 12,
    cacheKeys: ["acme/app:build"],
  };
  parameters.values.set("/hearth/test/pools/default/credentials", JSON.stringify({ gitlab: null }));
  const ports: AgentPorts = {
    imds,
    controlPlane: controlPlane.port,
    parameters,
    runners,
    gitlab: gitlab.port,
    store: { measure: async () => ({ ...figures, cacheKeys: [...figures.cacheKeys] }) },
    clock,
    log,
  };
  const agent = new Agent(ports, {
    slots: 2,
    poolCredentialsParameter: "/hearth/test/pools/default/credentials",
    runnerConfigPrefix: PREFIX,
    ...settings,
  });
  return { clock, imds, controlPlane, parameters, runners, gitlab, log, figures, agent };
}
