import { claimQueuedJobs, type ListeningRunner, Random, rememberKey } from "../rules";
import type { EventQueue } from "./events";
import type { FleetModel } from "./model";
import { claimJobs } from "./runners";
import type { SimJob, SimPool, StoreVolume } from "./state";
import { type LaunchOptions, SimInstance } from "./state";

export type { LaunchOptions, SimInstanceState, SimPool, StoreVolume } from "./state";
export { SimInstance, SimJob } from "./state";

/**
 * The simulated fleet: instances that boot, run jobs in slots, warm their stores, get interrupted and
 * bill by the second. Policies decide when instances come and go; the fleet decides nothing.
 */

export interface FleetObserver {
  jobQueued?(job: SimJob): void;
  jobStarted?(job: SimJob, instance: SimInstance): void;
  jobFinished?(job: SimJob, instance: SimInstance): void;
  instanceReady?(instance: SimInstance): void;
  /** Two minutes' notice (by default) before a spot instance is reclaimed. */
  spotWarning?(instance: SimInstance): void;
  instanceTerminated?(instance: SimInstance): void;
  /**
   * A job's run was cut short (its instance went, or its runner was stopped). True when the policy
   * takes the job over: it will `retry` or `abandon` it. Otherwise the fleet queues it again at once,
   * the README's rule for every policy.
   */
  jobInterrupted?(job: SimJob, instance: SimInstance): boolean;
  /** A persistent spot instance (a spot warm group's) was interrupted: it is Stopped now, its store kept. */
  instanceStopped?(instance: SimInstance): void;
  /** A persistent spot instance's start found no spot capacity: it is Stopped again. */
  resumeFailed?(instance: SimInstance): void;
}

/**
 * Which free slots have a listening runner while `head` is the oldest queued job of the pool, as the
 * policy's product decides it; `recheckAt` is when that may change if nothing else happens (null: never),
 * read only when no slot listens (a policy may compute it then). The fleet asks both before anything
 * in the pool changes.
 */
export type ListeningRule = (
  pool: SimPool,
  head: SimJob,
) => { listens: (instance: SimInstance) => boolean; recheckAt: number | null };

export class Fleet {
  readonly pools: SimPool[];
  observer: FleetObserver = {};
  interruptedJobs = 0;
  finishedJobs = 0;
  /** Interrupted jobs queued again (each time). */
  retries = 0;
  /** Interrupted jobs that will never be queued again. */
  abandonedJobs = 0;
  /** Starts of interrupted jobs (after a cut) on spot instances, where they can be cut again. */
  restartsOnSpot = 0;
  launches = 0;
  resumes = 0;
  /** Billing of terminated instances; live ones are added by `totals()`. */
  private retired = { cost: 0, runningSeconds: 0, stoppedSeconds: 0 };
  private serial = 0;
  private readonly spotRate: number;
  /**
   * The binary cache (a policy's option): a job cold on its store, whose key an instance of its pool
   * finished within the model's window, substitutes its closure instead of building it.
   */
  binaryCache = false;
  /**
   * Which slots listen (null: every free slot, as for every policy by default). Hearth's placement
   * (the pool setting `placement`) sets it.
   */
  listening: ListeningRule | null = null;
  /**
   * Detached store volumes (the `--store-volumes` prototype, not built yet) are deleted this long
   * after they were detached.
   */
  volumeRetentionSeconds = Number.POSITIVE_INFINITY;
  /** The zone a store-volume instance lands in when the policy does not pin one. */
  zoneChoice: Random = Random.stream(1, "zones");
  /** Whether a persistent spot instance's start finds capacity. */
  spotStarts: Random = Random.stream(1, "spot-starts");
  /** Billing of detached store volumes, settled when one is attached or deleted. */
  volumeCost = 0;
  volumeSeconds = 0;
  /** Store volumes attached to a new instance. */
  volumeAttaches = 0;
  /** Persistent spot instances stopped by an interruption, and starts that found no capacity. */
  interruptionStops = 0;
  failedStarts = 0;
  private readonly rechecks = new Map<SimPool, number>();

