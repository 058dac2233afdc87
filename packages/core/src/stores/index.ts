import { createHash } from "node:crypto";
import { type DynamoDBDocumentClient, GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import {
  createInstanceRegistry,
  type InstanceItem,
  type InstanceRecord,
  type InstanceRegistry,
  instanceFromItem,
  instanceItemKey,
} from "../instances";
import { cacheKeyOf, type Job, type StoreOrigin, storeOrigins } from "../jobs";

/**
 * What Hearth knows of the fleet's Nix stores, and where each job's store came from.
 *
 * The keys a store holds are defined once, by the control plane: when a job completes on an instance,
 * the ledger adds its cache key (`cacheKeyOf`, the ledger's project and name) to the instance's record
 * (`InstanceRegistry.finishedJob`), and to the pool's record of finished keys. An instance cannot
 * compute the key itself (a GitHub job's name in the ledger is `workflow / job`, which its runner
 * never sees), and the runner image writes no `cache-keys.json`; what an agent does report is merged
 * in. The same path serves AWS and local mode, whose simulated agents report no keys either.
 *
 * A stopped instance keeps its record, as it keeps its store; a terminated one's record goes with it.
 */

export { type StoreOrigin, storeOrigins };

/**
 * How long the stage's binary cache is taken to hold what an instance pushed: the fleet model's 7 days
 * (`traces/README.md`). Only an inference: Hearth never reads the cache, an instance pushes only once
 * the stage has a signing key, and the bucket keeps objects longer.
 */
export const BINARY_CACHE_WINDOW_SECONDS = 7 * 24 * 3600;

export interface StoreKnowledgeOptions {
  client: DynamoDBDocumentClient;
  tableName: string;
  now?: () => Date;
}

/** The pool's record of a key: which instance last finished a job of it, and when. */
export interface FinishedKey {
  pool: string;
  cacheKey: string;
  instanceId: string;
  finishedAt: string;
}

/** A table item's key. */
export interface ItemKey {
  pk: string;
  sk: string;
}

/**
 * What a job's record read of its instance's store along with the job's own item, in the same call:
 * the instance's item (null: the registry did not hold it) and, when the instance's pool was known
 * before the read, the pool's record of the job's key (null: none).
 */
export interface StoreSnapshot {
  instanceId: string;
  instance: InstanceItem | null;
  finished?: { pool: string; cacheKey: string; item: InstanceItem | null };
}

/** The items to read with a job's own (`keys`), and what they tell once read (`snapshot`). */
export interface StoreReads {
  keys: ItemKey[];
  snapshot(items: readonly Record<string, unknown>[]): StoreSnapshot;
}

export interface StoreKnowledge {
  /**
   * What to read with the job's own item for an event that runs or completes a named job (its key
   * known) on an instance: its start or end reads the instance's record, and a start the pool's
   * record of the key (when the instance's pool is known). Undefined for any other event.
   */
  readsFor(event: Job): StoreReads | undefined;
  /**
   * Where the store of a job that just started on an instance came from: null for an instance Hearth
   * does not know (its store is unknown). What `snapshot` holds of this instance is not read again.
   */
  originOf(job: Job, instanceId: string, at: Date, snapshot?: StoreSnapshot): Promise<StoreOrigin | null>;
  /**
   * A job completed on an instance: its store, and the pool's binary cache, now hold its key. The
   * instance's item in `snapshot` is the first attempt's read (an instance it did not hold is not
   * credited).
   */
  finished(job: Job, instanceId: string, at: Date, snapshot?: StoreSnapshot): Promise<void>;
  /** The pool's record of a key, if an instance of the pool finished a job of it. */
  lastFinished(pool: string, cacheKey: string): Promise<FinishedKey | undefined>;
}

/** gsi-free item `CACHED#<pool>` / `<key>`; a key too long for a sort key is named by its hash. */
function finishedKeyItemKey(pool: string, cacheKey: string) {
  const sk = Buffer.byteLength(cacheKey, "utf8") <= 1000 ? cacheKey : `sha256:${hash(cacheKey)}`;
  return { pk: `CACHED#${pool}`, sk };
}

const hash = (text: string) => createHash("sha256").update(text).digest("hex");

/** The cache key of a job whose project and name the ledger knows; undefined otherwise. */
export function knownCacheKey(job: Pick<Job, "project" | "name">): string | undefined {
  return job.project && job.name ? cacheKeyOf(job) : undefined;
}

/**
 * The decision itself, for a job that started at `at`: warm when the instance's store held the key
 * then; substituted when an instance of the same pool had finished the key before, within the binary
 * cache's window (its outputs were pushed to the stage's cache, from which the store substitutes
 * them); cold otherwise. A finish after `at` counts for neither: a decision made late (the job's
 * start was recorded after its end) must not credit what the fleet learnt meanwhile.
 */
export function classifyOrigin(
  storeHolds: readonly string[],
  cacheKey: string,
  lastFinishedAt: string | undefined,
  at: Date,
): StoreOrigin {
  if (storeHolds.includes(cacheKey)) return "warm";
  const finished = lastFinishedAt === undefined ? Number.NaN : Date.parse(lastFinishedAt);
  const age = at.getTime() - finished;
  if (age >= 0 && age <= BINARY_CACHE_WINDOW_SECONDS * 1000) return "substituted";
  return "cold";
}

/**
 * The keys an instance's store held at `at`: those its agent reports (no time known), and those of
 * jobs that had completed on it by then.
 */
export function keysHeldAt(instance: InstanceRecord, at: Date): string[] {
  const held = instance.finishedCacheKeys.filter((key) => {
    const time = instance.finishedCacheKeyTimes[key];
    return time === undefined || Date.parse(time) <= at.getTime();
  });
  return [...new Set([...held, ...instance.reportedCacheKeys])];
}

export function createStoreKnowledge(options: StoreKnowledgeOptions): StoreKnowledge {
  const { client, tableName } = options;
  const now = options.now ?? (() => new Date());
  const registry: InstanceRegistry = createInstanceRegistry({ client, tableName, now });

  async function lastFinished(pool: string, cacheKey: string): Promise<FinishedKey | undefined> {
    const got = await client.send(
      new GetCommand({ TableName: tableName, Key: finishedKeyItemKey(pool, cacheKey), ConsistentRead: true }),
    );
    return finishedKeyOf(pool, cacheKey, got.Item);
  }

  /**
   * Each instance's pool, once read: it never changes, and knowing it lets a job's start and end read
   * or write the instance's record and the pool's record of the key at once (these calls sit on the
   * webhook's path). Bounded, the oldest dropped first.
   */
  const pools = new Map<string, string>();
  const rememberPool = (instanceId: string, pool: string) => {
    pools.set(instanceId, pool);
    if (pools.size > 1000) pools.delete(pools.keys().next().value as string);
  };

  async function recordFinish(pool: string, cacheKey: string, instanceId: string, at: Date): Promise<void> {
    const finishedAt = at.toISOString();
    // The latest finish wins, so that a late or replayed event never moves the window back.
    try {
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: {
            ...finishedKeyItemKey(pool, cacheKey),
            kind: "cached",
            pool,
            cacheKey,
            instanceId,
            finishedAt,
            expiresAt: Math.floor(at.getTime() / 1000) + BINARY_CACHE_WINDOW_SECONDS,
          },
          ConditionExpression: "attribute_not_exists(finishedAt) OR finishedAt < :at",
          ExpressionAttributeValues: { ":at": finishedAt },
        }),
      );
    } catch (error) {
      if ((error as { name?: string }).name !== "ConditionalCheckFailedException") throw error;
    }
  }

  /** What `snapshot` read of this instance, if it is this instance's. */
  const snapshotOf = (instanceId: string, snapshot: StoreSnapshot | undefined) =>
    snapshot?.instanceId === instanceId ? snapshot : undefined;

  return {
    lastFinished,

    readsFor(event) {
      const { instanceId } = event;
      const cacheKey = knownCacheKey(event);
      // An event that does not name the job (a heartbeat's) reads nothing more: the job it reports
      // running is mostly recorded already, and its store decided.
      if (instanceId === null || cacheKey === undefined) return undefined;
      if (event.status !== "running" && event.status !== "completed") return undefined;
      const instanceKey = instanceItemKey(instanceId);
      // A start's decision may need the pool's record of the key: read in the same call when the pool
      // is known. A completion's (rarely, its start was never recorded) reads it itself.
      const pool = pools.get(instanceId);
      const finishedKey =
        event.status === "running" && pool !== undefined
          ? { pool, cacheKey, key: finishedKeyItemKey(pool, cacheKey) }
          : undefined;
      const find = (items: readonly Record<string, unknown>[], key: ItemKey) =>
        items.find((item) => item.pk === key.pk && item.sk === key.sk) ?? null;
      return {
        keys: finishedKey ? [instanceKey, finishedKey.key] : [instanceKey],
        snapshot: (items) => ({
          instanceId,
          instance: find(items, instanceKey),
          ...(finishedKey && {
            finished: {
              pool: finishedKey.pool,
              cacheKey: finishedKey.cacheKey,
              item: find(items, finishedKey.key),
            },
          }),
        }),
      };
    },

    async originOf(job, instanceId, at, snapshot) {
      const cacheKey = knownCacheKey(job);
      if (cacheKey === undefined) return null;
      const read = snapshotOf(instanceId, snapshot);
      let instance: InstanceRecord | undefined;
      let early: { pool: string; last: FinishedKey | undefined } | undefined;
      if (read) {
        instance = read.instance ? instanceFromItem(read.instance) : undefined;
        const finished = read.finished;
        if (finished?.cacheKey === cacheKey)
          early = { pool: finished.pool, last: finishedKeyOf(finished.pool, cacheKey, finished.item) };
      } else {
        const knownPool = pools.get(instanceId);
        const [got, last] = await Promise.all([
          registry.get(instanceId),
          knownPool === undefined ? undefined : lastFinished(knownPool, cacheKey),
        ]);
        instance = got;
        if (knownPool !== undefined) early = { pool: knownPool, last };
      }
      if (!instance) return null;
      rememberPool(instanceId, instance.pool);
      const held = keysHeldAt(instance, at);
      if (held.includes(cacheKey)) return "warm";
      const last = early?.pool === instance.pool ? early.last : await lastFinished(instance.pool, cacheKey);
      return classifyOrigin(held, cacheKey, last?.finishedAt, at);
    },

    async finished(job, instanceId, at, snapshot) {
      const cacheKey = knownCacheKey(job);
      if (cacheKey === undefined) return;
      const read = snapshotOf(instanceId, snapshot);
      // An instance the registry did not hold when this record read it is not credited, as it would
      // not be had it been read now: its key goes nowhere.
      if (read?.instance === null) return;
      // The pool, known, lets the pool's record of the key be written with the instance's at once.
      const knownPool = read?.instance ? String(read.instance.pool) : pools.get(instanceId);
      const [instance] = await Promise.all([
        registry.finishedJob(instanceId, cacheKey, at.toISOString(), read?.instance),
        knownPool === undefined ? undefined : recordFinish(knownPool, cacheKey, instanceId, at),
      ]);
      if (!instance) return;
      rememberPool(instanceId, instance.pool);
      if (knownPool !== instance.pool) await recordFinish(instance.pool, cacheKey, instanceId, at);
    },
  };
}

/** The pool's record of a key, from its item as read. */
function finishedKeyOf(
  pool: string,
  cacheKey: string,
  item: Record<string, unknown> | null | undefined,
): FinishedKey | undefined {
  if (!item || item.cacheKey !== cacheKey || typeof item.finishedAt !== "string") return undefined;
  return { pool, cacheKey, instanceId: String(item.instanceId), finishedAt: item.finishedAt };
}

/**
 * Whether `next` is the first record of a job started on an instance whose store origin is not
 * decided: it has an instance, it ran (running or finished), its key is known, and no origin was
 * decided before. Decided once: the decision (even "unknown instance") stays with the job.
 */
export function needsOrigin(next: Job): boolean {
  return (
    next.store === undefined &&
    next.instanceId !== null &&
    (next.status === "running" || next.status === "completed") &&
    knownCacheKey(next) !== undefined
  );
}

/** Whether this record is the one where the job completed on an instance, with a known key. */
export function completesOnInstance(current: Job | undefined, next: Job): boolean {
  return (
    next.status === "completed" &&
    current?.status !== "completed" &&
    next.instanceId !== null &&
    knownCacheKey(next) !== undefined
  );
}
