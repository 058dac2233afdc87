import type { EventQueue } from "./events";
import type { FleetModel } from "./model";
import type { Random } from "./random";
import type { TraceJob } from "./trace";

/**
 * The simulated fleet: instances that boot, run jobs in slots, warm their stores, get interrupted and
 * bill by the second. Policies decide when instances come and go; the fleet decides nothing.
 */

export type Market = "on-demand" | "spot";
export type InstanceState = "launching" | "ready" | "draining" | "stopped" | "terminated";

export class SimJob {
  state: "pending" | "queued" | "running" | "done" = "pending";
  /** When the job last entered the forge's queue: its arrival, or its retry after an interruption. */
  queuedAt: number;
  firstStartAt = -1;
  warmStart = false;
  interrupted = false;
  instance: SimInstance | null = null;
  /** Bumped at every start, so that the finish of an interrupted run is ignored. */
  run = 0;
  /** The instance of the first start, for diagnostics. */
  firstInstance: SimInstance | null = null;
  /** A policy's own bookkeeping (e.g. when its control plane learned of the job). */
  seenAt = -1;

  constructor(
    readonly index: number,
    readonly trace: TraceJob,
    readonly pool: SimPool,
  ) {
    this.queuedAt = trace.createdAt;
  }
}

export interface LaunchOptions {
  market: Market;
  /** The policy's name for the group (Hearth: `warm` or `burst`). */
  group: string;
  /** Jobs the runner takes before it exits (1 for ephemeral runners). */
  maxJobs?: number;
  /** Boot, then stop: an ASG filling its warm pool. */
  intoWarmPool?: boolean;
  /** Already running when the simulation starts (a fixed fleet). */
  running?: boolean;
}

export class SimInstance {
  state: InstanceState = "launching";
  readonly running: SimJob[] = [];
  /** Cache keys the store is warm for, most recent first. */
  keys: string[] = [];
  jobsStarted = 0;
  /** The last launch or resume request. */
  launchedAt: number;
  readyAt = -1;
  idleSince: number | null = null;
  intoWarmPool: boolean;
  /** How the instance last booted: new from the AMI, or resumed from the warm pool. */
  boot: "cold" | "warm" = "cold";
  readonly maxJobs: number;
  /** Bumped whenever the instance changes state, so that stale timers do nothing. */
  epoch = 0;
  /** Whoever manages the instance (an ASG model, a policy). */
  owner: unknown = null;
  /** A policy's own view of the instance, kept with it to avoid a lookup. */
  view: unknown = null;
  // Billing, settled at every state change.
  since: number;
  cost = 0;
  runningSeconds = 0;
  stoppedSeconds = 0;

  constructor(
    readonly serial: number,
    readonly id: string,
    readonly pool: SimPool,
    readonly market: Market,
    readonly group: string,
    readonly slots: number,
    options: LaunchOptions,
    now: number,
  ) {
    this.launchedAt = now;
    this.since = now;
    this.maxJobs = options.maxJobs ?? Number.POSITIVE_INFINITY;
    this.intoWarmPool = options.intoWarmPool ?? false;
  }

  get busy(): number {
    return this.running.length;
  }

  /** Running, launching or draining: the instance counts against the pool's maximum. */
  get live(): boolean {
    return this.state === "launching" || this.state === "ready" || this.state === "draining";
  }

  /** Slots a runner could claim a job into now. */
  freeSlots(): number {
    if (this.state !== "ready") return 0;
    return Math.max(0, Math.min(this.slots - this.running.length, this.maxJobs - this.jobsStarted));
  }

  canTake(): boolean {
    return this.freeSlots() > 0;
  }
}

export interface SimPool {
  index: number;
  name: string;
  /** The forge's queue: jobs waiting for a runner, oldest first (from `head`). */
  waiting: SimJob[];
  head: number;
  /** Instances not terminated (live and stopped). */
  instances: SimInstance[];
}

export interface FleetObserver {
  jobQueued?(job: SimJob): void;
  jobStarted?(job: SimJob, instance: SimInstance): void;
  jobFinished?(job: SimJob, instance: SimInstance): void;
  instanceReady?(instance: SimInstance): void;
  /** Two minutes' notice (by default) before a spot instance is reclaimed. */
  spotWarning?(instance: SimInstance): void;
  instanceTerminated?(instance: SimInstance): void;
}

export class Fleet {
  readonly pools: SimPool[];
  observer: FleetObserver = {};
  interruptedJobs = 0;
  finishedJobs = 0;
  launches = 0;
  resumes = 0;
  /** Billing of terminated instances; live ones are added by `totals()`. */
  private retired = { cost: 0, runningSeconds: 0, stoppedSeconds: 0 };
  private serial = 0;
  private readonly spotRate: number;

  /** Called when every job has finished. */
  onAllFinished: () => void = () => {};
  total = 0;

  constructor(
    readonly clock: EventQueue,
    readonly model: FleetModel,
    poolNames: readonly string[],
    private readonly interruptions: Random,
  ) {
    this.pools = poolNames.map((name, index) => ({ index, name, waiting: [], head: 0, instances: [] }));
    this.spotRate = model.spotInterruptionsPerHour / 3600;
  }

