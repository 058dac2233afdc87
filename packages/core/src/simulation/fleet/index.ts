import { randomBytes } from "node:crypto";
import type { Clock } from "../../clock";
import {
  type CapacityTarget,
  checkRunnerConfigHandOver,
  describeCall,
  type FleetGroup,
  type FleetInstance,
  type FleetObservation,
  type FleetPort,
  givesUpWaitingStore,
  parseRunnerConfigParameter,
  type ReleaseResult,
  type RunnerConfigHanded,
  type RunnerConfigHandOver,
  runnerConfigParameter,
} from "../../fleet";
import { unstartedNamedStores } from "../../fleet/named-stores";
import { type Group, groups, type Interruption, type Lifecycle, type Market } from "../../instances";
import { interruptionEvent } from "../../interruptions/events";
import { namesStores, type PoolConfig } from "../../pools";
import { awsChoice, Random } from "../rules";

/**
 * A simulated fleet that behaves like two EC2 Auto Scaling groups per pool: instances launch
 * protected from scale-in, boot (cold launch or warm resume, times from the pool config), stop into
 * the warm pool on scale-in, get replaced when interrupted. Which warm-pool instance resumes, or
 * leaves an oversized warm pool, is AWS's choice (`awsChoice`, seeded), as in the trace simulator.
 * It runs on an injectable clock, so local mode watches it in real time and tests drive it by hand.
 *
 * A pool with `warm.market: spot` has no Auto Scaling warm group: Hearth keeps it through EC2, as the
 * AWS driver does. Its instances are persistent spot instances (interruption behaviour `stop`),
 * started and stopped by id, so `setCapacity` starts the stores the plan names; a start by Hearth may
 * find no spot capacity (`spotStartSuccess`), and an instance an interruption stopped is restarted
 * only by EC2 (`capacityReturns`). Nothing replaces or resizes that group but `setCapacity` and
 * `release`.
 */

export interface SimulatedInstance extends FleetInstance {
  /** The agent's credential in local mode (in AWS, the instance's IAM role). */
  token: string;
  /** Detached from its group (`detach`): it runs on, but no group counts or replaces it. */
  detached?: boolean;
  /**
   * A spot warm instance that an interruption stopped: only EC2 starts it again, when capacity
   * returns (`capacityReturns`); a `StartInstances` by Hearth cannot.
   */
  stoppedByInterruption?: boolean;
  /** When it last came into service (ISO); absent while it never has, its store as empty as the AMI's. */
  inServiceAt?: string;
}

/** An EventBridge event as EC2 puts it on the default bus (`interruptionEvent`'s shape). */
export type SimulatedAwsEvent = ReturnType<typeof interruptionEvent>;

/** Callbacks are awaited, so that a fake clock's `advance` covers everything they start. */
export interface FleetListener {
  /** The instance is running: its agent starts (a new store, or the one it had when it stopped). */
  inService?(instance: SimulatedInstance): void | Promise<void>;
  /** The instance stops or terminates: its agent stops. */
  leaving?(instance: SimulatedInstance, how: "stopped" | "terminated"): void | Promise<void>;
  /** EC2 sent a spot interruption notice. */
  interrupted?(instance: SimulatedInstance, notice: Interruption): void | Promise<void>;
  /** EC2 put an event on the default bus (a spot warning, a rebalance recommendation), as AWS would. */
  awsEvent?(event: SimulatedAwsEvent): void | Promise<void>;
  /** Something in the fleet changed (a snapshot now would differ): local mode keeps it on disk. */
  changed?(): void;
}

export interface SimulatedFleetOptions {
  pools: readonly PoolConfig[];
  clock: Clock;
  /** Seconds for an instance to stop into the warm pool. */
  stopSeconds?: number;
  /** Seconds between a spot interruption notice and the termination (EC2 gives two minutes). */
  interruptionNoticeSeconds?: number;
  /** Stopped instances the warm pools start with, per pool (as if the stage had been up a while). */
  initialWarmPool?: number;
  /** Seeds AWS's choices (which warm-pool instance resumes); any number replays the same choices. */
  seed?: number;
  /**
   * The chance that Hearth's `StartInstances` of a stopped spot instance finds spot capacity (the
   * fleet model's 0.9 by default); seeded by `seed`, apart from the warm pool's choices.
   */
  spotStartSuccess?: number;
}