  /** Called when every job has finished or been abandoned. */
  onAllFinished: () => void = () => {};
  total = 0;

  constructor(
    readonly clock: EventQueue,
    readonly model: FleetModel,
    poolNames: readonly string[],
    private readonly interruptions: Random,
    /** The forge's choice of which listening slot gets a job. */
    private readonly claims: Random = Random.stream(1, "claims"),
  ) {
    this.pools = poolNames.map((name, index) => ({
      index,
      name,
      waiting: [],
      head: 0,
      instances: [],
      finished: new Map(),
      volumes: [],
    }));
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
    instance.starts = 1;
    instance.persistent = options.persistent === true && options.market === "spot";
    let attach = 0;
    if (options.storeVolume === true) {
      instance.storeVolume = true;
      const volume = options.attach;
      if (volume !== undefined && this.takeVolume(pool, volume)) {
        instance.zone = volume.zone;
        instance.keys = [...volume.keys];
        attach = this.model.volumeAttachSeconds;
        this.volumeAttaches++;
      } else instance.zone = this.zoneChoice.int(this.model.zones);
    }
    this.boot(instance, options.running ? 0 : this.model.coldBootSeconds + attach);
    if (options.market === "spot") this.scheduleWarning(instance);
    return instance;
  }

  private scheduleWarning(instance: SimInstance): void {
    const warningAt = this.now + this.interruptions.exponential(this.spotRate);
    const starts = instance.starts;
    if (Number.isFinite(warningAt))
      this.clock.at(warningAt, () => {
        if (instance.starts === starts) this.warn(instance);
      });
  }

  /** The pool's detached store volumes not yet deleted (those past retention are deleted now). */
  detachedVolumes(pool: SimPool): readonly StoreVolume[] {
    const expired = pool.volumes.filter(
      (volume) => this.now - volume.detachedAt >= this.volumeRetentionSeconds,
    );
    for (const volume of expired) this.deleteVolume(pool, volume);
    return pool.volumes;
  }

  private takeVolume(pool: SimPool, volume: StoreVolume): boolean {
    if (!this.detachedVolumes(pool).includes(volume)) return false;
    this.deleteVolume(pool, volume);
    return true;
  }

  /** The volume leaves the detached list (attached or deleted): bill its detached time. */
  private deleteVolume(pool: SimPool, volume: StoreVolume): void {
    const at = pool.volumes.indexOf(volume);
    if (at >= 0) pool.volumes.splice(at, 1);
    const seconds = Math.max(
      0,
      Math.min(this.now, volume.detachedAt + this.volumeRetentionSeconds) - volume.detachedAt,
    );
    this.volumeSeconds += seconds;
    this.volumeCost += (seconds * this.model.stoppedHourly) / 3600;
  }

  /** A Stopped warm-pool instance starts again, its store intact. */
  resume(instance: SimInstance): boolean {
    if (instance.state !== "stopped") throw new Error(`${instance.id} is ${instance.state}, not stopped`);
    if (instance.stoppedByInterruption)
      throw new Error(`${instance.id} was stopped by a spot interruption: only EC2 starts it again`);
    if (this.liveCount(instance.pool) >= this.model.maxInstancesPerPool) return false;
    this.settle(instance);
    this.resumes++;
    instance.state = "launching";
    instance.launchedAt = this.now;
    instance.intoWarmPool = false;
    instance.boot = "warm";
    instance.starts++;
    if (instance.persistent && this.spotStarts.next() >= this.model.spotStartSuccess) {
      // No spot capacity: the start fails after a while and the instance is Stopped again.
      this.failedStarts++;
      const epoch = ++instance.epoch;
      this.clock.after(this.model.spotStartFailSeconds, () => {
        if (instance.epoch !== epoch || instance.state !== "launching") return;
        this.settle(instance);
        instance.state = "stopped";
        instance.epoch++;
        this.observer.resumeFailed?.(instance);
      });
      return true;
    }
    this.boot(instance, this.model.warmBootSeconds);
    if (instance.persistent) this.scheduleWarning(instance);
    return true;
  }

