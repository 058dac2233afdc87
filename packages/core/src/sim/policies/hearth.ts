import {
  DemandHistory,
  type Demand,
  type PlannerInstance,
  type PlannerJob,
  type PoolPlan,
  plan,
} from "../../planner";
import { SimAsg } from "../asg";
import type { SimInstance, SimJob, SimPool } from "../fleet";
import { type Policy, type PolicyContext, randomFor } from "../policy";

/**
 * Hearth: the planner (`packages/core/src/planner`) run the way the ScaleFleet workflow runs it.
 * - A webhook (job queued or finished) starts a run after the webhook delay; a cron starts one every
 *   minute. A run observes, plans, applies, then waits `loopSeconds` and goes again until settled (no
 *   job waiting, no instance launching).
 * - Each pool has a warm group (on-demand, warm pool of Stopped instances, ReuseOnScaleIn) and a burst
 *   group (spot), both protected from scale-in; plans are applied to them as a driver would.
 * - On a spot interruption warning, the instance drains and is detached from its group (desired
 *   capacity decremented); the next plan replaces the capacity its jobs will need.
 */

export interface HearthOptions {
  /**
   * A run started by a webhook waits this long first: a pipeline's jobs arrive within seconds of
   * each other, and instances resumed together become ready together, so each job finds its warm
   * store instead of the first free slot.
   */
  gatherSeconds: number;
  loopSeconds: number;
  cronSeconds: number;
  /** How often the forecast is recomputed (a control plane would cache it as well). */
  forecastSeconds: number;
}

export const defaultHearthOptions: HearthOptions = {
  gatherSeconds: 5,
  loopSeconds: 15,
  cronSeconds: 60,
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
  /** Queued jobs whose webhook has arrived. */
  private readonly seen = new Set<SimJob>();
  private readonly history = new DemandHistory();
  private demand: Demand = {};
  private demandAt = Number.NEGATIVE_INFINITY;
  private nextRun = Number.POSITIVE_INFINITY;
  readonly plans: PoolPlan[][] = [];

  constructor(
    private readonly context: PolicyContext,
    private readonly options: HearthOptions,
  ) {
    const random = randomFor(context, "asg");
    for (const [index, pool] of context.fleet.pools.entries()) {
      const config = context.pools[index];
      if (config === undefined) throw new Error(`no config for pool ${pool.name}`);
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
      clock.after(model.webhookDelaySeconds, () => {
        if (job.seenAt < 0) {
          job.seenAt = clock.now;
          this.history.observe({
            pool: job.pool.name,
            at: ms(job.trace.createdAt),
            cacheKey: job.trace.cacheKey,
          });
        }
        if (job.state === "queued") this.seen.add(job);
        this.request(clock.now + this.options.gatherSeconds);
      });
    },
    jobStarted: (job: SimJob) => {
      this.seen.delete(job);
    },
    jobFinished: (job: SimJob) => {
      const { clock, model } = this.context;
      clock.after(model.webhookDelaySeconds, () => {
        this.history.finish(job.pool.name, ms(clock.now));
        this.request(clock.now);
      });
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
    process.on("exit", () => console.error("total runs", HearthPolicy.runs));
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

  static runs = 0;
  private run(): void {
    HearthPolicy.runs++;
    if (HearthPolicy.runs % 100000 === 0) console.error("runs", HearthPolicy.runs);
    const { clock, fleet } = this.context;
    const now = clock.now;
    if (now - this.demandAt >= this.options.forecastSeconds) {
      this.demand = this.history.forecast(ms(now));
      this.demandAt = now;
    }
    const plans = plan({
      now: ms(now),
      pools: this.context.pools,
      jobs: this.observeJobs(),
      instances: this.observeInstances(),
      demand: this.demand,
    });
    let settled = true;
    for (const [index, pool] of fleet.pools.entries()) {
      const poolPlan = plans[index] as PoolPlan;
      this.apply(pool, poolPlan);
      if (poolPlan.counts.queued > 0 || pool.instances.some((i) => i.state === "launching")) settled = false;
    }
    if (!settled && this.context.active()) this.request(now + this.options.loopSeconds);
    if (!this.context.active()) console.error("total runs", HearthPolicy.runs);
  }

  private apply(pool: SimPool, poolPlan: PoolPlan): void {
    const groups = this.groups.get(pool) as PoolGroups;
    const released = { warm: [] as SimInstance[], burst: [] as SimInstance[] };
    for (const id of poolPlan.release) {
      const instance = pool.instances.find((candidate) => candidate.id === id);
      if (instance === undefined) continue;
      if (instance.owner === groups.warm) released.warm.push(instance);
      else if (instance.owner === groups.burst) released.burst.push(instance);
    }
    groups.warm.apply({
      release: released.warm,
      desired: poolPlan.desiredWarm,
      warmPoolSize: poolPlan.warmPoolSize,
    });
    groups.burst.apply({ release: released.burst, desired: poolPlan.desiredBurst });
  }

  private observeJobs(): PlannerJob[] {
    const jobs: PlannerJob[] = [];
    for (const job of this.seen) {
      jobs.push({
        key: job.trace.id,
        pool: job.pool.name,
        status: "queued",
        cacheKey: job.trace.cacheKey,
        queuedAt: ms(job.queuedAt),
        instanceId: null,
      });
    }
    // Busy state comes from the instances (the agent's heartbeat), not from the forge.
    for (const pool of this.context.fleet.pools) {
      for (const instance of pool.instances) {
        for (const job of instance.running) {
          jobs.push({
            key: job.trace.id,
            pool: pool.name,
            status: "running",
            cacheKey: job.trace.cacheKey,
            queuedAt: ms(job.queuedAt),
            instanceId: instance.id,
          });
        }
      }
    }
    return jobs;
  }

  private observeInstances(): PlannerInstance[] {
    const instances: PlannerInstance[] = [];
    for (const pool of this.context.fleet.pools) {
      for (const instance of pool.instances) {
        instances.push({
          id: instance.id,
          pool: pool.name,
          group: instance.group === "warm" ? "warm" : "burst",
          market: instance.market,
          state:
            instance.state === "launching" && instance.intoWarmPool
              ? "stopping"
              : instance.state === "terminated"
                ? "terminating"
                : instance.state,
          slots: instance.slots,
          busySlots: instance.busy,
          cacheKeys: instance.keys,
          launchedAt: ms(instance.launchedAt),
          idleSince: instance.idleSince === null ? null : ms(instance.idleSince),
          heartbeatOverdue: false,
        });
      }
    }
    return instances;
  }
}