interface GroupState {
  desired: number;
  warmPoolSize: number;
}

/** Where local mode's runner configs live, as `parameterPaths("local").runnerConfigs` would put them. */
export const SIMULATED_RUNNER_CONFIG_PREFIX = "/hearth/local/runners";

/** A simulated SSM parameter holding a runner config. */
export interface SimulatedParameter {
  /** The JIT config: a secret, readable only by `instanceId`'s agent. */
  value: string;
  /** The `hearth:instance-arn` tag, as the instance id it names. */
  instanceId: string;
}

/** Everything the simulated fleet is, as JSON: local mode keeps it with `--data` across restarts. */
export interface FleetSnapshot {
  counter: number;
  groups: Record<string, GroupState>;
  instances: SimulatedInstance[];
  /** Runner configs handed and not yet withdrawn, by parameter name (absent in older snapshots). */
  parameters?: Record<string, SimulatedParameter>;
}

export class SimulatedFleet implements FleetPort {
  private readonly pools: Map<string, PoolConfig>;
  private readonly clock: Clock;
  private readonly stopMs: number;
  private readonly noticeMs: number;
  private readonly instances = new Map<string, SimulatedInstance>();
  private readonly groups = new Map<string, GroupState>();
  private readonly listeners: FleetListener[] = [];
  private readonly timers = new Map<string, () => void>();
  /** Parameter Store, as far as runner configs go. */
  private readonly parameters = new Map<string, SimulatedParameter>();
  private counter = 0;
  private readonly random: Random;
  private readonly spotStarts: Random;
  private readonly spotStartSuccess: number;
  private readonly calls: string[] = [];
  /** Per group: the AZ a detached instance was in, which its replacement avoids. */
  private readonly avoidAz = new Map<string, string>();
  private events = 0;
  /** Every API call made, for tests that check no launch happened twice. */
  readonly callLog: string[] = this.calls;

  constructor(options: SimulatedFleetOptions) {
    this.pools = new Map(options.pools.map((pool) => [pool.name, pool]));
    this.clock = options.clock;
    this.stopMs = (options.stopSeconds ?? 10) * 1000;
    this.noticeMs = (options.interruptionNoticeSeconds ?? 120) * 1000;
    this.random = Random.stream(options.seed ?? 1, "warm-pool");
    this.spotStarts = Random.stream(options.seed ?? 1, "spot-start");
    this.spotStartSuccess = options.spotStartSuccess ?? 0.9;
    if (!(this.spotStartSuccess >= 0 && this.spotStartSuccess <= 1))
      throw new Error(`spotStartSuccess is a probability from 0 to 1, not ${options.spotStartSuccess}`);
    for (const pool of options.pools) {
      const initial = Math.min(options.initialWarmPool ?? 0, pool.warm.warmPoolSize);
      this.groups.set(`${pool.name}/warm`, { desired: 0, warmPoolSize: initial });
      this.groups.set(`${pool.name}/burst`, { desired: 0, warmPoolSize: 0 });
      for (let i = 0; i < initial; i++) this.launch(pool, "warm", "stopped", true);
    }
  }

  snapshot(): FleetSnapshot {
    return {
      counter: this.counter,
      groups: Object.fromEntries(this.groups),
      instances: this.all().map((instance) => ({ ...instance })),
      parameters: Object.fromEntries(
        [...this.parameters].map(([name, parameter]) => [name, { ...parameter }]),
      ),
    };
  }

