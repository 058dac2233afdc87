import type { Group, InstanceRecord, Lifecycle, Market } from "../instances";
import type { PlannerInstance, PlannerState } from "../planner";
import type { PoolConfig } from "../pools";

/**
 * The fleet port: what the control plane asks of the machines, whichever driver runs them. The AWS
 * driver speaks to EC2 Auto Scaling; the simulated driver keeps a fleet in memory that behaves the
 * same way (warm pools, protection, boot times), for local mode and the end-to-end tests.
 */

export interface FleetInstance {
  id: string;
  pool: string;
  group: Group;
  market: Market;
  az: string;
  lifecycle: Lifecycle;
  protectedFromScaleIn: boolean;
  /** The last launch or start (EC2 `LaunchTime`), ISO. */
  launchedAt: string;
  instanceType?: string;
  /**
   * Stopped by a spot interruption (a spot warm group's persistent instance): only EC2 starts it again,
   * when spot capacity returns; Hearth cannot. The planner leaves it out of the warm group
   * (`waitsForCapacity`), and the driver gives it up after `INTERRUPTED_STORE_WAIT_MS`.
   */
  stoppedByInterruption?: boolean;
}

export interface FleetGroup {
  pool: string;
  group: Group;
  name: string;
  desired: number;
  max: number;
  /** Warm group only: the stopped instances the warm pool is sized to keep. */
  warmPoolSize: number | null;
  /** Burst group only: spot launches failed lately, so on-demand stands in. */
  onDemandFallback: boolean;
}

export interface FleetObservation {
  groups: FleetGroup[];
  instances: FleetInstance[];
}

export interface CapacityTarget {
  warm: number;
  burst: number;
  warmPoolSize: number;
  /**
   * Stopped warm instances to start first, in this order, when the warm group needs more in service:
   * the stores the planner chose. A warm group Hearth keeps (`warm.market: spot`) starts them by id;
   * an Auto Scaling warm pool resumes instances of AWS's choosing and ignores this.
   */
  resume?: readonly string[];
  /**
   * How many stores the plan counts as started (its warm pool counts them out already): those of
   * `resume` that do not start stay stopped, and no other store is retired in their place. Without
   * it, as many as the warm group needs.
   */
  resumes?: number;
  /**
   * Of the instances the warm group adds, how many are new on-demand instances (capacity for retried
   * jobs). Only a warm group of spot instances reads it: an Auto Scaling warm group is on-demand.
   */
  onDemand?: number;
  /**
   * Of the instances the warm group adds, how many may stay unadded: stores started for warmth
   * (the plan's `resumeForWarmth`). A driver starts stopped stores for them, and launches no new
   * instance in place of one that will not start.
   */
  optional?: number;
}

export interface ReleaseResult {
  released: string[];
  /** Asked for, but busy, draining or not idle when checked: left protected. */
  refused: string[];
  calls: string[];
}

/** A GitHub just-in-time runner's config, for one job slot of one instance. */
export interface RunnerConfigHandOver {
  instanceId: string;
  slot: number;
  runnerId: number;
  /** The JIT config: a secret. Never logged, journaled or returned. */
  encodedJitConfig: string;
}

export interface RunnerConfigHanded {
  /** Where the instance reads it: `<prefix>/<instance id>/<slot>-<runner id>`. */
  parameter: string;
  calls: string[];
}

/** EC2's instance ids: `i-` and 8 or 17 hex digits (the simulated fleet's look the same). */
const instanceIdPattern = /^i-[0-9a-f]{8,17}$/;

/**
 * Refuses a hand-over that would write a config under a wrong name, or an empty one, before anything
 * is written. The error names the fields, never the config.
 */
export function checkRunnerConfigHandOver(handOver: RunnerConfigHandOver): void {
  const { instanceId, slot, runnerId, encodedJitConfig } = handOver;
  if (typeof instanceId !== "string" || !instanceIdPattern.test(instanceId))
    throw new Error(`runner config hand-over: ${JSON.stringify(instanceId)} is not an instance id`);
  if (!Number.isSafeInteger(slot) || slot < 0)
    throw new Error(`runner config hand-over for ${instanceId}: slot ${slot} is not a slot number`);
  if (!Number.isSafeInteger(runnerId) || runnerId <= 0)
    throw new Error(`runner config hand-over for ${instanceId}: ${runnerId} is not a runner id`);
  if (typeof encodedJitConfig !== "string" || encodedJitConfig.trim() === "")
    throw new Error(`runner config hand-over for ${instanceId} slot ${slot}: the config is empty`);
}

