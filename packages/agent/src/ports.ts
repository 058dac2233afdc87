import type { Clock } from "@hearth/core/clock";

/**
 * What the agent's logic needs from the world. Production passes the ports in `src/aws` and
 * `src/system` (IMDS, SigV4 over HTTPS, SSM, systemd); local mode and tests pass simulated ones. The
 * logic keeps no timer of its own: `Agent.run` schedules every step on `clock`.
 */

import type { Heartbeat } from "@hearth/core/instances";
import type { JobKey, Source } from "@hearth/core/jobs";

export type { Clock, JobKey };
export type JobSource = Source;

/** EC2's spot instance action (`spot/instance-action`). */
export interface SpotAction {
  action: "terminate" | "stop" | "hibernate";
  /** ISO time at which EC2 acts. */
  time: string;
}

export interface ImdsPort {
  instanceId(): Promise<string>;
  region(): Promise<string>;
  /** The scheduled spot action, or null when none is (IMDS answers 404). */
  spotAction(): Promise<SpotAction | null>;
  /** The rebalance recommendation's `noticeTime`, or null when there is none. */
  rebalanceRecommendation(): Promise<{ noticeTime: string } | null>;
}

/** The answer to one heartbeat: its HTTP status and its JSON body (null when it was not JSON). */
export interface ControlPlaneAnswer {
  status: number;
  body: unknown;
}

export interface ControlPlanePort {
  /** `POST /agent/heartbeat`. Throws when the control plane cannot be reached. */
  heartbeat(body: HeartbeatBody): Promise<ControlPlaneAnswer>;
}

export interface ParametersPort {
  /** SSM GetParameter WithDecryption: the value, or null for `ParameterNotFound`. Throws otherwise. */
  get(name: string): Promise<string | null>;
}

/** What a slot's runner is doing, as the machine shows it. */
export type RunnerObservation =
  | { state: "listening" }
  | { state: "running"; job: JobKey | null }
  | { state: "exited" };

export interface RunnersPort {
  /** Starts `Runner.Listener run --jitconfig <config>` for the slot. The config is a secret. */
  start(slot: number, config: string): Promise<void>;
  /** Stops the slot's runner (a job it runs fails, and the forge records it). */
  stop(slot: number): Promise<void>;
  /** What each of these slots' runners is doing now. */
  inspect(slots: readonly number[]): Promise<Map<number, RunnerObservation>>;
}

export interface GitLabCredentials {
  url: string;
  /** The runner authentication token (`glrt-…`): a secret. */
  token: string;
}

export interface GitLabPort {
  /** Writes gitlab-runner's system_id, then starts gitlab-runner with the pool's runner. */
  start(credentials: GitLabCredentials, systemId: string): Promise<void>;
  /** Stops gitlab-runner (SIGQUIT to it alone): it takes no new job and finishes its running ones. */
  drain(): Promise<void>;
  /** SIGTERM to gitlab-runner: it stops its jobs now, and GitLab records them failed. */
  abort(): Promise<void>;
  /**
   * Stops gitlab-runner for a release without waiting: it takes no new job, finishes a running one
   * and ends (idle, at once), and stays stopped until `start` again.
   */
  stop(): Promise<void>;
  /** Whether gitlab-runner still runs (or is finishing its jobs): it may still hold or take a job. */
  active(): Promise<boolean>;
  /** The GitLab jobs gitlab-runner runs now; null when it cannot tell. */
  runningJobs(): Promise<JobKey[] | null>;
  /** The pool runner's id in GitLab, once gitlab-runner has registered; null until then or unknown. */
  runnerId?(): Promise<number | null>;
}

/** The store's figures; each null when it cannot be measured. */
export interface StoreFigures {
  storeBytes: number | null;
  freeDiskBytes: number | null;
  pushQueueDepth: number | null;
  pushLagSeconds: number | null;
  /** Cache keys the store is warm for, most recent first. */
  cacheKeys: string[];
}

export interface StorePort {
  measure(): Promise<StoreFigures>;
}

export interface LogPort {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

/**
 * What the agent remembers across its own restart within one boot: the slots' runners (ids,
 * parameter names and states; never a config). Without it, a restarted agent would not report the
 * jobs its runners still run. Production keeps it in a file tied to the boot id, so a machine that
 * rebooted (a resume from the warm pool) starts with nothing, as its runners did.
 */
export interface MemoryPort {
  load(): Promise<unknown>;
  save(value: unknown): Promise<void>;
}

export interface AgentPorts {
  imds: ImdsPort;
  controlPlane: ControlPlanePort;
  parameters: ParametersPort;
  runners: RunnersPort;
  gitlab: GitLabPort;
  store: StorePort;
  clock: Clock;
  log: LogPort;
  /** Optional: without it, a restarted agent starts with no runner. */
  memory?: MemoryPort;
}

/**
 * The heartbeat the agent sends (docs/PROTOCOL.md, version 1): the control plane's own schema, with
 * every field a version-1 agent always sends present. A type only: no control-plane code is bundled.
 */
export type HeartbeatBody = Required<Heartbeat>;
