import type { FleetGroup } from "../../../fleet";
import {
  type Demand,
  DemandHistory,
  type PlannerInstance,
  type PoolPlan,
  QueueSummary,
} from "../../../planner";
import { DEFAULT_WARM_MARKET, lastRetry, type PoolConfig, type WarmMarket } from "../../../pools";
import { afterIteration } from "../../../scaling/apply";
import { type Observation, observedQueue, planObservation } from "../../../scaling/plan-input";
import type { PoolState } from "../../../scaling/records";
import { SUPERSEDE_MARGIN_MS } from "../../../scaling/request";
import { FORECAST_EVERY_MS, poolNeedsRun } from "../../../scaling/tick";
import {
  COLD_LISTEN_DELAY_MS,
  LISTENING_LOOKAHEAD,
  type ListeningStore,
  listeningStoresFor,
  PLACEMENT_GIVE_UP_MS,
} from "../../../stores/listening";
import { SimAsg } from "../asg";
import type { LaunchOptions, ListeningRule, SimInstance, SimJob, SimPool, StoreVolume } from "../fleet";
import { type Policy, type PolicyContext, randomFor, timersStart } from "../policy";
import {
  defaultInterruptionSettings,
  HEARTBEAT_SECONDS,
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
 * - The binary cache is on (`index.ts`, `policyVariant`): the runner image substitutes from the
 *   stage's cache and pushes every build to it (`nixos/modules/binary-cache.nix`; `infra/fleet.ts`
 *   gives the agent config the stage bucket's URL).
 * - A spot interruption is handled as HandleInterruption and the agent do it (`hearth-interruptions.ts`):
 *   the instance drains at once, is detached from its group (which replaces it at once) and a run
 *   starts; jobs still running 30 s before the deadline are stopped, and retried once the forge has
 *   ended them (GitLab at once, GitHub when the workflow run completes), at most `retryInterrupted`
 *   times; with `retryOnDemand`, the capacity a queued retry needs comes from the warm (on-demand)
 *   group (the planner's step 1b, as in the product).
 * Not modelled: heartbeat lag (the control plane sees busy slots as they are), and the tens of
 * milliseconds a run's steps take (`npm run bench:scale`).
 */

/**
 * Prototypes of mechanisms the product does not build yet (warm stores for real), each off by default
 * so that Hearth is credited only with what it ships. Each follows the fleet model's rules
 * (`traces/README.md`): what AWS and the forges do, and what Hearth would have to build.
 */
export interface StoreMechanisms {
  /**
   * Hearth names the stopped instance that resumes (stopped instances kept outside the warm pool:
   * Standby then StopInstances, or EC2 directly): the store warm for the oldest queued job whose key
   * no running store covers, else the one the forecast values most. Same 25 s, same stopped price.
   */
  chooseResume: boolean;
  /**
   * With `chooseResume`, the planner resumes only the stores the queue needs (no extra ones to make a
   * warm store likely among AWS's picks, its step 2), since Hearth names which.
   */
  resumeOnlyNeeded: boolean;
  /**
   * Placement without the heartbeat's lag (the optimistic bound): every agent learns which of its
   * slots listen the moment the control plane would decide it. No product can do this.
   */
  instantListening: boolean;
  /**
   * Free slots listen while their agent knows of no queued job (`all`), instead of none listening
   * (`none`, as built): a job that arrives is then taken at once by any store, warm or not.
   */
  idleListening: "all" | "none";
  /**
   * Stores on their own EBS volumes: the warm group runs on spot without a warm pool, every instance's
   * store is a volume kept (detached, at the stopped price) when the instance goes, and a new instance
   * attaches one in its zone (+20 s). `pinned`: Hearth picks the volume (as `chooseResume` picks) and
   * launches in its zone; `any-zone`: the instance lands in a random zone and takes the best volume there.
   */
  storeVolumes: "off" | "pinned" | "any-zone";
  /** A detached store volume is deleted this long after it was detached. */
  volumeRetentionHours: number;
  /**
   * A stopped store not resumed for this many hours is terminated (0: never), at the minute tick. With
   * the binary cache a stopped store saves a job only the substitution's minute, so one that waits
   * long pays more in EBS than it saves; the planner only grows the warm group back when the forecast
   * asks for it.
   */
  stoppedStoreTtlHours: number;
}

export const defaultStoreMechanisms: StoreMechanisms = {
  chooseResume: false,
  resumeOnlyNeeded: true,
  instantListening: false,
  idleListening: "none",
  storeVolumes: "off",
  volumeRetentionHours: 24,
  stoppedStoreTtlHours: 0,
};

/**
 * Warm-first placement as built (the pool setting `placement`, core's `listeningStores`): which
 * stores' free slots listen, as each agent hears it in its heartbeat's answer.
 */
export interface PlacementSettings {
  placement: "warm-first" | "any";
  /** How long the oldest queued job waits for a busy warm store before cold stores listen too. */
  coldListenDelaySeconds: number;
  /** An agent hears the decision at its heartbeat, every this many seconds from its boot. */
  heartbeatSeconds: number;
  /** A slot told to listen listens this much later (a GitHub runner is minted and started). */
  listenerStartSeconds: number;
}

export const defaultPlacementSettings: PlacementSettings = {
  placement: "warm-first",
  coldListenDelaySeconds: COLD_LISTEN_DELAY_MS / 1000,
  heartbeatSeconds: HEARTBEAT_SECONDS,
  listenerStartSeconds: 5,
};

export interface HearthOptions extends InterruptionSettings {
  /** Warm-first placement, as built, and its model's lags. */
  placement: PlacementSettings;
  /**
   * The pools' `warm.market`, as built. `spot`: Hearth keeps the warm group through EC2, as persistent
   * spot instances (interruption behaviour stop) that run at the spot price; an interruption stops one
   * with its store; the planner names which stopped store starts, and a start finds capacity with the
   * model's probability (else it fails after 10 s and another is tried); retried jobs' capacity is
   * launched on-demand into the group. `on-demand`: an Auto Scaling warm pool.
   */
  warmMarket: WarmMarket;
  /**
   * Prototypes of store mechanisms the product does not build yet (all off by default, and off in
   * every published default figure).
   */
  mechanisms: StoreMechanisms;
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
  placement: defaultPlacementSettings,
  warmMarket: DEFAULT_WARM_MARKET,
  mechanisms: defaultStoreMechanisms,
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
  /** The run under way waits until then (simulated seconds), or null while it works or none runs. */
  waitingUntil: number | null;
  /** Counts runs: a wait ends in an iteration only if no run superseded its own. */
  run: number;
}

class HearthPolicy implements Policy {
  private readonly pools: PoolControl[] = [];
  /**
   * The ledger's queued jobs per pool (by index): a job counts once its webhook arrived, until the
   * webhook of its start arrives.
   */
  private readonly queued: QueuedJobs[];
  private readonly history = new DemandHistory();
  private demand: Demand = {};
  private demandAt = Number.NEGATIVE_INFINITY;
  private readonly interruptions: HearthInterruptions;
  /** The pools' settings as the planner reads them (the same every iteration). */
  private readonly configs: PoolConfig[];
  /** Each pool's placement decision (by index), for the job the forge hands out now. */
  private readonly decisions: PlacementDecision[];

  constructor(
    private readonly context: PolicyContext,
    private readonly options: HearthOptions,
  ) {
    this.queued = context.fleet.pools.map(() => new QueuedJobs());
    const heardAt = (instance: SimInstance, now: number) => this.heardAt(instance, now);
    const inForceAfter = (instance: SimInstance, at: number) => this.inForceAfter(instance, at);
    this.decisions = context.fleet.pools.map(
      () =>
        new PlacementDecision(
          heardAt,
          inForceAfter,
          options.placement.coldListenDelaySeconds,
          options.mechanisms.idleListening === "all",
        ),
    );
    const random = randomFor(context, "asg");
    const mechanisms = options.mechanisms;
    const volumes = mechanisms.storeVolumes !== "off";
    const spotWarm = options.warmMarket === "spot" && !volumes;
    if (volumes) context.fleet.volumeRetentionSeconds = mechanisms.volumeRetentionHours * 3600;
    if (options.placement.placement === "warm-first")
      context.fleet.listening = (pool, head) => this.listening(pool, head);
    for (const [index, sim] of context.fleet.pools.entries()) {
      const given = context.pools[index];
      if (given === undefined) throw new Error(`no config for pool ${sim.name}`);
      // The planner reads these pool settings itself: queued retries' capacity on demand, and a warm
      // group Hearth keeps (named resumes).
      const config: PoolConfig = {
        ...given,
        retryOnDemand: options.retryOnDemand,
        warm: { ...given.warm, market: spotWarm ? "spot" : "on-demand" },
      };
      const launched = { spot: 0, onDemand: 0 };
      const volumeFor = (): Partial<LaunchOptions> =>
        volumes ? { storeVolume: true, ...this.volumeToAttach(index) } : {};
      this.pools.push({
        index,
        sim,
        config,
        warm: new SimAsg(context.fleet, sim, {
          group: "warm",
          market: () => (volumes || spotWarm ? "spot" : "on-demand"),
          warmPoolSize: volumes ? null : 0,
          protectedFromScaleIn: true,
          random,
          ...(spotWarm ? { keptByPolicy: true } : {}),
          ...(mechanisms.chooseResume && !spotWarm
            ? { chooseResume: (stopped: SimInstance[]) => this.storeFor(index, stopped) }
            : {}),
          launchOptions: () => ({
            ...(spotWarm ? { persistent: true } : {}),
            ...volumeFor(),
          }),
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
          launchOptions: volumeFor,
        }),
        running: false,
        iteration: 0,
        state: undefined,
        spareSlots: 0,
        waitingUntil: null,
        run: 0,
      });
    }
    this.configs = this.pools.map((pool) => pool.config);
    this.interruptions = new HearthInterruptions(
      context.fleet,
      context.clock,
      context.model,
      options,
      context.jobs,
      (instance) => {
        const pool = this.pools[instance.pool.index] as PoolControl;
        if (instance.owner instanceof SimAsg) instance.owner.detach(instance);
        this.requestScale(pool, { spare: false, wake: true });
      },
    );
  }

  readonly observer = {
    jobQueued: (job: SimJob) => {
      const { clock, model } = this.context;
      // A retry counts the job's retries up: if the ledger still holds the job, its summary changed.
      this.queued[job.pool.index]?.changed();
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
        this.requestScale(this.pools[job.pool.index] as PoolControl, {
          spare: this.options.placement.placement === "any",
          wake: true,
        });
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
    // Persistent spot instances (a prototype): stopped by an interruption, or a start without capacity.
    instanceStopped: (instance: SimInstance) =>
      this.pools[instance.pool.index]?.warm.takeBackStopped(instance),
    resumeFailed: (instance: SimInstance) => this.pools[instance.pool.index]?.warm.takeBackStopped(instance),
  };

  /**
   * The store (a stopped instance, a detached volume) Hearth names for the pool's queue: one warm for
   * the oldest queued job whose key the running stores do not cover, else the one whose keys the
   * forecast values most (the planner's own measure of a store), else none (the caller's default).
   */
  private storeFor<T extends { keys: string[] }>(poolIndex: number, candidates: readonly T[]): T | undefined {
    if (candidates.length === 0) return undefined;
    const pool = this.pools[poolIndex] as PoolControl;
    const covered = new Map<string, number>();
    for (const instance of pool.sim.instances) {
      if (!(instance.state === "launching" || instance.state === "ready")) continue;
      for (const key of instance.keys) covered.set(key, (covered.get(key) ?? 0) + 1);
    }
    for (const job of this.queued[poolIndex]?.jobs ?? []) {
      const key = job.trace.cacheKey;
      const left = covered.get(key) ?? 0;
      if (left > 0) {
        covered.set(key, left - 1);
        continue;
      }
      const store = candidates.find((candidate) => candidate.keys.includes(key));
      if (store !== undefined) return store;
    }
    const weights = this.demand[pool.sim.name]?.keyWeights;
    if (weights === undefined) return undefined;
    let best: T | undefined;
    let bestValue = 0;
    for (const candidate of candidates) {
      let value = 0;
      for (const key of candidate.keys) value += weights[key] ?? 0;
      if (value > bestValue) {
        best = candidate;
        bestValue = value;
      }
    }
    return best;
  }

  /** The detached volume a new instance of the pool attaches (and so its zone), if any. */
  private volumeToAttach(poolIndex: number): { attach?: StoreVolume } {
    const { fleet, model } = this.context;
    const pool = this.pools[poolIndex] as PoolControl;
    let candidates = fleet.detachedVolumes(pool.sim);
    if (this.options.mechanisms.storeVolumes === "any-zone") {
      const zone = fleet.zoneChoice.int(model.zones);
      candidates = candidates.filter((volume) => volume.zone === zone);
    }
    // Without a better pick, the most recently detached store.
    const volume = this.storeFor(poolIndex, candidates) ?? candidates[candidates.length - 1];
    return volume === undefined ? {} : { attach: volume };
  }

  /**
   * Which free slots listen while `head` is the pool's oldest queued job (placement `warm-first`), as each
   * instance has heard it: the rule's decision reaches an agent at its heartbeat, and a listener then
   * takes `listenerStartSeconds` to start. An instance that has not heard of `head` does what it does
   * with no job queued (`idleListening`).
   */
  private listening(pool: SimPool, head: SimJob): ReturnType<ListeningRule> {
    // No free slot, nobody to ask (a full pool: its next free slot dispatches again).
    if (!hasFreeSlot(pool)) return NOBODY_LISTENS;
    const now = this.context.clock.now;
    const decision = this.decisions[pool.index] as PlacementDecision;
    decision.reset(pool, head, now);
    if (this.options.mechanisms.instantListening)
      return {
        listens: decision.listensInstantly,
        recheckAt: decision.delayEnds > now ? decision.delayEnds : null,
      };
    return decision;
  }

  /**
   * The latest heartbeat whose answer is in force at `now` (listeners started): its time. The answer
   * to the first one, at boot, is in force at once: the model's boot time includes starting runners.
   * (A tolerance keeps float sums from missing a beat.)
   */
  private heardAt(instance: SimInstance, now: number): number {
    if (instance.readyAt < 0 || now < instance.readyAt) return Number.NEGATIVE_INFINITY;
    const { heartbeatSeconds: beat, listenerStartSeconds } = this.options.placement;
    const at = now - listenerStartSeconds;
    if (at < instance.readyAt - 1e-9) return instance.readyAt;
    return instance.readyAt + beat * Math.floor((at - instance.readyAt) / beat + 1e-9);
  }

  /** When the first heartbeat at or after `at` (the one at boot, if `at` is earlier) is in force. */
  private inForceAfter(instance: SimInstance, at: number): number {
    const { heartbeatSeconds: beat, listenerStartSeconds } = this.options.placement;
    const after = Math.ceil((at - instance.readyAt) / beat - 1e-9);
    return after <= 0 ? instance.readyAt : instance.readyAt + beat * after + listenerStartSeconds;
  }

  start(): void {
    const { clock } = this.context;
    const tick = () => {
      if (!this.context.active()) return;
      this.tick();
      clock.after(this.options.tickSeconds, tick);
    };
    clock.at(timersStart(this.context, this.options.tickSeconds), tick);
  }

  /**
   * `requestScale`, as each caller asks it: a job's webhook (`afterJobRecorded`: a spare slot covers
   * the job only under placement `any`, and a run waiting between iterations for more than the
   * margin is superseded by a new run, which observes now), HandleInterruption (no spare slot; it
   * wakes a waiting run) and the tick (neither).
   */
  private requestScale(pool: PoolControl, ask: { spare: boolean; wake: boolean }): void {
    if (ask.spare && pool.spareSlots > 0) {
      pool.spareSlots--;
      return;
    }
    if (pool.running) {
      const waits = pool.waitingUntil === null ? 0 : pool.waitingUntil - this.context.clock.now;
      if (!ask.wake || waits <= SUPERSEDE_MARGIN_MS / 1000) return;
    }
    pool.running = true;
    pool.iteration = 0;
    this.iterate(pool);
  }

  private tick(): void {
    const now = ms(this.context.clock.now);
    const ttl = this.options.mechanisms.stoppedStoreTtlHours * 3600;
    if (ttl > 0) {
      const seconds = this.context.clock.now;
      for (const pool of this.pools) {
        for (const instance of [...pool.warm.warmPool]) {
          if (instance.state === "stopped" && instance.stoppedAt >= 0 && seconds - instance.stoppedAt >= ttl)
            pool.warm.dropStopped(instance);
        }
      }
    }
    if (now - this.demandAt >= FORECAST_EVERY_MS) {
      this.demand = this.history.forecast(now);
      this.demandAt = now;
    }
    for (const pool of this.pools) {
      const active = pool.sim.instances.some((instance) => instance.live);
      const queued = this.queued[pool.index]?.jobs.size ?? 0;
      if (poolNeedsRun(pool.state, active, queued, now)) {
        this.requestScale(pool, { spare: false, wake: false });
      }
    }
  }

  /** One iteration of ScaleFleet: Observe, Plan, Apply, then settled or wait. */
  private iterate(pool: PoolControl): void {
    const { clock } = this.context;
    // A run superseded while it waited stops at its next step: its wait is forgotten.
    pool.waitingUntil = null;
    const run = ++pool.run;
    const observation = this.observe(pool);
    pool.iteration = observation.iteration;
    // The planner itself puts queued retries' new capacity on demand (pool setting `retryOnDemand`).
    const poolPlan = planObservation({ pools: this.configs }, observation);
    this.options.onPlan?.(observation, poolPlan);
    const { calls, target } = this.apply(pool, observation, poolPlan);
    const after = afterIteration(observation, target, pool.config.slotsPerInstance, calls);
    pool.spareSlots = after.spareSlots;
    pool.state = new StoredPoolState(observation.at, {
      pool: pool.sim.name,
      desiredWarm: target.warm,
      desiredBurst: target.burst,
      warmPoolSize: poolPlan.warmPoolSize,
      queued: observation.queued,
      spareSlots: after.spareSlots,
      reason: poolPlan.reason,
    });
    if (after.settled || observation.iteration >= this.options.maxIterations || !this.context.active()) {
      pool.running = false;
      return;
    }
    pool.waitingUntil = clock.now + after.waitSeconds;
    clock.after(after.waitSeconds, () => {
      if (pool.run === run) this.iterate(pool);
    });
  }

  /** The pool's queue summarised as Observe summarises the ledger's. */
  private queueSummary(pool: PoolControl): QueueSummary {
    const summary = new QueueSummary();
    for (const job of (this.queued[pool.index] as QueuedJobs).jobs) {
      summary.add({
        pool: job.pool.name,
        cacheKey: job.trace.cacheKey,
        queuedAt: ms(job.trace.createdAt),
        retry:
          job.retries > 0 &&
          job.retries <= this.options.retryInterrupted &&
          lastRetry(this.options, job.retries),
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
      instances.push(instanceView(instance));
      for (const job of instance.running) running.push(runningView(job, instance));
    }
    const groups: FleetGroup[] = [
      {
        pool: pool.sim.name,
        group: "warm",
        name: pool.warm.name,
        desired: pool.warm.desired,
        max: pool.config.maxInstances,
        warmPoolSize: pool.warm.warmPoolSize,
        onDemandFallback: false,
      },
      {
        pool: pool.sim.name,
        group: "burst",
        name: pool.burst.name,
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
      ...(this.queued[pool.index] as QueuedJobs).observe(() =>
        observedQueue(this.queueSummary(pool), pool.sim.name),
      ),
      running,
      instances,
      groups,
      demand: this.demand[pool.sim.name] ?? null,
      ...(this.interruptions.held(pool.sim) ? { held: true } : {}),
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
    let desiredWarm = poolPlan.desiredWarm;
    let warmPoolSize = poolPlan.warmPoolSize;
    const { chooseResume, resumeOnlyNeeded } = this.options.mechanisms;
    const keptByPolicy = pool.config.warm.market === "spot";
    if (chooseResume && resumeOnlyNeeded && !keptByPolicy) {
      const { queued, rehome, reserve, freeSlots, resume } = poolPlan.counts;
      const slots = pool.config.slotsPerInstance;
      const needed = Math.max(0, Math.ceil((queued + rehome + reserve - freeSlots) / slots));
      const extra = resume - Math.min(resume, needed);
      // The stores not resumed stay stopped: the warm pool keeps them.
      desiredWarm -= extra;
      warmPoolSize += extra;
    }
    const max = pool.config.maxInstances;
    const target = {
      warm: Math.max(0, Math.min(desiredWarm + refused.warm, max)),
      burst: Math.max(0, Math.min(poolPlan.desiredBurst + refused.burst, max)),
    };
    // Each release is two calls (unprotect, decrement); a changed desired capacity or warm pool one.
    let calls = 2 * (released.warm.length + released.burst.length);
    // Desired capacity as the group counts it after the releases (each lowers it by one).
    if (pool.warm.desired - released.warm.length !== target.warm) calls++;
    if (pool.warm.warmPoolSize !== null && pool.warm.warmPoolSize !== warmPoolSize) calls++;
    if (pool.burst.desired - released.burst.length !== target.burst) calls++;
    // AWS keeps working towards desired capacity without a call (a launch refused at the instance
    // limit is retried): applying an unchanged target reconciles.
    pool.warm.apply({
      release: released.warm,
      desired: target.warm,
      ...(pool.warm.warmPoolSize === null ? {} : { warmPoolSize }),
      ...(keptByPolicy
        ? {
            resume: poolPlan.resumeStores,
            resumes: poolPlan.counts.resume,
            onDemand: poolPlan.counts.launchForRetries ?? 0,
            optional: poolPlan.counts.resumeForWarmth ?? 0,
          }
        : {}),
    });
    pool.burst.apply({ release: released.burst, desired: target.burst });
    return { calls, target };
  }
}

/**
 * A pool's queued jobs as the ledger holds them (a job counts once its webhook arrived, until the
 * webhook of its start arrives), and Observe's summary of them, kept until they change: a run observes
 * every 5 or 15 s, and the queue changes less often.
 */
class QueuedJobs {
  readonly jobs = new Set<SimJob>();
  private observed: ReturnType<typeof observedQueue> | undefined;

  add(job: SimJob): void {
    this.jobs.add(job);
    this.observed = undefined;
  }

  delete(job: SimJob): void {
    this.jobs.delete(job);
    this.observed = undefined;
  }

  /** A job the ledger may hold changed (a retry counts its retries up). */
  changed(): void {
    this.observed = undefined;
  }

  /** The summary, made by `summarise` unless the jobs are the same as when it was last made. */
  observe(summarise: () => ReturnType<typeof observedQueue>): ReturnType<typeof observedQueue> {
    this.observed ??= summarise();
    return this.observed;
  }
}

/**
 * The pool state a run stores, its time formatted only when read (the tick's reconcile check, on a
 * pool with nothing to do): a run iterates every 5 or 15 s, and formatting each time weighed as much
 * as planning.
 */
class StoredPoolState implements PoolState {
  readonly pool: string;
  readonly desiredWarm: number;
  readonly desiredBurst: number;
  readonly warmPoolSize: number;
  readonly queued: number;
  readonly spareSlots: number;
  readonly reason: string;

  constructor(
    /** Epoch milliseconds. */
    private readonly atMs: number,
    fields: Omit<PoolState, "at">,
  ) {
    this.pool = fields.pool;
    this.desiredWarm = fields.desiredWarm;
    this.desiredBurst = fields.desiredBurst;
    this.warmPoolSize = fields.warmPoolSize;
    this.queued = fields.queued;
    this.spareSlots = fields.spareSlots;
    this.reason = fields.reason;
  }

  get at(): string {
    return new Date(this.atMs).toISOString();
  }
}

/**
 * The instance as Observe lists it (the planner's view). A run observes every 5 or 15 s and most
 * instances have not changed since the last observation, so the last view is kept with the instance
 * (`observed`) with what it was made from, and handed out again while that is the same; a view once
 * handed out is never changed (a caller may keep the observation), a changed instance gets a new one.
 */
function instanceView(instance: SimInstance): PlannerInstance {
  let observed = instance.observed as ObservedInstance | null;
  if (observed === null) {
    observed = new ObservedInstance(instance);
    instance.observed = observed;
  } else if (!observed.current(instance)) observed.update(instance);
  return observed.view;
}

/** An instance's planner view, and the instance's fields it was made from. */
class ObservedInstance {
  view!: PlannerInstance;
  private state!: SimInstance["state"];
  private intoWarmPool!: boolean;
  private busy!: number;
  private launchedAt!: number;
  private idleSince!: number | null;
  private stoppedByInterruption!: boolean;
  private keys!: string[];
  private keysChanged!: number;

  constructor(instance: SimInstance) {
    this.update(instance);
  }

  current(instance: SimInstance): boolean {
    return (
      this.state === instance.state &&
      this.busy === instance.busy &&
      this.idleSince === instance.idleSince &&
      this.launchedAt === instance.launchedAt &&
      this.keysChanged === instance.keysChanged &&
      this.keys === instance.keys &&
      this.intoWarmPool === instance.intoWarmPool &&
      this.stoppedByInterruption === instance.stoppedByInterruption
    );
  }

  update(instance: SimInstance): void {
    this.state = instance.state;
    this.intoWarmPool = instance.intoWarmPool;
    this.busy = instance.busy;
    this.launchedAt = instance.launchedAt;
    this.idleSince = instance.idleSince;
    this.stoppedByInterruption = instance.stoppedByInterruption;
    this.keys = instance.keys;
    this.keysChanged = instance.keysChanged;
    this.view = {
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
      // A copy: the fleet changes the instance's keys in place.
      cacheKeys: [...instance.keys],
      launchedAt: ms(instance.launchedAt),
      idleSince: instance.state === "ready" && instance.idleSince !== null ? ms(instance.idleSince) : null,
      heartbeatOverdue: false,
      ...(instance.state === "stopped" && instance.stoppedByInterruption ? { waitsForCapacity: true } : {}),
    };
  }
}

/** A running job as Observe lists it, kept with the job for as long as it runs on the same instance. */
function runningView(job: SimJob, instance: SimInstance): Observation["running"][number] {
  const last = job.observed as Observation["running"][number] | null;
  if (last !== null && last.instanceId === instance.id) return last;
  const view = { key: job.trace.id, pool: instance.pool.name, instanceId: instance.id };
  job.observed = view;
  return view;
}

/**
 * The cache keys of the pool's queued jobs after the oldest one, as far as placement looks (an array:
 * the rule reads them on most decisions, and a generator costs more than the copy).
 */
function laterKeys(pool: SimPool): string[] {
  const end = Math.min(pool.waiting.length, pool.head + 1 + LISTENING_LOOKAHEAD);
  const keys: string[] = [];
  for (let index = pool.head + 1; index < end; index++)
    keys.push((pool.waiting[index] as SimJob).trace.cacheKey);
  return keys;
}

/**
 * The pool's live instances as placement sees them (core's `ListeningStore`), into `stores`. Each
 * instance keeps its own store object, updated in place: the rule reads the stores and keeps none,
 * and placement decides about twice per job.
 */
function listeningStores(pool: SimPool, stores: ListeningStore[]): ListeningStore[] {
  let count = 0;
  for (const instance of pool.instances) {
    if (!instance.live) continue;
    const store = storeOf(instance);
    store.state =
      instance.state === "ready"
        ? "ready"
        : instance.state === "launching" && !instance.intoWarmPool
          ? "booting"
          : "other";
    store.launchedAt = instance.launchedAt * 1000;
    store.freeSlots = instance.freeSlots();
    store.cacheKeys = instance.keys;
    stores[count++] = store;
  }
  stores.length = count;
  return stores;
}

/** The instance as placement sees it (kept as its `view`), updated at each decision. */
function storeOf(instance: SimInstance): ListeningStore {
  let store = instance.view as ListeningStore | null;
  if (store === null) {
    store = { id: instance.id, state: "other", launchedAt: 0, freeSlots: 0, cacheKeys: instance.keys };
    instance.view = store;
  }
  return store;
}

function hasFreeSlot(pool: SimPool): boolean {
  for (const instance of pool.instances) if (instance.live && instance.freeSlots() > 0) return true;
  return false;
}

const NOBODY_LISTENS: ReturnType<ListeningRule> = { listens: () => false, recheckAt: null };

/**
 * One pool's placement for the job the forge hands out now (`head`, placement `warm-first`), decided by
 * core's rule only as far as the fleet asks: most hand-outs find no agent that has heard of the job yet,
 * and those need no decision at all. One object per pool, reset at each hand-out: the fleet consults
 * `listens` before anything in the pool changes, so a decision made at the first question holds for all.
 */
class PlacementDecision {
  private pool: SimPool | undefined;
  private head: SimJob | undefined;
  private readonly job = { cacheKey: "", queuedAt: 0 };
  private now = 0;
  /** When the job's cold-listen delay ends, and when placement gives up on it (seconds). */
  delayEnds = 0;
  giveUpAt = 0;
  private readonly stores: ListeningStore[] = [];
  private storesRead = false;
  private decided: Set<string> | undefined;
  private placed: Set<string> | undefined;
  private early: Set<string> | undefined;

  constructor(
    private readonly heardAt: (instance: SimInstance, now: number) => number,
    private readonly inForceAfter: (instance: SimInstance, at: number) => number,
    private readonly coldListenDelaySeconds: number,
    /** Free slots listen while their agent knows of no queued job (`idleListening: all`). */
    private readonly idle: boolean,
  ) {}

  reset(pool: SimPool, head: SimJob, now: number): void {
    this.pool = pool;
    this.head = head;
    this.job.cacheKey = head.trace.cacheKey;
    this.job.queuedAt = head.queuedAt * 1000;
    this.now = now;
    this.delayEnds = head.queuedAt + this.coldListenDelaySeconds;
    this.giveUpAt = head.queuedAt + PLACEMENT_GIVE_UP_MS / 1000;
    this.storesRead = false;
    this.decided = undefined;
    this.placed = undefined;
    this.early = undefined;
  }

  private readonly later = () => laterKeys(this.pool as SimPool);

  /** The rule as the control plane decides it with the pool as it is, the job's wait as of `at`. */
  private decide(at: number): Set<string> {
    if (!this.storesRead) {
      listeningStores(this.pool as SimPool, this.stores);
      this.storesRead = true;
    }
    return listeningStoresFor(
      this.job,
      this.later,
      this.stores,
      at * 1000,
      this.coldListenDelaySeconds * 1000,
    );
  }

  /**
   * When what the instances have heard changes next (null: never): the next heartbeat in force after
   * the job was queued, after its cold-listen delay ended, or after placement gave up on it. The fleet
   * reads it only when no slot listens.
   */
  get recheckAt(): number | null {
    const { now, delayEnds, giveUpAt } = this;
    const queuedAt = (this.head as SimJob).queuedAt;
    let recheckAt: number | null = null;
    for (const instance of (this.pool as SimPool).instances) {
      // A booting instance hears at boot, which dispatches again.
      if (instance.freeSlots() === 0 || !instance.live || instance.readyAt < 0) continue;
      const heard = this.heardAt(instance, now);
      const next =
        heard < queuedAt
          ? this.inForceAfter(instance, queuedAt)
          : heard < delayEnds
            ? this.inForceAfter(instance, delayEnds)
            : heard < giveUpAt
              ? this.inForceAfter(instance, giveUpAt)
              : null;
      if (next !== null && (recheckAt === null || next < recheckAt)) recheckAt = Math.max(next, now + 0.001);
    }
    return recheckAt;
  }

  /** Which free slots listen with no heartbeat lag (`instantListening`). */
  readonly listensInstantly = (instance: SimInstance): boolean => {
    this.decided ??= this.decide(this.now);
    return this.decided.has(instance.id);
  };

  /**
   * Which free slots listen as each instance has heard it: the rule's decision reaches an agent at its
   * heartbeat, and an instance that has not heard of the job does what it does with no job queued.
   */
  readonly listens = (instance: SimInstance): boolean => {
    const heard = this.heardAt(instance, this.now);
    const queuedAt = (this.head as SimJob).queuedAt;
    if (heard < queuedAt) return this.idle;
    if (heard >= this.giveUpAt) return true;
    if (heard >= this.delayEnds || this.now < this.delayEnds) {
      // What an agent that heard of the job before placement gave up on it was told.
      if (this.placed === undefined) {
        if (this.now < this.giveUpAt) {
          this.decided ??= this.decide(this.now);
          this.placed = this.decided;
        } else this.placed = this.decide(this.giveUpAt - 0.001);
      }
      return this.placed.has(instance.id);
    }
    // An agent that heard of the job before the cold-listen delay ended keeps cold slots quiet.
    this.early ??= this.decide(queuedAt);
    return this.early.has(instance.id);
  };
}