  get now(): number {
    return this.clock.now;
  }

  liveCount(pool: SimPool): number {
    let count = 0;
    for (const instance of pool.instances) if (instance.live) count++;
    return count;
  }

  /** A job enters the forge's queue; a runner with a free slot claims it at once. */
  enqueue(job: SimJob): void {
    job.state = "queued";
    job.queuedAt = this.now;
    job.pool.waiting.push(job);
    this.observer.jobQueued?.(job);
    this.dispatch(job.pool);
  }

  /** Starts a new instance, or returns null when the pool is at its maximum. */
  launch(pool: SimPool, options: LaunchOptions): SimInstance | null {
    if (this.liveCount(pool) >= this.model.maxInstancesPerPool) return null;
    const serial = ++this.serial;
    this.launches++;
    const id = `i-${serial.toString(16).padStart(17, "0")}`;
    const instance = new SimInstance(
      serial,
      id,
      pool,
      options.market,
      options.group,
      this.model.slotsPerInstance,
      options,
      this.now,
    );
    pool.instances.push(instance);
    this.boot(instance, options.running ? 0 : this.model.coldBootSeconds);
    if (options.market === "spot") {
      const warningAt = this.now + this.interruptions.exponential(this.spotRate);
      if (Number.isFinite(warningAt)) this.clock.at(warningAt, () => this.spotWarning(instance));
    }
    return instance;
  }

  /** A Stopped warm-pool instance starts again, its store intact. */
  resume(instance: SimInstance): boolean {
    if (instance.state !== "stopped") throw new Error(`${instance.id} is ${instance.state}, not stopped`);
    if (this.liveCount(instance.pool) >= this.model.maxInstancesPerPool) return false;
    this.settle(instance);
    this.resumes++;
    instance.state = "launching";
    instance.launchedAt = this.now;
    instance.intoWarmPool = false;
    instance.boot = "warm";
    this.boot(instance, this.model.warmBootSeconds);
    return true;
  }

  stop(instance: SimInstance): void {
    if (instance.busy > 0) throw new Error(`cannot stop ${instance.id}: it runs ${instance.busy} jobs`);
    if (!instance.live) throw new Error(`cannot stop ${instance.id}: it is ${instance.state}`);
    this.settle(instance);
    instance.state = "stopped";
    instance.idleSince = null;
    instance.epoch++;
  }

  /** Terminates an instance; jobs still running on it are interrupted and queued again. */
  terminate(instance: SimInstance): void {
    if (instance.state === "terminated") return;
    this.settle(instance);
    instance.state = "terminated";
    instance.epoch++;
    const pool = instance.pool;
    const at = pool.instances.indexOf(instance);
    if (at >= 0) pool.instances.splice(at, 1);
    this.retired.cost += instance.cost;
    this.retired.runningSeconds += instance.runningSeconds;
    this.retired.stoppedSeconds += instance.stoppedSeconds;
    const interrupted = instance.running.splice(0);
    for (const job of interrupted) {
      if (!job.interrupted) this.interruptedJobs++;
      job.interrupted = true;
      job.instance = null;
      job.run++;
    }
    this.observer.instanceTerminated?.(instance);
    for (const job of interrupted) this.enqueue(job);
  }

  /** The runner stops claiming jobs; running ones go on. */
  drain(instance: SimInstance): void {
    if (instance.state === "launching" || instance.state === "ready") instance.state = "draining";
  }

  /**
   * Runners claim queued jobs. The queue is first come, first served: when k slots are free, the k
   * oldest jobs start. Which job lands on which slot favours warm stores: first every job that has a
   * free slot warm for it takes one, then the rest take the slots that are warm for the fewest
   * other waiting jobs. (Hearth's agent polls sooner when its store is warm for a queued job; the
   * simulator gives every policy these runners.)
   */
  dispatch(pool: SimPool): void {
    let free = 0;
    for (const instance of pool.instances) free += instance.freeSlots();
    const count = Math.min(free, pool.waiting.length - pool.head);
    if (count <= 0) return;
    const batch = pool.waiting.slice(pool.head, pool.head + count);
    pool.head += count;
    const open: SimInstance[] = pool.instances.filter((instance) => instance.canTake());
    // Jobs of the batch not started yet, per cache key.
    const pending = new Map<string, number>();
    for (const job of batch) pending.set(job.trace.cacheKey, (pending.get(job.trace.cacheKey) ?? 0) + 1);
    const cold: SimJob[] = [];
    for (const job of batch) {
      const instance = this.pick(open, job.trace.cacheKey, null);
      if (instance === null) {
        cold.push(job);
        continue;
      }
      this.claim(job, instance, open, pending);
    }
    for (const job of cold) {
      const instance = this.pick(open, job.trace.cacheKey, pending);
      if (instance === null) throw new Error("dispatch ran out of free slots");
      this.claim(job, instance, open, pending);
    }
    // Drop the claimed prefix now and then, so the queue does not grow without bound.
    if (pool.head > 1024 && pool.head * 2 > pool.waiting.length) {
      pool.waiting.splice(0, pool.head);
      pool.head = 0;
    }
  }