/**
 * A runner's config parameter, `<prefix>/<instance id>/<slot>-<runner id>`: a new name per runner,
 * because Parameter Store refuses tags on an overwrite, and a slot's next runner is a new runner.
 */
export const runnerConfigParameter = (
  prefix: string,
  { instanceId, slot, runnerId }: Pick<RunnerConfigHandOver, "instanceId" | "slot" | "runnerId">,
): string => `${prefix.replace(/\/+$/, "")}/${instanceId}/${slot}-${runnerId}`;

/** The instance, slot and runner a parameter under `prefix` is for, or undefined if it is none of them. */
export function parseRunnerConfigParameter(
  prefix: string,
  parameter: string,
): { instanceId: string; slot: number; runnerId: number } | undefined {
  const base = `${prefix.replace(/\/+$/, "")}/`;
  if (typeof parameter !== "string" || !parameter.startsWith(base)) return undefined;
  const match = /^(i-[0-9a-f]{8,17})\/(\d{1,9})-(\d{1,15})$/.exec(parameter.slice(base.length));
  if (!match) return undefined;
  const [, instanceId = "", slot = "", runnerId = ""] = match;
  return { instanceId, slot: Number(slot), runnerId: Number(runnerId) };
}

export interface FleetPort {
  observe(pool: PoolConfig): Promise<FleetObservation>;
  /** One instance, if it belongs to one of Hearth's groups (a first heartbeat registers it). */
  lookup(instanceId: string): Promise<FleetInstance | undefined>;
  /**
   * Unprotects the given idle instances so that the next lower desired capacity takes exactly them.
   * `stillIdle` is asked right before each one: a driver never releases a busy or draining instance,
   * even when a plan (wrongly) asks it to.
   */
  release(
    pool: PoolConfig,
    instanceIds: readonly string[],
    stillIdle: (id: string) => Promise<boolean>,
  ): Promise<ReleaseResult>;
  /** Sets desired capacities and the warm pool size; returns the API calls it made (none if unchanged). */
  setCapacity(pool: PoolConfig, target: CapacityTarget): Promise<string[]>;
  /**
   * Puts a slot runner's config where only that instance can read it (an SSM SecureString parameter
   * in AWS, bound to the instance by a tag IAM checks); returns where, and the calls made. The calls
   * name the parameter, never its value.
   */
  handRunnerConfig(handOver: RunnerConfigHandOver): Promise<RunnerConfigHanded>;
  /** Deletes a handed config (consumed, or its runner retired). A config already gone is fine. */
  withdrawRunnerConfig(parameter: string): Promise<string[]>;
  /**
   * Takes an instance out of its group without lowering desired capacity (Auto Scaling's
   * `DetachInstances` with `ShouldDecrementDesiredCapacity: false`): the group launches its
   * replacement at once, and never replaces it a second time. An instance already out of its groups
   * is left as it is (no call). Returns the calls made.
   */
  detach(pool: PoolConfig, instanceId: string): Promise<string[]>;
  /**
   * Terminates a detached instance (`TerminateInstances`). Refuses an instance still in a group, which
   * its group would replace. An instance already gone is fine.
   */
  terminate(instanceId: string): Promise<string[]>;
  /** Whether the instance still exists (EC2: not shutting down, not terminated, not unknown). */
  exists(instanceId: string): Promise<boolean>;
  /**
   * Every instance of the pool that exists (not shutting down or terminated), as EC2 knows it by the
   * tags Hearth launches it with (stage and pool), whether a group holds it or not: the sweep finds
   * instances no group holds by it. A group's instance may show here with its EC2 state only (a
   * stopped warm-pool instance is `stopped`). Absent from a driver that cannot list them: the sweep's
   * cloud listing is then unknown, and it acts on nothing.
   */
  tagged?(pool: PoolConfig): Promise<FleetInstance[]>;
}