  /**
   * Picks up where a snapshot left off: booting instances finish booting (what is left of their boot
   * time), stopping ones stop, running ones start their agents again.
   */
  async restore(snapshot: FleetSnapshot): Promise<void> {
    // The snapshot replaces whatever the constructor set up.
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
    this.instances.clear();
    this.parameters.clear();
    for (const [name, parameter] of Object.entries(snapshot.parameters ?? {}))
      this.parameters.set(name, { ...parameter });
    this.counter = snapshot.counter;
    for (const [name, state] of Object.entries(snapshot.groups)) this.groups.set(name, { ...state });
    for (const saved of snapshot.instances) {
      const instance = { ...saved };
      const pool = this.pools.get(instance.pool);
      if (!pool) continue;
      this.instances.set(instance.id, instance);
      const elapsed = this.clock.now() - Date.parse(instance.launchedAt);
      if (instance.lifecycle === "pending") {
        const boot = (instance.group === "warm" ? pool.boot.warmSeconds : pool.boot.coldSeconds) * 1000;
        this.schedule(instance.id, Math.max(0, boot - elapsed), () => this.enterService(instance));
      } else if (instance.lifecycle === "stopping") {
        this.schedule(instance.id, this.stopMs, async () => {
          instance.lifecycle = "stopped";
          await this.reconcile(pool);
        });
      } else if (instance.lifecycle === "in-service") {
        await this.emit((listener) => listener.inService?.(instance));
      }
    }
    this.changed();
  }

  subscribe(listener: FleetListener): void {
    this.listeners.push(listener);
  }

  /** The instance an agent token belongs to (local mode's heartbeat authentication). */
  instanceForToken(token: string): SimulatedInstance | undefined {
    for (const instance of this.instances.values()) if (instance.token === token) return instance;
    return undefined;
  }

  get(id: string): SimulatedInstance | undefined {
    return this.instances.get(id);
  }

  all(): SimulatedInstance[] {
    return [...this.instances.values()];
  }

  async observe(pool: PoolConfig): Promise<FleetObservation> {
    const group = (name: Group): FleetGroup => {
      const state = this.group(pool, name);
      // A group Hearth keeps through EC2 has no desired capacity or warm pool of its own: what runs is
      // what it wants, what is stopped is its warm pool.
      const kept = name === "warm" && namesStores(pool);
      return {
        pool: pool.name,
        group: name,
        name: `sim-${pool.name}-${name}`,
        desired: kept ? this.members(pool, "warm", ["pending", "in-service"]).length : state.desired,
        max: pool.maxInstances,
        // A store a spot interruption stopped waits for EC2: none of the warm pool (as in AWS).
        warmPoolSize: kept
          ? this.members(pool, "warm", ["stopped"]).filter((instance) => !instance.stoppedByInterruption)
              .length
          : name === "warm"
            ? state.warmPoolSize
            : null,
        onDemandFallback: false,
      };
    };
    return {
      groups: [group("warm"), group("burst")],
      instances: this.all()
        .filter((instance) => instance.pool === pool.name && !instance.detached)
        // EC2 shows a stop by a spot interruption (its state reason): the planner leaves it to EC2.
        .map(({ token: _token, stoppedByInterruption, inServiceAt: _at, ...instance }) => ({
          ...instance,
          ...(stoppedByInterruption ? { stoppedByInterruption: true } : {}),
        })),
    };
  }

  async lookup(instanceId: string): Promise<FleetInstance | undefined> {
    const instance = this.instances.get(instanceId);
    // As DescribeAutoScalingInstances: a detached instance is in no group.
    if (!instance || instance.detached) return undefined;
    return portView(instance);
  }

  async release(
    pool: PoolConfig,
    instanceIds: readonly string[],
    stillIdle: (id: string) => Promise<boolean>,
  ): Promise<ReleaseResult> {
    const result: ReleaseResult = { released: [], refused: [], calls: [] };
    const retiring: SimulatedInstance[] = [];
    for (const id of instanceIds) {
      const instance = this.instances.get(id);
      if (
        !instance ||
        instance.pool !== pool.name ||
        instance.lifecycle !== "in-service" ||
        instance.detached
      ) {
        result.refused.push(id);
        continue;
      }
      if (!(await stillIdle(id))) {
        result.refused.push(id);
        continue;
      }
      result.released.push(id);
      // Hearth stops a spot store of a group it keeps itself (an on-demand one, capacity for a retried
      // job, is terminated: the group keeps spot stores only); a group's instance loses its
      // protection, and the next lower desired capacity takes it.
      if (this.keptInstance(instance)) retiring.push(instance);
      else instance.protectedFromScaleIn = false;
    }
    const unprotected = result.released.filter((id) => !retiring.some((instance) => instance.id === id));
    if (unprotected.length) {
      result.calls.push(this.log("SetInstanceProtection", { instances: unprotected, protected: false }));
      this.changed();
    }
    const stopping = retiring.filter((instance) => instance.market === "spot");
    if (stopping.length) {
      result.calls.push(this.log("StopInstances", { instances: stopping.map((instance) => instance.id) }));
      for (const instance of stopping) await this.stop(pool, instance);
    }
    const onDemand = retiring.filter((instance) => instance.market !== "spot");
    if (onDemand.length) result.calls.push(...(await this.terminateKept(onDemand)));
    return result;
  }

