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
  holds(instance: InstanceRecord): Promise<boolean>;
}

/** A pool's queued jobs, oldest first, as placement sees them. */
function poolQueue(
  queued: Parameters<typeof routeQueue>[0],
  pools: readonly PoolConfig[],
  pool: string,
): ListeningJob[] {
  return routeQueue(queued, pools)
    .routed.filter((entry) => entry.pool === pool)
    .map(({ job }) => ({ cacheKey: cacheKeyOf(job), queuedAt: job.queuedAt ? Date.parse(job.queuedAt) : 0 }));
}

/** A registry record as a store placement weighs. */
export function listeningStoreOf(record: InstanceRecord, now: number): ListeningStore {
  const reporting =
    record.lastHeartbeatAt !== null && now - Date.parse(record.lastHeartbeatAt) <= HEARTBEAT_OVERDUE_MS;
  // `busy` is in service as much as `ready`: a busy instance may still have a free slot.
  const inService =
    (record.runner === "ready" || record.runner === "busy") &&
    record.releasing === null &&
    record.interruption === null &&
    reporting;
  return {
    id: record.id,
    state: inService ? "ready" : record.runner === "booting" ? "booting" : "other",
    launchedAt: Date.parse(record.launchedAt),
    freeSlots: Math.max(0, record.slots - record.runningJobs.length),
    cacheKeys: record.cacheKeys,
  };
}

export function storePlacement(deps: StorePlacementDeps): StorePlacement {
  return {
    async holds(instance) {
      const pool = deps.pools.find((candidate) => candidate.name === instance.pool);
      if (!pool || pool.placement === "any") return false;
      try {
        const queued = await deps.ledger.queuedIfFew(deps.queueLimit ?? PLACEMENT_QUEUE_LIMIT);
        if (queued === undefined) return false;
        const queue = poolQueue(queued, deps.pools, pool.name);
        // Nothing queued: no store listens. Decided without the registry, as most heartbeats are.
        if (queue.length === 0) return true;
        const now = (deps.now?.() ?? new Date()).getTime();
        const records = (await deps.registry.inPool(pool.name)).filter((record) => record.id !== instance.id);
        const stores = [...records, instance].map((record) => listeningStoreOf(record, now));
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