/** A port whose driver is loaded on first use (its SDK clients are slow to load). */
export function lazyFleet(load: () => Promise<FleetPort>): FleetPort {
  let loaded: Promise<FleetPort> | undefined;
  const port = () => {
    loaded ??= load();
    return loaded;
  };
  return {
    observe: async (pool) => (await port()).observe(pool),
    lookup: async (id) => (await port()).lookup(id),
    release: async (pool, ids, stillIdle) => (await port()).release(pool, ids, stillIdle),
    setCapacity: async (pool, target) => (await port()).setCapacity(pool, target),
    handRunnerConfig: async (handOver) => (await port()).handRunnerConfig(handOver),
    withdrawRunnerConfig: async (parameter) => (await port()).withdrawRunnerConfig(parameter),
    detach: async (pool, id) => (await port()).detach(pool, id),
    terminate: async (id) => (await port()).terminate(id),
    exists: async (id) => (await port()).exists(id),
    tagged: async (pool) => {
      const loaded = await port();
      if (!loaded.tagged) throw new Error("this fleet driver cannot list the instances Hearth tagged");
      return loaded.tagged(pool);
    },
  };
}

/** An API call as the journal shows it: `SetDesiredCapacity(group=…, desired=3)`. */
export function describeCall(api: string, params: Record<string, unknown>): string {
  const args = Object.entries(params)
    .map(([name, value]) => `${name}=${Array.isArray(value) ? value.join("+") : String(value)}`)
    .join(", ");
  return `${api}(${args})`;
}

/** A heartbeat older than this marks an in-service instance as suspect. */
export const HEARTBEAT_OVERDUE_MS = 90_000;
/** Whether an agent that last reported at `lastHeartbeatAt` (ISO; null: never) is on time at `now`. */
export function reportsOnTime(lastHeartbeatAt: string | null, now: number): boolean {
  return lastHeartbeatAt !== null && now - Date.parse(lastHeartbeatAt) <= HEARTBEAT_OVERDUE_MS;
}

/** How long a new or resumed instance may take to send its first heartbeat. */
export const BOOT_GRACE_MS = 10 * 60_000;
/**
 * A store a spot interruption stopped waits for EC2 to start it again (when spot capacity returns)
 * until its last start is this old; then the driver gives it up (its spot request cancelled, the
 * instance terminated). Meanwhile it is no part of the warm pool, which parks a store in its place:
 * it cannot be started when a job needs it, and it must not hold the pool's room for ever.
 */
export const INTERRUPTED_STORE_WAIT_MS = 60 * 60_000;

/** Whether a store a spot interruption stopped, last started at `lastStart`, is given up at `now` (epoch ms). */
export const givesUpWaitingStore = (lastStart: number, now: number): boolean =>
  now - lastStart >= INTERRUPTED_STORE_WAIT_MS;

/**
 * What the planner sees of an instance: Auto Scaling's lifecycle joined with the instance's own
 * report. An instance that stopped reporting is suspect, never idle.
 */
export function plannerInstance(
  instance: FleetInstance,
  record: InstanceRecord | undefined,
  pool: PoolConfig,
  now: number,
): PlannerInstance {
  const launchedAt = Date.parse(instance.launchedAt);
  const lastBeat = record?.lastHeartbeatAt ? Date.parse(record.lastHeartbeatAt) : null;
  const sinceLaunch = lastBeat === null || lastBeat < launchedAt;
  let state: PlannerState;
  let heartbeatOverdue = false;
  switch (instance.lifecycle) {
    case "pending":
      state = "launching";
      break;
    case "in-service":
      if (record?.interruption || record?.runner === "draining") state = "draining";
      else if (sinceLaunch) {
        // No report since this launch: still booting, unless it is taking far too long.
        state = "launching";
        heartbeatOverdue = now - launchedAt > BOOT_GRACE_MS;
      } else {
        state = "ready";
        heartbeatOverdue = now - (lastBeat ?? 0) > HEARTBEAT_OVERDUE_MS;
      }
      break;
    case "stopping":
      // Being stopped by a spot interruption: as good as stopped for the planner, which leaves it to EC2.
      state = instance.stoppedByInterruption ? "stopped" : "stopping";
      break;
    case "stopped":
      state = "stopped";
      break;
    case "terminating":
      state = "terminating";
      break;
  }
  const busySlots = state === "ready" || state === "draining" ? (record?.runningJobs.length ?? 0) : 0;
  const idleSince =
    state === "ready" && busySlots === 0 && record?.idleSince
      ? Math.max(Date.parse(record.idleSince), launchedAt)
      : null;
  return {
    id: instance.id,
    pool: instance.pool,
    group: instance.group,
    market: instance.market,
    state,
    slots: record?.slots ?? pool.slotsPerInstance,
    busySlots,
    cacheKeys: record?.cacheKeys ?? [],
    launchedAt,
    idleSince,
    heartbeatOverdue,
    ...(state === "stopped" && instance.stoppedByInterruption ? { waitsForCapacity: true } : {}),
  };
}
