import type { FleetGroup } from "../../../fleet";
import {
  type Demand,
  DemandHistory,
  type PlannerInstance,
  type PoolPlan,
  QueueSummary,
} from "../../../planner";
import type { PoolConfig } from "../../../pools";
import { afterIteration } from "../../../scaling/apply";
import { type Observation, observedQueue, planObservation } from "../../../scaling/plan-input";
import type { PoolState } from "../../../scaling/records";
import { FORECAST_EVERY_MS, poolNeedsRun } from "../../../scaling/tick";
import { SimAsg } from "../asg";
import type { SimInstance, SimJob, SimPool } from "../fleet";
import { type Policy, type PolicyContext, randomFor } from "../policy";
import {
  defaultInterruptionSettings,
  HearthInterruptions,
  type InterruptionSettings,
} from "./hearth-interruptions";

/**
 * Hearth as it ships, replayed: the triggers, steps and waits of production's control loop, with the
 * fleet simulated.
 * - A queued job's webhook arrives after the model's delay, and does what the webhook route does
 *   (`requestScale`): it takes one of the pool's spare slots if the last iteration left one, else it
 *   starts a ScaleFleet run unless one is under way (the pool's lease).
 * - The minute tick refreshes the forecast when it is ten minutes old and starts a run for every pool
 *   that `poolNeedsRun` (production's rule: queued jobs, instances in service, or nothing stored).
 * - A run iterates as the workflow does: Observe (an `Observation` assembled from the simulator's
 *   state, its queue summarised by the same code), Plan (`planObservation`, the Plan task's own
 *   function), Apply (releases of instances still idle, then capacities), then `afterIteration`
 *   decides: settled ends the run, else it waits 5 s while instances boot or stop and 15 s otherwise,
 *   for at most `maxIterations` iterations.
 * - Each pool has a warm group (on-demand, warm pool of Stopped instances, ReuseOnScaleIn) and a
 *   burst group (spot), both protected from scale-in, as the AWS driver sets them up.
 * - A spot interruption is handled as HandleInterruption and the agent do it (`hearth-interruptions.ts`):
 *   the instance drains at once, is detached from its group (which replaces it at once) and a run
 *   starts; jobs still running 30 s before the deadline are stopped, and retried once the forge has
 *   ended them (GitLab at once, GitHub when the workflow run completes), at most `retryInterrupted`
 *   times; with `retryOnDemand`, the capacity a queued retry needs comes from the warm (on-demand)
 *   group (the planner's step 1b, as in the product).
 * Not modelled: heartbeat lag (the control plane sees busy slots as they are), and the tens of
 * milliseconds a run's steps take (`npm run bench:scale`).
 */

export interface HearthOptions extends InterruptionSettings {
  /** The minute tick. */
  tickSeconds: number;
  /** A run stops after this many iterations (local mode's and the stage's default). */
  maxIterations: number;
  /** Called with every observation a run makes and the plan made from it. */
  onPlan?: (observation: Observation, plan: PoolPlan) => void;
}

export const defaultHearthOptions: HearthOptions = {
  tickSeconds: 60,
  maxIterations: 60,
  ...defaultInterruptionSettings,
};

const ms = (seconds: number): number => Math.round(seconds * 1000);

export function hearthPolicy(options: HearthOptions = defaultHearthOptions) {
  return (context: PolicyContext): Policy => new HearthPolicy(context, options);
}

/** What production keeps per pool: its groups, the stored pool state, and whether a run holds the lease. */
interface PoolControl {
  index: number;
  sim: SimPool;
  config: PoolConfig;
  warm: SimAsg;
  burst: SimAsg;
  /** A run holds the pool's lease. */
  running: boolean;
  iteration: number;
  /** The stored pool state: what the last iteration asked for, and the spare slots it left. */
  state: PoolState | undefined;
  spareSlots: number;
}

class HearthPolicy implements Policy {
  private readonly pools: PoolControl[] = [];
  /**
   * The ledger's queued jobs per pool (by index): a job counts once its webhook arrived, until the
   * webhook of its start arrives.
   */
  private readonly queued: Set<SimJob>[];
  private readonly history = new DemandHistory();
  private demand: Demand = {};
  private demandAt = Number.NEGATIVE_INFINITY;
  private readonly interruptions: HearthInterruptions;