  async setCapacity(pool: PoolConfig, target: CapacityTarget): Promise<string[]> {
    const calls: string[] = [];
    const warm = this.group(pool, "warm");
    const burst = this.group(pool, "burst");
    const cap = (n: number) => Math.max(0, Math.min(n, pool.maxInstances));
    if (namesStores(pool)) calls.push(...(await this.keepWarmGroup(pool, target)));
    else if (warm.desired !== cap(target.warm)) {
      warm.desired = cap(target.warm);
      calls.push(this.log("SetDesiredCapacity", { group: `sim-${pool.name}-warm`, desired: warm.desired }));
    }
    if (!namesStores(pool) && warm.warmPoolSize !== target.warmPoolSize) {
      warm.warmPoolSize = Math.max(0, target.warmPoolSize);
      calls.push(this.log("PutWarmPool", { group: `sim-${pool.name}-warm`, minSize: warm.warmPoolSize }));
    }
    if (burst.desired !== cap(target.burst)) {
      burst.desired = cap(target.burst);
      calls.push(this.log("SetDesiredCapacity", { group: `sim-${pool.name}-burst`, desired: burst.desired }));
    }
    await this.reconcile(pool);
    if (calls.length) this.changed();
    return calls;
  }

  /**
   * The warm group Hearth keeps through EC2 (`warm.market: spot`), brought to the target: too few in
   * service, first the on-demand launches the target asks for (capacity for retried jobs), then
   * stopped stores started by id (those the plan names, in its order, then the most recently
   * launched), each start finding spot capacity or not, then new spot launches for the rest. Too
   * many in service: nothing, since only `release` stops an instance. The stopped ones are then kept
   * at the warm pool size: new ones launched to boot once and stop, or extra ones terminated.
   */
  private async keepWarmGroup(pool: PoolConfig, target: CapacityTarget): Promise<string[]> {
    const calls: string[] = [];
    const group = `sim-${pool.name}-warm`;
    const resume = target.resume ?? [];
    let missing =
      Math.max(0, Math.min(target.warm, pool.maxInstances)) -
      this.members(pool, "warm", ["pending", "in-service"]).length;
    const onDemand = Math.max(0, Math.min(missing, target.onDemand ?? 0));
    if (onDemand > 0) {
      calls.push(this.log("RunInstances", { group, market: "on-demand", count: onDemand }));
      for (let n = 0; n < onDemand; n++) this.launch(pool, "warm", "in-service", false, "on-demand");
      missing -= onDemand;
    }
    // A store a spot interruption stopped waits for EC2 until its last start is an hour old, then goes.
    const givenUp = this.members(pool, "warm", ["stopped"]).filter(
      (instance) =>
        instance.stoppedByInterruption &&
        givesUpWaitingStore(Date.parse(instance.launchedAt), this.clock.now()),
    );
    if (givenUp.length) calls.push(...(await this.terminateKept(givenUp)));
    // Only EC2 starts an instance it stopped for an interruption, once capacity returns.
    const stopped = this.members(pool, "warm", ["stopped"]).filter(
      (instance) => !instance.stoppedByInterruption,
    );
    const named = resume.flatMap((id) => stopped.filter((instance) => instance.id === id));
    const others = stopped
      .filter((instance) => !resume.includes(instance.id))
      .sort((a, b) => Date.parse(b.launchedAt) - Date.parse(a.launchedAt) || a.id.localeCompare(b.id));
    const wanted = missing;
    let started = 0;
    for (const instance of [...named, ...others]) {
      if (missing <= 0) break;
      if (instance.market === "spot" && this.spotStarts.next() >= this.spotStartSuccess) {
        calls.push(
          this.log("StartInstances", { instances: [instance.id], failed: "InsufficientInstanceCapacity" }),
        );
        continue;
      }
      calls.push(this.log("StartInstances", { instances: [instance.id] }));
      this.resume(pool, instance);
      started += 1;
      missing -= 1;
    }
    // Named stores the plan counts as started that did not start: not extra stores to terminate below.
    const unstarted = unstartedNamedStores(named.length, target.resumes ?? wanted, started);
    // Stores started for warmth only: none launched in place of one that would not start.
    missing = Math.max(0, missing - Math.max(0, target.optional ?? 0));
    if (missing > 0) {
      calls.push(this.log("RunInstances", { group, market: "spot", count: missing }));
      for (let n = 0; n < missing; n++) this.launch(pool, "warm", "in-service");
    }
    // Not of the warm pool: a store a spot interruption stopped, which cannot start when a job needs it.
    const parked =
      this.members(pool, "warm", ["stopping", "stopped"]).filter(
        (instance) => !instance.stoppedByInterruption,
      ).length - unstarted;
    const size = Math.max(0, target.warmPoolSize);
    if (parked < size) {
      // As a warm pool's new instance: it boots once (so its image is initialised), then stops.
      calls.push(
        this.log("RunInstances", { group, market: "spot", count: size - parked, afterBoot: "stop" }),
      );
      for (let n = parked; n < size; n++) this.launch(pool, "warm", "stopped");
    } else if (parked > size) {
      // None the plan named goes. First those never in service (their stores hold nothing yet), then
      // those in service longest ago.
      const lastUse = (instance: SimulatedInstance) =>
        instance.inServiceAt ? Date.parse(instance.inServiceAt) : Number.NEGATIVE_INFINITY;
      const extra = this.members(pool, "warm", ["stopped"])
        .filter((instance) => !instance.stoppedByInterruption && !resume.includes(instance.id))
        .sort((a, b) => lastUse(a) - lastUse(b) || a.id.localeCompare(b.id))
        .slice(0, parked - size);
      if (extra.length) calls.push(...(await this.terminateKept(extra)));
    }
    return calls;
  }

