import {
  type Demand,
  DemandHistory,
  type PlannerInput,
  type PlannerInstance,
  type PlannerJob,
  type PoolPlan,
  plan,
  QueueSummary,
  type RunningJob,
} from "../../planner";
import type { PoolConfig } from "../../pools";
import { SimAsg } from "../asg";
import type { SimInstance, SimJob, SimPool } from "../fleet";
import { type Policy, type PolicyContext, randomFor } from "../policy";

/**
 * Hearth: the planner (`packages/core/src/planner`) run the way the ScaleFleet workflow runs it.
 * - A webhook (a job queued or finished) starts a run after the webhook delay plus `gatherSeconds`.
 *   A run observes, plans and applies, then waits and runs again until settled: every
 *   `loopSeconds` while jobs wait or instances launch, and at the plan's `recheckAt` (when an idle
 *   instance reaches its timeout). The sweep cron starts a run every `cronSeconds` as a safety net.
 * - Each pool has a warm group (on-demand, warm pool of Stopped instances, ReuseOnScaleIn) and a
 *   burst group (spot), both protected from scale-in; plans are applied to them as a driver would.
 * - On a spot interruption warning, the instance drains and is detached from its group (desired
 *   capacity decremented); the next plan replaces the capacity its jobs will need.
 * - The control plane sees queued jobs when their webhook arrives and busy slots from the
 *   instances (heartbeats); the forecast is fed the same webhooks.
 */

export interface HearthOptions {
  /**
   * A run started by a webhook waits this long first: a pipeline's jobs arrive within seconds of
   * each other, and instances resumed together become ready together, so that each job finds its
   * warm store rather than the first free slot.
   */
  gatherSeconds: number;
  loopSeconds: number;
  cronSeconds: number;
  /** How often the forecast is recomputed (a control plane caches it too). */
  forecastSeconds: number;
}

export const defaultHearthOptions: HearthOptions = {
  gatherSeconds: 5,
  loopSeconds: 15,
  cronSeconds: 300,
  forecastSeconds: 60,
};

const ms = (seconds: number): number => Math.round(seconds * 1000);

export function hearthPolicy(options: HearthOptions = defaultHearthOptions) {
  return (context: PolicyContext): Policy => new HearthPolicy(context, options);
}

interface PoolGroups {
  warm: SimAsg;
  burst: SimAsg;
}

class HearthPolicy implements Policy {
  private readonly groups = new Map<SimPool, PoolGroups>();
  private readonly configs = new Map<SimPool, PoolConfig>();
  /**
   * The control plane's jobs: queued ones once their webhook arrives, running ones as instances
   * report them. The planner keeps nothing, so the same objects are updated from run to run.
   */
  private readonly jobs = new Map<SimJob, PlannerJob>();
  private readonly history = new DemandHistory();
  private demand: Demand = {};
  private demandAt = Number.NEGATIVE_INFINITY;
  private nextRun = Number.POSITIVE_INFINITY;

  constructor(
    private readonly context: PolicyContext,
    private readonly options: HearthOptions,
  ) {
    const random = randomFor(context, "asg");
    for (const [index, pool] of context.fleet.pools.entries()) {
      const config = context.pools[index];
      if (config === undefined) throw new Error(`no config for pool ${pool.name}`);
      this.configs.set(pool, config);
      const launched = { spot: 0, onDemand: 0 };
      this.groups.set(pool, {
        warm: new SimAsg(context.fleet, pool, {
          group: "warm",
          market: () => "on-demand",
          warmPoolSize: 0,
          protectedFromScaleIn: true,
          random,
        }),
        burst: new SimAsg(context.fleet, pool, {
          group: "burst",
          // A mixed-instances group keeps its on-demand share; spot shortages are not modelled, so
          // the on-demand fallback never triggers.
          market: () => {
            const total = launched.spot + launched.onDemand + 1;
            if (launched.onDemand < Math.floor((1 - config.burst.spotShare) * total + 1e-9)) {
              launched.onDemand++;
              return "on-demand";
            }
            launched.spot++;
            return "spot";
          },
          warmPoolSize: null,
          protectedFromScaleIn: true,
          random,
        }),
      });
    }
  }

  readonly observer = {
    jobQueued: (job: SimJob) => {
      const { clock, model } = this.context;
      // Queued again after an interruption: its instance is gone, so it no longer runs.
      this.jobs.delete(job);
      clock.after(model.webhookDelaySeconds, () => {
        if (job.seenAt < 0) {
          job.seenAt = clock.now;
          this.history.observe({
            pool: job.pool.name,
            at: ms(job.trace.createdAt),
            cacheKey: job.trace.cacheKey,
          });
        }
        if (job.state === "queued") this.track(job, null);
        this.request(clock.now + this.options.gatherSeconds);
      });
    },
    jobStarted: (job: SimJob, instance: SimInstance) => {
      this.track(job, instance);
    },
    jobFinished: (job: SimJob, instance: SimInstance) => {
      this.jobs.delete(job);
      const { clock, model } = this.context;
      clock.after(model.webhookDelaySeconds, () => this.history.finish(job.pool.name, ms(clock.now)));
      // A finish changes the plan only once its instance has sat idle for its timeout (queued jobs
      // take the slot by themselves, and keep the loop running), so the run is asked for then: the
      // workflow would plan at the webhook and wait until the plan's `recheckAt`.
      if (instance.busy === 0) {
        const config = this.configs.get(instance.pool) as PoolConfig;
        const timeout =
          instance.group === "warm" ? config.idleTimeouts.warmSeconds : config.idleTimeouts.burstSeconds;
        this.request(clock.now + Math.max(model.webhookDelaySeconds + this.options.gatherSeconds, timeout));
      }
    },
    spotWarning: (instance: SimInstance) => {
      this.context.fleet.drain(instance);
      if (instance.owner instanceof SimAsg) instance.owner.detach(instance, true);
      this.request(this.context.clock.now + this.context.model.webhookDelaySeconds);
    },
    instanceTerminated: (instance: SimInstance) => {
      if (instance.owner instanceof SimAsg) instance.owner.forget(instance);
    },
  };

