import { Random, rememberKey } from "../rules";
import type { EventQueue } from "./events";
import type { FleetModel } from "./model";
import { claimJobs } from "./runners";
import type { SimJob, SimPool } from "./state";
import { type LaunchOptions, SimInstance } from "./state";

export type { LaunchOptions, SimInstanceState, SimPool } from "./state";
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
}

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
      if (Number.isFinite(warningAt)) this.clock.at(warningAt, () => this.warn(instance));
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
    for (const job of interrupted) this.cut(job);
    this.observer.instanceTerminated?.(instance);
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
    claimJobs(pool, this.claims, (job, instance) => this.start(job, instance));
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

  private start(job: SimJob, instance: SimInstance): void {
    const warm = instance.keys.includes(job.trace.cacheKey);
    if (job.firstStartAt < 0) {
      job.firstStartAt = this.now;
      job.warmStart = warm;
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
    this.checkAllDone();
    const at = instance.running.indexOf(job);
    instance.running.splice(at, 1);
    rememberKey(instance.keys, job.trace.cacheKey, this.model.storeKeys);
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