  /**
   * Terminates instances of a warm group Hearth keeps: a persistent spot instance's request is
   * cancelled first, or EC2 would launch it again.
   */
  private async terminateKept(instances: readonly SimulatedInstance[]): Promise<string[]> {
    const calls: string[] = [];
    const spot = instances.filter((instance) => instance.market === "spot").map((instance) => instance.id);
    if (spot.length) calls.push(this.log("CancelSpotInstanceRequests", { instances: spot }));
    calls.push(this.log("TerminateInstances", { instances: instances.map((instance) => instance.id) }));
    for (const instance of instances) await this.remove(instance, "terminated");
    return calls;
  }

  /**
   * EC2 found spot capacity again for an instance it stopped for an interruption, and starts it (as
   * it does for a persistent spot instance): it resumes with its store, and no call of Hearth's is
   * involved. Refuses, changing nothing, an instance that is not stopped by an interruption.
   */
  async capacityReturns(instanceId: string): Promise<void> {
    const instance = this.instances.get(instanceId);
    const pool = instance ? this.pools.get(instance.pool) : undefined;
    if (!instance || !pool) throw new Error(`${instanceId} is not an instance of the simulated fleet`);
    if (!instance.stoppedByInterruption || instance.lifecycle !== "stopped") {
      throw new Error(
        `${instanceId} is ${instance.lifecycle}, not stopped by an interruption: only such an instance waits for capacity`,
      );
    }
    instance.stoppedByInterruption = false;
    this.resume(pool, instance);
  }

  async handRunnerConfig(handOver: RunnerConfigHandOver): Promise<RunnerConfigHanded> {
    checkRunnerConfigHandOver(handOver);
    const name = runnerConfigParameter(SIMULATED_RUNNER_CONFIG_PREFIX, handOver);
    // As in AWS: a new parameter per runner, SecureString, tagged with its instance. A retried
    // hand-over of the same runner writes the value again and keeps the tag.
    const again = this.parameters.has(name);
    this.parameters.set(name, { value: handOver.encodedJitConfig, instanceId: handOver.instanceId });
    this.changed();
    return {
      parameter: name,
      calls: [
        this.log("PutParameter", {
          name,
          type: "SecureString",
          ...(again ? { overwrite: true } : {}),
        }),
      ],
    };
  }

