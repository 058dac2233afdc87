import type { Market } from "../../instances/vocabulary";
import type { TraceJob } from "./trace";

/**
 * A simulated EC2 instance: its lifecycle, its job slots, its store's warmth and its bill. The fleet
 * changes it; policies read it.
 */

/** The trace simulator's own, coarser model of an instance's life (no `stopping` or `pending` step). */
export type SimInstanceState = "launching" | "ready" | "draining" | "stopped" | "terminated";

export interface LaunchOptions {
  market: Market;
  /** The policy's name for the group (Hearth: `warm` or `burst`). */
  group: string;
  /** Jobs the runner takes before it exits (1 for ephemeral runners). */
  maxJobs?: number;
  /**
   * A persistent spot instance: interruptions stop it (store kept) instead of terminating it (Hearth's
   * spot warm group, `warm.market: spot`).
   */
  persistent?: boolean;
  /**
   * The store on its own EBS volume, kept (detached, in the instance's zone) when the instance goes. A
   * prototype (`--store-volumes`): no policy's product does this yet.
   */
  storeVolume?: boolean;
  /** With `storeVolume`: the zone to launch in and the detached volume to attach there (the policy's pick). */
  attach?: StoreVolume;
  /** Boot, then stop: an ASG filling its warm pool. */
  intoWarmPool?: boolean;
  /** Already running when the simulation starts (a fixed fleet). */
  running?: boolean;
}

export class SimInstance {
  state: SimInstanceState = "launching";
  readonly running: SimJob[] = [];
  /** Cache keys the store is warm for, most recent first. */
  keys: string[] = [];
  /** Bumped whenever the fleet changes `keys` in place, so that a policy's copy can tell it is stale. */
  keysChanged = 0;
  jobsStarted = 0;
  /** The last launch or resume request. */
  launchedAt: number;
  readyAt = -1;
  idleSince: number | null = null;
  intoWarmPool: boolean;
  /** How the instance last booted: new from the AMI, or resumed from the warm pool. */
  boot: "cold" | "warm" = "cold";
  readonly maxJobs: number;
  /**
   * The instance's runners claim jobs. Hearth's agent stops claiming while its pool holds its spot
   * runners for a retry (protocol 3's `hold`); other policies never change it.
   */
  claiming = true;
  /** When the agent last heartbeated, as far as a policy models heartbeats (-1: not modelled). */
  lastHeartbeatAt = -1;
  /** Bumped whenever the instance changes state, so that stale timers do nothing. */
  epoch = 0;
  /** Whoever manages the instance (an ASG model, a policy). */
  owner: unknown = null;
  /** A policy's own view of the instance, kept with it to avoid a lookup. */
  view: unknown = null;
  /** A policy's last observation of the instance (Hearth: the planner's view, reused while unchanged). */
  observed: unknown = null;
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

  /**
   * A persistent spot instance (interruption behaviour `stop`): an interruption stops it, store kept,
   * and it can be started again at the spot price.
   */
  persistent = false;
  /**
   * Stopped by a spot interruption: only EC2 starts it again, when spot capacity returns (AWS: "Only
   * Amazon EC2 can restart an interrupted stopped Spot Instance"). The model does not restart it: its
   * store waits stopped, paid for and none of the warm pool, until it is given up an hour after its
   * last start (`INTERRUPTED_STORE_WAIT_MS`, as the fleet drivers do).
   */
  stoppedByInterruption = false;
  /** The Availability Zone (0 to zones - 1) of an instance whose store is on its own volume; -1 otherwise. */
  zone = -1;
  /** The instance's store lives on its own EBS volume, kept when the instance goes. */
  storeVolume = false;
  /** When the instance last stopped (-1: never). */
  stoppedAt = -1;
  /** Launches and resumes so far: a timer of an earlier run (a spot warning) checks it. */
  starts = 0;

  /** Running, launching or draining: the instance counts against the pool's maximum. */
  get live(): boolean {
    return this.state === "launching" || this.state === "ready" || this.state === "draining";
  }

  /** Slots a runner could claim a job into now. */
  freeSlots(): number {
    if (this.state !== "ready" || !this.claiming) return 0;
    return Math.max(0, Math.min(this.slots - this.running.length, this.maxJobs - this.jobsStarted));
  }

  canTake(): boolean {
    return this.freeSlots() > 0;
  }
}

/**
 * A trace job as it moves through the simulated forge: queued, running, done, maybe queued again.
 * An interrupted job is `failed` while it waits for whatever queues it again (the README's rule: at
 * once; Hearth: its retry), and `lost` when nothing will.
 */
export class SimJob {
  state: "pending" | "queued" | "running" | "failed" | "done" | "lost" = "pending";
  /** When the job last entered the forge's queue: its arrival, or its retry after an interruption. */
  queuedAt: number;
  firstStartAt = -1;
  warmStart = false;
  /** Where the store of the first start came from: warm for the key, substituted from the binary cache, or cold. */
  store: "warm" | "substituted" | "cold" = "cold";
  /** At its first start the pool had finished a job with its key before: a warm hit was achievable. */
  achievable = false;
  interrupted = false;
  /** Runs cut short by an interruption. */
  interruptions = 0;
  /** Times the job was queued again after an interruption. */
  retries = 0;
  /** When the last run was cut short, until the job starts again (-1 otherwise). */
  cutAt = -1;
  /** Seconds from each cut to the next start, summed: the wait interruptions added. */
  extraWaitSeconds = 0;
  /** Seconds of runs cut short, summed: work done again. */
  redoneSeconds = 0;
  /** When the current (or last) run started. */
  startedAt = -1;
  instance: SimInstance | null = null;
  /** Bumped at every start, so that the finish of an interrupted run is ignored. */
  run = 0;
  /** The instance of the first start, for diagnostics. */
  firstInstance: SimInstance | null = null;
  /** A policy's own bookkeeping (e.g. when its control plane learned of the job). */
  seenAt = -1;
  /** A policy's last observation of the job running (Hearth: Observe's running job, reused while unchanged). */
  observed: unknown = null;

  constructor(
    readonly index: number,
    readonly trace: TraceJob,
    readonly pool: SimPool,
  ) {
    this.queuedAt = trace.createdAt;
  }
}

/** One pool of the simulated fleet: the forge's queue for its jobs, and its instances. */
export interface SimPool {
  index: number;
  name: string;
  /** The forge's queue: jobs waiting for a runner, oldest first (from `head`). */
  waiting: SimJob[];
  head: number;
  /** Instances not terminated (live and stopped). */
  instances: SimInstance[];
  /** When an instance of the pool last finished a job with each cache key. */
  finished: Map<string, number>;
  /** Store volumes detached from instances that went, waiting in their zone to be attached. */
  volumes: StoreVolume[];
}

/** A store's own EBS volume, detached: billed at the stopped price until attached or deleted. */
export interface StoreVolume {
  zone: number;
  keys: string[];
  detachedAt: number;
}