  private claim(job: SimJob, instance: SimInstance, open: SimInstance[], pending: Map<string, number>): void {
    const key = job.trace.cacheKey;
    pending.set(key, (pending.get(key) ?? 1) - 1);
    this.start(job, instance);
    if (!instance.canTake()) open.splice(open.indexOf(instance), 1);
  }

  queuedCount(pool: SimPool): number {
    return pool.waiting.length - pool.head;
  }

  /** Settles billing and returns totals over every instance, live or not. */
  totals(): { cost: number; runningSeconds: number; stoppedSeconds: number } {
    const sum = { ...this.retired };
    for (const pool of this.pools) {
      for (const instance of pool.instances) {
        this.settle(instance);
        sum.cost += instance.cost;
        sum.runningSeconds += instance.runningSeconds;
        sum.stoppedSeconds += instance.stoppedSeconds;
      }
    }
    return sum;
  }

  /**
   * A free slot for a job. Without `pending`, only a slot warm for it; with `pending` (the batch's
   * jobs not started yet, per key), the slot warm for the fewest of them. Then the busiest instance
   * (so idle ones stay idle and can be released), then the oldest.
   */
  private pick(
    open: readonly SimInstance[],
    key: string,
    pending: Map<string, number> | null,
  ): SimInstance | null {
    let best: SimInstance | null = null;
    let bestCost = 0;
    for (const instance of open) {
      let cost = 0;
      if (pending === null) {
        if (!instance.keys.includes(key)) continue;
      } else {
        for (const held of instance.keys) cost += pending.get(held) ?? 0;
      }
      if (
        best === null ||
        cost < bestCost ||
        (cost === bestCost &&
          (instance.busy > best.busy || (instance.busy === best.busy && instance.serial < best.serial)))
      ) {
        best = instance;
        bestCost = cost;
      }
    }
    return best;
  }

  private start(job: SimJob, instance: SimInstance): void {
    const warm = instance.keys.includes(job.trace.cacheKey);
    if (job.firstStartAt < 0) {
      job.firstStartAt = this.now;
      job.warmStart = warm;
      job.firstInstance = instance;
    }
    job.state = "running";
    job.instance = instance;
    const run = ++job.run;
    instance.running.push(job);
    instance.jobsStarted++;
    instance.idleSince = null;
    const duration = warm ? job.trace.warmSeconds : job.trace.coldSeconds;
    this.clock.after(duration, () => {
      if (job.run === run && job.state === "running") this.finish(job, instance);
    });
    this.observer.jobStarted?.(job, instance);
  }

  private finish(job: SimJob, instance: SimInstance): void {
    job.state = "done";
    job.instance = null;
    this.finishedJobs++;
    if (this.finishedJobs === this.total) this.onAllFinished();
    const at = instance.running.indexOf(job);
    instance.running.splice(at, 1);
    this.touch(instance, job.trace.cacheKey);
    if (instance.running.length === 0) instance.idleSince = this.now;
    this.observer.jobFinished?.(job, instance);
    this.dispatch(instance.pool);
  }

  /** Least-recently-used store warmth: the key moves to the front, the oldest falls off. */
  private touch(instance: SimInstance, key: string): void {
    const capacity = this.model.storeKeys;
    if (capacity === 0) return;
    const keys = instance.keys;
    const at = keys.indexOf(key);
    if (at === 0) return;
    if (at > 0) keys.splice(at, 1);
    else if (keys.length >= capacity) keys.pop();
    keys.unshift(key);
  }

  private boot(instance: SimInstance, seconds: number): void {
    const epoch = ++instance.epoch;
    this.clock.after(seconds, () => {
      if (instance.epoch !== epoch) return;
      if (instance.intoWarmPool) {
        instance.intoWarmPool = false;
        this.stop(instance);
        return;
      }
      instance.readyAt = this.now;
      if (instance.state === "launching") instance.state = "ready";
      if (instance.running.length === 0) instance.idleSince = this.now;
      this.observer.instanceReady?.(instance);
      // Claim jobs in a later event at the same time, so that every instance ready at this moment
      // competes and the warm store wins, as it would when runners poll.
      this.clock.at(this.now, () => this.dispatch(instance.pool));
    });
  }

  private spotWarning(instance: SimInstance): void {
    if (!instance.live) return;
    this.observer.spotWarning?.(instance);
    this.clock.after(this.model.spotWarningSeconds, () => this.terminate(instance));
  }

  private settle(instance: SimInstance): void {
    const elapsed = this.now - instance.since;
    instance.since = this.now;
    if (elapsed <= 0) return;
    if (instance.live) {
      instance.runningSeconds += elapsed;
      const hourly = instance.market === "spot" ? this.model.spotHourly : this.model.onDemandHourly;
      instance.cost += (elapsed * hourly) / 3600;
    } else if (instance.state === "stopped") {
      instance.stoppedSeconds += elapsed;
      instance.cost += (elapsed * this.model.stoppedHourly) / 3600;
    }
  }
}