  async withdrawRunnerConfig(parameter: string): Promise<string[]> {
    if (!parseRunnerConfigParameter(SIMULATED_RUNNER_CONFIG_PREFIX, parameter)) {
      throw new Error(
        `${JSON.stringify(parameter)} is not a runner config parameter under ${SIMULATED_RUNNER_CONFIG_PREFIX}`,
      );
    }
    const found = this.parameters.delete(parameter);
    if (found) this.changed();
    return [this.log("DeleteParameter", { name: parameter, ...(found ? {} : { found: false }) })];
  }

  /**
   * An instance's agent reads a runner config (`ssm:GetParameter` with its instance credentials): the
   * value only if the parameter is tagged for that very instance, as the instance role's
   * OwnRunnerConfig statement allows; nothing for any other instance, or a parameter that is gone.
   */
  readRunnerConfig(instanceId: string, parameter: string): string | undefined {
    const found = this.parameters.get(parameter);
    if (!found || found.instanceId !== instanceId || !this.instances.has(instanceId)) return undefined;
    return found.value;
  }

  /** The runner config parameters that exist now, by name (never their values). */
  runnerConfigParameters(): string[] {
    return [...this.parameters.keys()].sort();
  }

  async detach(pool: PoolConfig, instanceId: string): Promise<string[]> {
    const instance = this.instances.get(instanceId);
    if (!instance || instance.detached || instance.lifecycle === "terminating") return [];
    if (instance.pool !== pool.name)
      throw new Error(`${instanceId} is in pool ${instance.pool}, not in a group of pool ${pool.name}`);
    if (instance.lifecycle !== "in-service") return [];
    // A warm instance Hearth keeps is in no Auto Scaling group: there is nothing to detach it from.
    if (instance.group === "warm" && namesStores(pool)) return [];
    instance.detached = true;
    // The group launches the replacement at once; with more than one zone, in another one.
    this.avoidAz.set(`${pool.name}/${instance.group}`, instance.az);
    const call = this.log("DetachInstances", {
      group: `sim-${pool.name}-${instance.group}`,
      instances: [instanceId],
      decrement: false,
    });
    this.changed();
    await this.reconcile(pool);
    return [call];
  }

  async terminate(instanceId: string): Promise<string[]> {
    const instance = this.instances.get(instanceId);
    if (!instance) return [this.log("TerminateInstances", { instances: [instanceId], found: false })];
    if (this.keptInstance(instance)) return this.terminateKept([instance]);
    if (!instance.detached) {
      throw new Error(
        `${instanceId} is still in sim-${instance.pool}-${instance.group}: terminating it would make the group replace it`,
      );
    }
    const call = this.log("TerminateInstances", { instances: [instanceId] });
    await this.remove(instance, "terminated");
    return [call];
  }

  async exists(instanceId: string): Promise<boolean> {
    return this.instances.has(instanceId);
  }

  async tagged(pool: PoolConfig): Promise<FleetInstance[]> {
    // As DescribeInstances by the pool's tags: detached instances too, until they are terminated.
    return this.all()
      .filter((instance) => instance.pool === pool.name && instance.lifecycle !== "terminating")
      .map(portView);
  }