  stop(instance: SimInstance): void {
    if (instance.busy > 0) throw new Error(`cannot stop ${instance.id}: it runs ${instance.busy} jobs`);
    if (!instance.live) throw new Error(`cannot stop ${instance.id}: it is ${instance.state}`);
    this.settle(instance);
    instance.state = "stopped";
    instance.stoppedAt = this.now;
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
    if (instance.storeVolume) {
      pool.volumes.push({ zone: instance.zone, keys: [...instance.keys], detachedAt: this.now });
      // At most one detached volume per instance the pool may run: the oldest goes first.
      while (pool.volumes.length > this.model.maxInstancesPerPool)
        this.deleteVolume(pool, pool.volumes[0] as StoreVolume);
    }
    const interrupted = instance.running.splice(0);
    for (const job of interrupted) this.cut(job);
    this.observer.instanceTerminated?.(instance);
    for (const job of interrupted) this.interrupted(job, instance);
  }

  /** A persistent spot instance's interruption: it stops, store kept; jobs still running are interrupted. */
  private interruptStop(instance: SimInstance): void {
    if (!instance.live) return;
    this.settle(instance);
    this.interruptionStops++;
    instance.state = "stopped";
    instance.stoppedByInterruption = true;
    instance.stoppedAt = this.now;
    instance.idleSince = null;
    instance.claiming = true;
    instance.epoch++;
    const interrupted = instance.running.splice(0);
    for (const job of interrupted) this.cut(job);
    this.observer.instanceStopped?.(instance);
    for (const job of interrupted) this.interrupted(job, instance);
  }

  /**
   * The instance's runners are stopped while they run jobs (Hearth's agent before a spot deadline):
   * the jobs are interrupted, the instance stays, idle.
   */
  stopJobs(instance: SimInstance): void {
    const interrupted = instance.running.splice(0);
    if (interrupted.length === 0) return;
    for (const job of interrupted) this.cut(job);
    instance.idleSince = this.now;
    for (const job of interrupted) this.interrupted(job, instance);
  }

  /** An interrupted job enters the forge's queue again. */
  retry(job: SimJob): void {
    if (job.state !== "failed") throw new Error(`job ${job.trace.id} is ${job.state}, not failed`);
    job.retries++;
    this.retries++;
    this.enqueue(job);
  }

  /** An interrupted job will never run again: it is lost. */
  abandon(job: SimJob): void {
    if (job.state !== "failed") throw new Error(`job ${job.trace.id} is ${job.state}, not failed`);
    job.state = "lost";
    this.abandonedJobs++;
    this.checkAllDone();
  }

  private cut(job: SimJob): void {
    if (!job.interrupted) this.interruptedJobs++;
    job.interrupted = true;
    job.interruptions++;
    job.state = "failed";
    job.instance = null;
    job.run++;
    job.cutAt = this.now;
    job.redoneSeconds += this.now - job.startedAt;
  }

  private interrupted(job: SimJob, instance: SimInstance): void {
    if (this.observer.jobInterrupted?.(job, instance) !== true) this.retry(job);
  }

  private checkAllDone(): void {
    if (this.finishedJobs + this.abandonedJobs === this.total) this.onAllFinished();
  }

  /** The runner stops claiming jobs; running ones go on. */
  drain(instance: SimInstance): void {
    if (instance.state === "launching" || instance.state === "ready") instance.state = "draining";
  }

  /** Runners claim the queued jobs they can (see `claimJobs`). */
  dispatch(pool: SimPool): void {
    if (this.listening === null) {
      claimJobs(pool, this.claims, (job, instance) => this.start(job, instance));
      return;
    }
    // The policy decides which slots listen, for the oldest queued job; the forge still picks at
    // random among the listening slots, one job at a time, oldest first.
    while (pool.head < pool.waiting.length) {
      const head = pool.waiting[pool.head] as SimJob;
      const rule = this.listening(pool, head);
      const listening: Array<ListeningRunner<SimInstance>> = [];
      for (const instance of pool.instances) {
        const free = instance.freeSlots();
        if (free > 0 && rule.listens(instance)) listening.push({ runner: instance, free });
      }
      if (listening.length === 0) {
        const recheckAt = rule.recheckAt;
        if (recheckAt !== null) this.recheck(pool, recheckAt);
        break;
      }
      const [claim] = claimQueuedJobs([head], listening, this.claims);
      if (claim === undefined) break;
      pool.head++;
      this.start(claim.job, claim.runner);
    }
    if (pool.head > 1024 && pool.head * 2 > pool.waiting.length) {
      pool.waiting.splice(0, pool.head);
      pool.head = 0;
    }
  }