  constructor(
    private readonly context: PolicyContext,
    private readonly options: HearthOptions,
  ) {
    this.queued = context.fleet.pools.map(() => new Set<SimJob>());
    const random = randomFor(context, "asg");
    for (const [index, sim] of context.fleet.pools.entries()) {
      const config = context.pools[index];
      if (config === undefined) throw new Error(`no config for pool ${sim.name}`);
      const launched = { spot: 0, onDemand: 0 };
      this.pools.push({
        index,
        sim,
        config,
        warm: new SimAsg(context.fleet, sim, {
          group: "warm",
          market: () => "on-demand",
          warmPoolSize: 0,
          protectedFromScaleIn: true,
          random,
        }),
        burst: new SimAsg(context.fleet, sim, {
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
        running: false,
        iteration: 0,
        state: undefined,
        spareSlots: 0,
      });
    }
    this.interruptions = new HearthInterruptions(
      context.fleet,
      context.clock,
      context.model,
      options,
      context.jobs,
      (instance) => {
        const pool = this.pools[instance.pool.index] as PoolControl;
        if (instance.owner instanceof SimAsg) instance.owner.detach(instance);
        this.requestScale(pool, false);
      },
    );
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
        // The ledger holds it queued until the webhook of its start arrives (below).
        if (job.state !== "done") this.queued[job.pool.index]?.add(job);
        this.requestScale(this.pools[job.pool.index] as PoolControl, true);
      });
    },
    jobStarted: (job: SimJob) => {
      this.context.clock.after(this.context.model.webhookDelaySeconds, () =>
        this.queued[job.pool.index]?.delete(job),
      );
      this.interruptions.jobStarted(job);
    },
    instanceReady: (instance: SimInstance) => this.interruptions.instanceReady(instance),
    jobFinished: (job: SimJob) => {
      const { clock, model } = this.context;
      clock.after(model.webhookDelaySeconds, () => this.history.finish(job.pool.name, ms(clock.now)));
      this.interruptions.jobFinished(job);
    },
    spotWarning: (instance: SimInstance) => this.interruptions.warning(instance),
    jobInterrupted: (job: SimJob) => this.interruptions.jobInterrupted(job),
    instanceTerminated: (instance: SimInstance) => {
      if (instance.owner instanceof SimAsg) instance.owner.forget(instance);
    },
  };

  start(): void {
    const { clock } = this.context;
    const tick = () => {
      if (!this.context.active()) return;
      this.tick();
      clock.after(this.options.tickSeconds, tick);
    };
    clock.at(0, tick);
  }

  /** The webhook's `requestScale` (`covered`), or the tick's (without spare slots). */
  private requestScale(pool: PoolControl, covered: boolean): void {
    if (covered && pool.spareSlots > 0) {
      pool.spareSlots--;
      return;
    }
    if (pool.running) return;
    pool.running = true;
    pool.iteration = 0;
    this.iterate(pool);
  }

  private tick(): void {
    const now = ms(this.context.clock.now);
    if (now - this.demandAt >= FORECAST_EVERY_MS) {
      this.demand = this.history.forecast(now);
      this.demandAt = now;
    }
    for (const pool of this.pools) {
      const active = pool.sim.instances.some((instance) => instance.live);
      const queued = this.queued[pool.index]?.size ?? 0;
      if (poolNeedsRun(pool.state, active, queued, now)) {
        this.requestScale(pool, false);
      }
    }
  }

  /** One iteration of ScaleFleet: Observe, Plan, Apply, then settled or wait. */
  private iterate(pool: PoolControl): void {
    const { clock } = this.context;
    const observation = this.observe(pool);
    pool.iteration = observation.iteration;
    // The planner itself puts queued retries' new capacity on demand (pool setting `retryOnDemand`).
    const pools = this.context.pools.map((p) => ({ ...p, retryOnDemand: this.options.retryOnDemand }));
    const poolPlan = planObservation({ pools }, observation);
    this.options.onPlan?.(observation, poolPlan);
    const { calls, target } = this.apply(pool, observation, poolPlan);
    const after = afterIteration(observation, target, pool.config.slotsPerInstance, calls);
    pool.spareSlots = after.spareSlots;
    pool.state = {
      pool: pool.sim.name,
      at: new Date(observation.at).toISOString(),
      desiredWarm: target.warm,
      desiredBurst: target.burst,
      warmPoolSize: poolPlan.warmPoolSize,
      queued: observation.queued,
      spareSlots: after.spareSlots,
      reason: poolPlan.reason,
    };
    if (after.settled || observation.iteration >= this.options.maxIterations || !this.context.active()) {
      pool.running = false;
      return;
    }
    clock.after(after.waitSeconds, () => this.iterate(pool));
  }

  /** The pool's queue summarised as Observe summarises the ledger's. */
  private queueSummary(pool: PoolControl): QueueSummary {
    const summary = new QueueSummary();
    for (const job of this.queued[pool.index] ?? []) {
      summary.add({
        pool: job.pool.name,
        cacheKey: job.trace.cacheKey,
        queuedAt: ms(job.trace.createdAt),
        retry: job.retries > 0,
      });
    }
    return summary;
  }

  /** What Observe would return for the pool: the queue, running jobs, instances and groups. */
  private observe(pool: PoolControl): Observation {
    const now = ms(this.context.clock.now);
    const instances: PlannerInstance[] = [];
    const running: Observation["running"] = [];
    for (const instance of pool.sim.instances) {
      instances.push(this.instanceView(instance));
      for (const job of instance.running) {
        running.push({ key: job.trace.id, pool: pool.sim.name, instanceId: instance.id });
      }
    }
    const groups: FleetGroup[] = [
      {
        pool: pool.sim.name,
        group: "warm",
        name: `${pool.sim.name}-warm`,
        desired: pool.warm.desired,
        max: pool.config.maxInstances,
        warmPoolSize: pool.warm.warmPoolSize,
        onDemandFallback: false,
      },
      {
        pool: pool.sim.name,
        group: "burst",
        name: `${pool.sim.name}-burst`,
        desired: pool.burst.desired,
        max: pool.config.maxInstances,
        warmPoolSize: null,
        onDemandFallback: false,
      },
    ];
    return {
      pool: pool.sim.name,
      at: now,
      iteration: pool.iteration + 1,
      ...observedQueue(this.queueSummary(pool), pool.sim.name),
      running,
      instances,
      groups,
      demand: this.demand[pool.sim.name] ?? null,
      ...(this.interruptions.held(pool.sim) ? { held: true } : {}),
    };
  }

  private instanceView(instance: SimInstance): PlannerInstance {
    return {
      id: instance.id,
      pool: instance.pool.name,
      group: instance.group === "warm" ? "warm" : "burst",
      market: instance.market,
      state:
        instance.state === "launching" && instance.intoWarmPool
          ? "stopping"
          : instance.state === "terminated"
            ? "terminating"
            : instance.state,
      slots: instance.slots,
      busySlots: instance.state === "ready" || instance.state === "draining" ? instance.busy : 0,
      cacheKeys: [...instance.keys],
      launchedAt: ms(instance.launchedAt),
      idleSince: instance.state === "ready" && instance.idleSince !== null ? ms(instance.idleSince) : null,
      heartbeatOverdue: false,
    };
  }

  /**
   * Apply as the driver does: release the plan's instances that are still idle (a refused one stays
   * counted in its group's desired capacity), then set desired capacities and the warm pool's size.
   * Returns how many API calls that made.
   */
  private apply(
    pool: PoolControl,
    observation: Observation,
    poolPlan: PoolPlan,
  ): { calls: number; target: { warm: number; burst: number } } {
    const released = { warm: [] as SimInstance[], burst: [] as SimInstance[] };
    let refused = { warm: 0, burst: 0 };
    for (const id of poolPlan.release) {
      const instance = pool.sim.instances.find((candidate) => candidate.id === id);
      const group = observation.instances.find((view) => view.id === id)?.group ?? "burst";
      if (instance?.state === "ready" && instance.busy === 0 && instance.owner === pool[group]) {
        released[group].push(instance);
      } else refused = { ...refused, [group]: refused[group] + 1 };
    }
    const cap = (n: number) => Math.max(0, Math.min(n, pool.config.maxInstances));
    const target = {
      warm: cap(poolPlan.desiredWarm + refused.warm),
      burst: cap(poolPlan.desiredBurst + refused.burst),
    };
    // Each release is two calls (unprotect, decrement); a changed desired capacity or warm pool one.
    let calls = 2 * (released.warm.length + released.burst.length);
    // Desired capacity as the group counts it after the releases (each lowers it by one).
    if (pool.warm.desired - released.warm.length !== target.warm) calls++;
    if (pool.warm.warmPoolSize !== poolPlan.warmPoolSize) calls++;
    if (pool.burst.desired - released.burst.length !== target.burst) calls++;
    // AWS keeps working towards desired capacity without a call (a launch refused at the instance
    // limit is retried): applying an unchanged target reconciles.
    pool.warm.apply({ release: released.warm, desired: target.warm, warmPoolSize: poolPlan.warmPoolSize });
    pool.burst.apply({ release: released.burst, desired: target.burst });
    return { calls, target };
  }
}