  /**
   * EC2 announces a spot interruption; the instance goes two minutes later and is replaced. As in
   * AWS, the notice reaches the instance (IMDS) and the default event bus (`awsEvent`); with
   * `rebalance`, a rebalance recommendation comes first, as EC2 may send one with the warning.
   */
  async interrupt(
    instanceId: string,
    action: Interruption["action"] = "terminate",
    options: { rebalance?: boolean } = {},
  ): Promise<void> {
    const instance = this.instances.get(instanceId);
    if (instance?.lifecycle !== "in-service") return;
    const now = new Date(this.clock.now()).toISOString();
    if (action === "rebalance" || options.rebalance) {
      await this.emit((listener) =>
        listener.awsEvent?.(
          interruptionEvent({ kind: "rebalance", instanceId, time: now, id: this.eventId() }),
        ),
      );
    }
    const notice = { action, time: new Date(this.clock.now() + this.noticeMs).toISOString() };
    await this.emit((listener) => listener.interrupted?.(instance, notice));
    if (action === "rebalance") return;
    await this.emit((listener) =>
      listener.awsEvent?.(
        interruptionEvent({ kind: "warning", instanceId, action, time: now, id: this.eventId() }),
      ),
    );
    const pool = this.pools.get(instance.pool);
    if (pool && action !== "terminate" && this.keptInstance(instance)) {
      // A persistent spot instance whose interruption behaviour is stop: it stops, store kept, and
      // waits for EC2 to start it again; no group launches a replacement.
      this.schedule(instanceId, this.noticeMs, async () => {
        if (instance.lifecycle !== "in-service") return;
        instance.stoppedByInterruption = true;
        await this.stop(pool, instance);
      });
      return;
    }
    this.schedule(instanceId, this.noticeMs, async () => {
      await this.remove(instance, "terminated");
      if (pool) await this.reconcile(pool);
    });
  }

  /** A warm instance of a group Hearth keeps itself (`warm.market: spot`). */
  private keptInstance(instance: SimulatedInstance): boolean {
    const pool = this.pools.get(instance.pool);
    return instance.group === "warm" && pool !== undefined && namesStores(pool);
  }

  private eventId(): string {
    this.events += 1;
    return `00000000-0000-4000-8000-${this.events.toString(16).padStart(12, "0")}`;
  }

  private changed(): void {
    for (const listener of this.listeners) listener.changed?.();
  }

  private async emit(call: (listener: FleetListener) => void | Promise<void>): Promise<void> {
    for (const listener of this.listeners) await call(listener);
  }

  private group(pool: PoolConfig, group: Group): GroupState {
    const state = this.groups.get(`${pool.name}/${group}`);
    if (!state) throw new Error(`unknown pool ${pool.name}`);
    return state;
  }

  private log(api: string, params: Record<string, unknown>): string {
    const line = describeCall(api, params);
    this.calls.push(line);
    return line;
  }