  private recheck(pool: SimPool, at: number): void {
    const when = Math.max(at, this.now);
    const scheduled = this.rechecks.get(pool);
    if (scheduled !== undefined && scheduled >= this.now && scheduled <= when) return;
    this.rechecks.set(pool, when);
    this.clock.at(when, () => {
      if (this.rechecks.get(pool) === when) this.rechecks.delete(pool);
      this.dispatch(pool);
    });
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
      // Detached volumes are billed up to now (or their deletion) as well.
      for (const volume of [...this.detachedVolumes(pool)]) {
        const seconds = Math.max(0, this.now - volume.detachedAt);
        sum.cost += (seconds * this.model.stoppedHourly) / 3600;
        sum.stoppedSeconds += seconds;
      }
    }
    sum.cost += this.volumeCost;
    sum.stoppedSeconds += this.volumeSeconds;
    return sum;
  }

  private start(job: SimJob, instance: SimInstance): void {
    const key = job.trace.cacheKey;
    const warm = instance.keys.includes(key);
    let duration = warm ? job.trace.warmSeconds : job.trace.coldSeconds;
    let store: SimJob["store"] = warm ? "warm" : "cold";
    if (!warm && this.binaryCache) {
      const last = instance.pool.finished.get(key);
      if (last !== undefined && this.now - last <= this.model.cacheWindowSeconds) {
        store = "substituted";
        duration = Math.min(job.trace.coldSeconds, job.trace.warmSeconds + this.model.cachePenaltySeconds);
      }
    }
    if (job.firstStartAt < 0) {
      job.firstStartAt = this.now;
      job.warmStart = warm;
      job.store = store;
      job.achievable = instance.pool.finished.has(key);
      job.firstInstance = instance;
    }
    if (job.cutAt >= 0) {
      job.extraWaitSeconds += this.now - job.cutAt;
      job.cutAt = -1;
      if (instance.market === "spot") this.restartsOnSpot++;
    }
    job.state = "running";
    job.startedAt = this.now;
    job.instance = instance;
    const run = ++job.run;
    instance.running.push(job);
    instance.jobsStarted++;
    instance.idleSince = null;
    this.clock.after(duration, () => {
      if (job.run === run && job.state === "running") this.finish(job, instance);
    });
    this.observer.jobStarted?.(job, instance);
  }

  private finish(job: SimJob, instance: SimInstance): void {
    job.state = "done";
    job.instance = null;
    this.finishedJobs++;
    this.checkAllDone();
    const at = instance.running.indexOf(job);
    instance.running.splice(at, 1);
    rememberKey(instance.keys, job.trace.cacheKey, this.model.storeKeys);
    instance.keysChanged++;
    instance.pool.finished.set(job.trace.cacheKey, this.now);
    if (instance.running.length === 0) instance.idleSince = this.now;
    this.observer.jobFinished?.(job, instance);
    this.dispatch(instance.pool);
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
      // is among the listening slots the forge picks from.
      this.clock.at(this.now, () => this.dispatch(instance.pool));
    });
  }

  /** A spot interruption warning now: the instance is reclaimed (terminated) at the warning's end. */
  warn(instance: SimInstance): void {
    if (!instance.live) return;
    this.observer.spotWarning?.(instance);
    const starts = instance.starts;
    this.clock.after(this.model.spotWarningSeconds, () => {
      if (instance.persistent) {
        if (instance.starts === starts) this.interruptStop(instance);
      } else this.terminate(instance);
    });
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