  start(): void {
    const { clock } = this.context;
    const cron = () => {
      if (!this.context.active()) return;
      this.request(clock.now);
      clock.after(this.options.cronSeconds, cron);
    };
    clock.at(0, cron);
  }

  /** Asks for a run at `at`; runs coalesce, and the earliest request wins. */
  private request(at: number): void {
    if (at >= this.nextRun) return;
    this.nextRun = at;
    this.context.clock.at(at, () => {
      if (this.nextRun !== at) return;
      this.nextRun = Number.POSITIVE_INFINITY;
      this.run();
    });
  }

  private run(): void {
    const { clock, fleet } = this.context;
    const now = clock.now;
    if (now - this.demandAt >= this.options.forecastSeconds) {
      this.demand = this.history.forecast(ms(now));
      this.demandAt = now;
    }
    const plans = plan({
      now: ms(now),
      pools: this.context.pools,
      ...this.observeJobs(),
      instances: this.observeInstances(),
      demand: this.demand,
    });
    let next = Number.POSITIVE_INFINITY;
    for (let index = 0; index < fleet.pools.length; index++) {
      const pool = fleet.pools[index] as SimPool;
      const poolPlan = plans[index] as PoolPlan;
      this.apply(pool, poolPlan);
      if (poolPlan.recheckAt !== null) next = Math.min(next, poolPlan.recheckAt / 1000);
      if (poolPlan.counts.queued > 0 || this.launching[index])
        next = Math.min(next, now + this.options.loopSeconds);
    }
    if (Number.isFinite(next) && this.context.active()) this.request(Math.max(next, now + 1));
  }

  private apply(pool: SimPool, poolPlan: PoolPlan): void {
    const groups = this.groups.get(pool) as PoolGroups;
    // Nothing changed and nothing left for AWS to retry (a launch refused at the instance limit).
    if (
      poolPlan.release.length === 0 &&
      poolPlan.desiredWarm === groups.warm.desired &&
      poolPlan.desiredBurst === groups.burst.desired &&
      poolPlan.warmPoolSize === groups.warm.warmPoolSize &&
      groups.warm.satisfied &&
      groups.burst.satisfied
    ) {
      return;
    }
    const released = { warm: [] as SimInstance[], burst: [] as SimInstance[] };
    for (const id of poolPlan.release) {
      const instance = pool.instances.find((candidate) => candidate.id === id);
      if (instance?.owner === groups.warm) released.warm.push(instance);
      else if (instance?.owner === groups.burst) released.burst.push(instance);
    }
    groups.warm.apply({
      release: released.warm,
      desired: poolPlan.desiredWarm,
      warmPoolSize: poolPlan.warmPoolSize,
    });
    groups.burst.apply({ release: released.burst, desired: poolPlan.desiredBurst });
  }

  private track(job: SimJob, instance: SimInstance | null): void {
    let view = this.jobs.get(job);
    if (view === undefined) {
      view = {
        key: job.trace.id,
        pool: job.pool.name,
        status: "queued",
        cacheKey: job.trace.cacheKey,
        queuedAt: 0,
        instanceId: null,
      };
      this.jobs.set(job, view);
    }
    view.status = instance === null ? "queued" : "running";
    view.queuedAt = ms(job.queuedAt);
    view.instanceId = instance?.id ?? null;
  }

  /** The jobs as ScaleFleet's Observe gives them: the queue summarised by cache key, running jobs. */
  private observeJobs(): Pick<PlannerInput, "queued" | "running"> {
    const queue = new QueueSummary();
    const running: RunningJob[] = [];
    for (const job of this.jobs.values()) {
      if (job.status === "queued") queue.add(job);
      else if (job.instanceId !== null)
        running.push({ key: job.key, pool: job.pool, instanceId: job.instanceId });
    }
    return { queued: queue.groups(), running };
  }

  /** Per pool, whether an instance was launching at the last observation. */
  private readonly launching: boolean[] = [];

  private observeInstances(): PlannerInstance[] {
    const views: PlannerInstance[] = [];
    const pools = this.context.fleet.pools;
    for (let index = 0; index < pools.length; index++) {
      const pool = pools[index] as SimPool;
      this.launching[index] = false;
      for (const instance of pool.instances) {
        if (instance.state === "launching") this.launching[index] = true;
        let view = instance.view as PlannerInstance | null;
        if (view === null) {
          view = {
            id: instance.id,
            pool: pool.name,
            group: instance.group === "warm" ? "warm" : "burst",
            market: instance.market,
            state: "launching",
            slots: instance.slots,
            busySlots: 0,
            cacheKeys: instance.keys,
            launchedAt: 0,
            idleSince: null,
            heartbeatOverdue: false,
          };
          instance.view = view;
        }
        view.state =
          instance.state === "launching" && instance.intoWarmPool
            ? "stopping"
            : instance.state === "terminated"
              ? "terminating"
              : instance.state;
        view.busySlots = instance.busy;
        view.cacheKeys = instance.keys;
        view.launchedAt = ms(instance.launchedAt);
        view.idleSince = instance.idleSince === null ? null : ms(instance.idleSince);
        views.push(view);
      }
    }
    return views;
  }
}