  private members(pool: PoolConfig, group: Group, lifecycles: readonly Lifecycle[]): SimulatedInstance[] {
    return this.all()
      .filter(
        (i) => i.pool === pool.name && i.group === group && !i.detached && lifecycles.includes(i.lifecycle),
      )
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  /** What an Auto Scaling group does when desired capacity and reality differ. */
  private async reconcile(pool: PoolConfig): Promise<void> {
    for (const group of groups) {
      // A warm group Hearth keeps changes only when Hearth calls (`setCapacity`, `release`).
      if (group === "warm" && namesStores(pool)) continue;
      const state = this.group(pool, group);
      const inService = this.members(pool, group, ["pending", "in-service"]);
      if (inService.length < state.desired) {
        for (let n = inService.length; n < state.desired; n++) {
          // Scale-out takes from the warm pool first: a stopped instance resumes with its store.
          const stopped =
            group === "warm" ? awsChoice(this.members(pool, "warm", ["stopped"]), this.random) : undefined;
          if (stopped) this.resume(pool, stopped);
          else this.launch(pool, group, "in-service");
        }
      } else if (inService.length > state.desired) {
        // Scale-in can only take unprotected instances; protected ones stay, as in AWS.
        const unprotected = inService.filter((i) => !i.protectedFromScaleIn && i.lifecycle === "in-service");
        for (const instance of unprotected.slice(0, inService.length - state.desired)) {
          if (group === "warm") await this.stop(pool, instance);
          else await this.remove(instance, "terminated");
        }
      }
    }
    if (namesStores(pool)) return;
    // The warm pool keeps itself at its size: new instances warm up and stop; extra ones go.
    const warm = this.group(pool, "warm");
    const pooled = this.members(pool, "warm", ["stopping", "stopped"]);
    for (let n = pooled.length; n < warm.warmPoolSize; n++) this.launch(pool, "warm", "stopped");
    for (let n = pooled.length; n > warm.warmPoolSize; n--) {
      const instance = awsChoice(this.members(pool, "warm", ["stopped"]), this.random);
      if (!instance) break;
      await this.remove(instance, "terminated");
    }
  }

  private launch(
    pool: PoolConfig,
    group: Group,
    into: Extract<Lifecycle, "in-service" | "stopped">,
    ready = false,
    market?: Market,
  ): void {
    this.counter += 1;
    const id = `i-0${this.counter.toString(16).padStart(16, "0")}`;
    const spot =
      market === undefined
        ? group === "burst"
          ? pool.burst.spotShare > 0 && this.counter % 100 < pool.burst.spotShare * 100
          : namesStores(pool)
        : market === "spot";
    const zones = ["sim-1a", "sim-1b", "sim-1c"];
    const avoid = this.avoidAz.get(`${pool.name}/${group}`);
    this.avoidAz.delete(`${pool.name}/${group}`);
    let az = zones[this.counter % zones.length] as string;
    if (az === avoid) az = zones[(this.counter + 1) % zones.length] as string;
    const instance: SimulatedInstance = {
      id,
      pool: pool.name,
      group,
      market: spot ? "spot" : "on-demand",
      az,
      lifecycle: into === "stopped" ? "stopping" : "pending",
      protectedFromScaleIn: true,
      launchedAt: new Date(this.clock.now()).toISOString(),
      instanceType: pool.instanceTypes[0],
      token: randomBytes(18).toString("base64url"),
    };
    this.instances.set(id, instance);
    this.changed();
    if (ready) {
      instance.lifecycle = "stopped";
      return;
    }
    this.schedule(id, pool.boot.coldSeconds * 1000, async () => {
      if (into === "stopped") {
        // A warm-pool instance boots once (so its image is initialised), then stops.
        instance.lifecycle = "stopped";
        return;
      }
      await this.enterService(instance);
    });
  }

  private resume(pool: PoolConfig, instance: SimulatedInstance): void {
    instance.lifecycle = "pending";
    instance.protectedFromScaleIn = true;
    instance.launchedAt = new Date(this.clock.now()).toISOString();
    this.changed();
    this.schedule(instance.id, pool.boot.warmSeconds * 1000, () => this.enterService(instance));
  }

  private async enterService(instance: SimulatedInstance): Promise<void> {
    instance.lifecycle = "in-service";
    instance.inServiceAt = new Date(this.clock.now()).toISOString();
    this.changed();
    await this.emit((listener) => listener.inService?.(instance));
  }

  private async stop(pool: PoolConfig, instance: SimulatedInstance): Promise<void> {
    instance.lifecycle = "stopping";
    this.changed();
    this.schedule(instance.id, this.stopMs, async () => {
      instance.lifecycle = "stopped";
      await this.reconcile(pool);
    });
    await this.emit((listener) => listener.leaving?.(instance, "stopped"));
  }

  private async remove(instance: SimulatedInstance, how: "terminated"): Promise<void> {
    this.timers.get(instance.id)?.();
    this.timers.delete(instance.id);
    const wasRunning = instance.lifecycle === "in-service";
    this.instances.delete(instance.id);
    // Local mode's stand-in for what the control plane does in AWS (withdraw a terminated instance's
    // configs): nothing of a terminated instance is left to read.
    for (const [name, parameter] of this.parameters)
      if (parameter.instanceId === instance.id) this.parameters.delete(name);
    instance.lifecycle = "terminating";
    this.changed();
    if (wasRunning) await this.emit((listener) => listener.leaving?.(instance, how));
  }

  private schedule(id: string, ms: number, task: () => void | Promise<void>): void {
    this.timers.get(id)?.();
    const cancel = this.clock.after(ms, async () => {
      this.timers.delete(id);
      await task();
      this.changed();
    });
    this.timers.set(id, cancel);
  }
}

/** What the fleet port shows of an instance: EC2's and Auto Scaling's view, not the simulation's own. */
function portView(instance: SimulatedInstance): FleetInstance {
  const { token: _token, detached: _detached, stoppedByInterruption, inServiceAt: _at, ...rest } = instance;
  return { ...rest, ...(stoppedByInterruption ? { stoppedByInterruption: true } : {}) };
}
