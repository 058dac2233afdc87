import { HEARTBEAT_OVERDUE_MS } from "../fleet";
import type { InstanceRecord, InstanceRegistry } from "../instances";
import { cacheKeyOf } from "../jobs";
import type { Ledger } from "../ledger";
import type { PoolConfig } from "../pools";
import { routeQueue } from "../scaling/observe";
import { type ListeningJob, type ListeningStore, listeningStores } from "./listening";

/**
 * Warm-first placement in the product: the heartbeat's answer holds (`hold: true`) the free slots of
 * an instance whose store should not listen now (`listeningStores`). A forge hands a queued job to any
 * matching runner that asks, with no order between them, so Hearth places jobs only by which slots
 * listen (docs/ARCHITECTURE.md, "Placement: which slots listen").
 */

/**
 * The queue placement reads at most, in one Scan. A longer queue is a backlog: every slot should take
 * whatever comes (throughput first), and placing would only make it wait.
 */
export const PLACEMENT_QUEUE_LIMIT = 500;

/**
 * How long a read of the queue, or of a pool's instances, serves the heartbeats that follow it in
 * the same process: well under a heartbeat's period, so a decision is never staler than the lag the
 * agents add anyway, and a pool's heartbeats share reads instead of each reading the pool.
 */
export const PLACEMENT_READ_TTL_MS = 2_000;

export interface StorePlacementDeps {
  ledger: Pick<Ledger, "queuedIfFew">;
  registry: Pick<InstanceRegistry, "inPool">;
  pools: readonly PoolConfig[];
  /** The queue read at most (`PLACEMENT_QUEUE_LIMIT`). */
  queueLimit?: number;
  now?: () => Date;
  log?: { warn(message: string, fields?: Record<string, unknown>): void };
}

export interface StorePlacement {
  /**
   * Whether this instance's free slots must not listen now. `instance` is its record as the heartbeat
   * just stored it (fresher than what the registry's listing may hold).
   */
  holds(instance: InstanceRecord, context?: { spotHeld?: boolean }): Promise<boolean>;
}

/**
 * A pool's queued jobs, oldest first, as placement sees them; null when the queue holds a job placement
 * cannot place (no pool takes it, or a GitLab job whose tags are not known yet): some store may be the
 * one to take it, so every store listens.
 */
function poolQueue(
  queued: Parameters<typeof routeQueue>[0],
  pools: readonly PoolConfig[],
  pool: string,
): ListeningJob[] | null {
  const { routed, unroutable } = routeQueue(queued, pools);
  if (unroutable.length > 0 || routed.some(({ job }) => job.source === "gitlab" && !job.labelsKnown))
    return null;
  return routed
    .filter((entry) => entry.pool === pool)
    .map(({ job }) => ({ cacheKey: cacheKeyOf(job), queuedAt: job.queuedAt ? Date.parse(job.queuedAt) : 0 }));
}

/**
 * A registry record as a store placement weighs. `spotHeld`: the pool holds its spot runners for a
 * retry, so a spot instance takes nothing placement tells it.
 */
export function listeningStoreOf(record: InstanceRecord, now: number, spotHeld = false): ListeningStore {
  const reporting =
    record.lastHeartbeatAt !== null && now - Date.parse(record.lastHeartbeatAt) <= HEARTBEAT_OVERDUE_MS;
  // `busy` is in service as much as `ready`: a busy instance may still have a free slot.
  const inService =
    (record.runner === "ready" || record.runner === "busy") &&
    record.releasing === null &&
    record.interruption === null &&
    reporting &&
    !(spotHeld && record.market === "spot");
  // A held GitLab instance with a job running has its gitlab-runner stopping gracefully: it takes no
  // job until that one ends, whatever an answer says, so its free slots are none.
  const stopping =
    record.claiming === false && record.runningJobs.length > 0 && record.gitlabManager !== null;
  // A parked store (stopped into the warm pool) keeps its last launch time: not booting.
  const booting = record.runner === "booting" && record.parkedAt === null;
  return {
    id: record.id,
    state: inService ? "ready" : booting ? "booting" : "other",
    launchedAt: Date.parse(record.launchedAt),
    freeSlots: stopping ? 0 : Math.max(0, record.slots - record.runningJobs.length),
    cacheKeys: record.cacheKeys,
  };
}

/** A read kept for `PLACEMENT_READ_TTL_MS`, shared by the calls made meanwhile. */
function shortLived<T>(ttlMs: number, now: () => number) {
  const kept = new Map<string, { at: number; value: Promise<T> }>();
  return (key: string, read: () => Promise<T>): Promise<T> => {
    const at = now();
    const hit = kept.get(key);
    if (hit && at - hit.at < ttlMs) return hit.value;
    const value = read();
    kept.set(key, { at, value });
    // A failed read is not kept.
    value.catch(() => {
      if (kept.get(key)?.value === value) kept.delete(key);
    });
    return value;
  };
}

export function storePlacement(deps: StorePlacementDeps): StorePlacement {
  const clock = () => (deps.now?.() ?? new Date()).getTime();
  // The queue's Scan reads the index that also holds every pool's instance records: its Limit counts
  // them too, so it allows for as many as the pools may have.
  const queueLimit = deps.queueLimit ?? PLACEMENT_QUEUE_LIMIT;
  const scanLimit =
    queueLimit + deps.pools.reduce((sum, pool) => sum + pool.maxInstances + pool.warm.warmPoolSize, 0);
  const queueRead = shortLived<Awaited<ReturnType<Ledger["queuedIfFew"]>>>(PLACEMENT_READ_TTL_MS, clock);
  const poolRead = shortLived<InstanceRecord[]>(PLACEMENT_READ_TTL_MS, clock);
  return {
    async holds(instance, context = {}) {
      const pool = deps.pools.find((candidate) => candidate.name === instance.pool);
      if (!pool || pool.placement === "any") return false;
      try {
        const queued = await queueRead("queue", () => deps.ledger.queuedIfFew(scanLimit));
        // A backlog: every slot takes what comes.
        if (queued === undefined || queued.length >= queueLimit) return false;
        const queue = poolQueue(queued, deps.pools, pool.name);
        if (queue === null) return false;
        // Nothing queued: no store listens. Decided without the registry, as most heartbeats are.
        if (queue.length === 0) return true;
        const now = clock();
        const records = (await poolRead(pool.name, () => deps.registry.inPool(pool.name))).filter(
          (record) => record.id !== instance.id,
        );
        const stores = [...records, instance].map((record) =>
          listeningStoreOf(record, now, context.spotHeld === true),
        );
        return !listeningStores(queue, stores, now).has(instance.id);
      } catch (error) {
        // Fail open: a slot that listens costs a warm hit at worst; one held by a fault costs a job.
        deps.log?.warn("could not decide the instance's placement; its slots listen", {
          instance: instance.id,
          error: error instanceof Error ? error.message : String(error),
        });
        return false;
      }
    },
  };
}
