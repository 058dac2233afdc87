import { randomUUID } from "node:crypto";
import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, GetCommand, PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import * as z from "zod";
import { type JobKey, sources } from "../jobs";
import { reportedSlotRunnerStates, runnerStopReasons } from "../runners/vocabulary";
import type { Store } from "../table";
import { rememberKey, storeKeys } from "./store-keys";
import { type Group, type Market, type RunnerState, reportedRunnerStates } from "./vocabulary";

/**
 * The instance registry: what each instance of the fleet last said about itself. Auto Scaling knows
 * an instance's lifecycle; only the instance knows whether its runner is busy, which jobs it runs and
 * what its Nix store holds. Busy state is never inferred from the forges (GitHub's `busy` flag lags).
 */

export const instanceIdPattern = /^i-[0-9a-f]{8,17}$/;
export {
  type Group,
  groups,
  type Lifecycle,
  lifecycles,
  type Market,
  markets,
  type RunnerState,
  reportedRunnerStates,
  runnerStates,
} from "./vocabulary";

const isoTime = z.iso.datetime({ offset: true });

export const interruptionSchema = z.object({
  /** EC2's spot instance action, or `rebalance` for a rebalance recommendation. */
  action: z.enum(["terminate", "stop", "hibernate", "rebalance"]),
  /** When EC2 will act (the notice's `time`). */
  time: isoTime,
});
export type Interruption = z.infer<typeof interruptionSchema>;

/** The stronger of two notices: a spot warning outranks a rebalance recommendation, which outranks none. */
export function strongerInterruption(
  current: Interruption | null,
  next: Interruption | null,
): Interruption | null {
  const strength = (n: Interruption | null) => (n === null ? 0 : n.action === "rebalance" ? 1 : 2);
  return strength(next) > strength(current) ? next : current;
}

/** `POST /agent/heartbeat`: the agent's report, every 15 s. */
export const heartbeatSchema = z.object({
  instanceId: z.string().regex(instanceIdPattern, "not an EC2 instance id"),
  runner: z.enum(reportedRunnerStates),
  slots: z.number().int().min(1).max(64),
  runningJobs: z
    .array(z.object({ source: z.enum(sources), id: z.string().regex(/^\d{1,20}$/, "not a job id") }))
    .max(64),
  /** Cache keys the store is warm for, most recent first. */
  cacheKeys: z.array(z.string().min(1).max(300)).max(64),
  storeBytes: z.number().int().nonnegative().nullable(),
  interruption: interruptionSchema.nullable(),
  /**
   * The protocol the agent speaks (docs/PROTOCOL.md). Absent in version 0, whose agents report no
   * runners and get no instructions.
   */
  protocol: z.number().int().min(0).max(1000).optional(),
  /** Version 1: the GitHub runner each slot holds, as the agent started it. */
  slotRunners: z
    .array(
      z.object({
        slot: z.number().int().min(0).max(63),
        runnerId: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
        state: z.enum(reportedSlotRunnerStates),
        job: z
          .object({ source: z.enum(sources), id: z.string().regex(/^\d{1,20}$/, "not a job id") })
          .nullable()
          .optional(),
      }),
    )
    .max(64)
    .refine(
      (runners) => new Set(runners.map((r) => r.slot)).size === runners.length,
      "a slot is reported twice",
    )
    .optional(),
  /** Version 1: the GitLab runner manager this instance is, once gitlab-runner has started. */
  gitlabManager: z
    .object({
      runnerId: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).nullable(),
      systemId: z.string().regex(/^[a-z]_[A-Za-z0-9]{1,62}$/, "not a GitLab system_id"),
    })
    .nullable()
    .optional(),
  /**
   * Version 1, optional: the store's health (docs/PROTOCOL.md). The control plane keeps them on the
   * instance's record: the status page shows them, and the minute tick makes each pool's worst of
   * them a metric that an alarm watches. An agent that cannot measure one sends null or leaves it out.
   */
  freeDiskBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER).nullable().optional(),
  /** Store paths waiting to be pushed to the binary cache. */
  pushQueueDepth: z.number().int().nonnegative().max(10_000_000).nullable().optional(),
  /** Seconds the oldest path in the push queue has waited (0 when the queue is empty). */
  pushLagSeconds: z.number().int().nonnegative().max(31_536_000).nullable().optional(),
  /**
   * Version 2, optional: runners the agent stopped while they ran a job, and why, each reported
   * once (docs/PROTOCOL.md §2). The control plane journals each.
   */
  stoppedRunners: z
    .array(
      z.object({
        slot: z.number().int().min(0).max(63).nullable(),
        runnerId: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).nullable(),
        reason: z.enum(runnerStopReasons),
        at: isoTime,
      }),
    )
    .max(64)
    .optional(),
  /**
   * Version 2, optional: false once the agent has stopped claiming jobs (a release or a drain asked
   * it to); true or absent while it claims. The second phase of a release waits for it.
   */
  claiming: z.boolean().optional(),
});
export type Heartbeat = z.infer<typeof heartbeatSchema>;

export interface InstanceRecord {
  id: string;
  pool: string;
  group: Group;
  market: Market;
  az: string;
  /** When the instance was launched (or last resumed from the warm pool). */
  launchedAt: string;
  registeredAt: string;
  runner: RunnerState;
  slots: number;
  runningJobs: JobKey[];
  /**
   * The cache keys its store holds, most recent first: `finishedCacheKeys`, then any
   * `reportedCacheKeys` adds (`storeKeys`). What the planner and the store origins read.
   */
  cacheKeys: string[];
  /**
   * The keys of the jobs that completed on it, as the ledger recorded them (`cacheKeyOf`, which an
   * instance cannot compute for GitHub jobs), the `STORE_KEYS` most recent first. Kept while the
   * instance is stopped, as its store is; gone with it when it is terminated.
   */
  finishedCacheKeys: string[];
  /**
   * When a job of each of `finishedCacheKeys` last completed on it: a store held a key only from then
   * on, which a late decision of a job's store origin needs (a sibling slot may have finished the key
   * after this job started).
   */
  finishedCacheKeyTimes: Record<string, string>;
  /** The keys its agent last reported (`<stateDir>/cache-keys.json`, when an image writes one). */
  reportedCacheKeys: string[];
  storeBytes: number | null;
  /** Free bytes on the store's file system, as the agent last reported (null: not measured). */
  freeDiskBytes: number | null;
  /** Builds waiting to be pushed to the binary cache, and the oldest one's wait, as last reported. */
  pushQueueDepth: number | null;
  pushLagSeconds: number | null;
  lastHeartbeatAt: string | null;
  /** Since when no slot has been busy; null while busy or before the first heartbeat. */
  idleSince: string | null;
  interruption: Interruption | null;
  /** The GitLab runner manager the instance reported being (protocol 1), or null. */
  gitlabManager: { runnerId: number | null; systemId: string } | null;
  /** The protocol of the last heartbeat (null before the first): an agent before 2 cannot confirm a release. */
  agentProtocol: number | null;
  /** Whether the last heartbeat said the agent claims jobs (`claiming`, absent: true). */
  claiming: boolean | null;
  /** The instance is being released (two phases, docs/PROTOCOL.md); null otherwise. */
  releasing: Releasing | null;
  /**
   * When Observe found it stopped (or stopping) into the warm pool, until it is resumed or reports
   * again: its record otherwise looks like one booting since its last launch.
   */
  parkedAt: string | null;
}

/**
 * A release in progress. Apply marks an idle instance (`at`); the heartbeat answer then says
 * `release`, and the agent stops claiming. `confirmedAt` is set by the first heartbeat that finds the
 * mark and says `claiming: false` with no job running: from then on the agent takes no job while the
 * mark stays, so a later Apply may let the instance go (`releasedAt`). A job reported before that
 * clears the mark; a released instance's mark is never cleared (it leaves with it).
 */
export interface Releasing {
  at: string;
  confirmedAt: string | null;
  releasedAt: string | null;
}

export type Registration = Pick<InstanceRecord, "id" | "pool" | "group" | "market" | "az" | "launchedAt"> & {
  slots: number;
};

/** A newly registered instance's record: booting, nothing reported yet. */
export function registeredRecord(registration: Registration, registeredAt: string): InstanceRecord {
  return {
    id: registration.id,
    pool: registration.pool,
    group: registration.group,
    market: registration.market,
    az: registration.az,
    launchedAt: registration.launchedAt,
    registeredAt,
    runner: "booting",
    slots: registration.slots,
    runningJobs: [],
    cacheKeys: [],
    finishedCacheKeys: [],
    finishedCacheKeyTimes: {},
    reportedCacheKeys: [],
    storeBytes: null,
    freeDiskBytes: null,
    pushQueueDepth: null,
    pushLagSeconds: null,
    lastHeartbeatAt: null,
    idleSince: null,
    interruption: null,
    gitlabManager: null,
    agentProtocol: null,
    claiming: null,
    releasing: null,
    parkedAt: null,
  };
}

const key = (id: string) => ({ pk: `INSTANCE#${id}`, sk: "INSTANCE" });

/** The table key of an instance's record, for a caller that reads it along with other items. */
export const instanceItemKey = key;

/** An instance's item as the table holds it (its record and the registry's bookkeeping). */
export type InstanceItem = Record<string, unknown>;
const FIELDS = [
  "id",
  "pool",
  "group",
  "market",
  "az",
  "launchedAt",
  "registeredAt",
  "runner",
  "slots",
  "runningJobs",
  "cacheKeys",
  "finishedCacheKeys",
  "finishedCacheKeyTimes",
  "reportedCacheKeys",
  "storeBytes",
  "freeDiskBytes",
  "pushQueueDepth",
  "pushLagSeconds",
  "lastHeartbeatAt",
  "idleSince",
  "interruption",
  "gitlabManager",
  "agentProtocol",
  "claiming",
  "releasing",
  "parkedAt",
] as const;

export function instanceFromItem(item: InstanceItem): InstanceRecord {
  const record = Object.fromEntries(
    FIELDS.map((field) => [field, item[field] ?? null]),
  ) as unknown as InstanceRecord;
  // A record written before the two lists were kept apart: what it held was the agent's report.
  record.reportedCacheKeys ??= record.cacheKeys ?? [];
  record.finishedCacheKeys ??= [];
  record.finishedCacheKeyTimes ??= {};
  record.cacheKeys ??= [];
  return record;
}

export interface InstanceRegistry {
  /** Adds an instance Auto Scaling launched; an instance already known keeps what it reported. */
  register(registration: Registration): Promise<InstanceRecord>;
  get(id: string): Promise<InstanceRecord | undefined>;
  inPool(pool: string): Promise<InstanceRecord[]>;
  /** Stores a heartbeat; returns the record before and after. */
  heartbeat(
    id: string,
    beat: Heartbeat,
  ): Promise<{ before: InstanceRecord; after: InstanceRecord } | undefined>;
  /**
   * A job with this cache key completed on the instance at `at` (ISO): its store now holds the key
   * (most recent first). Returns the record as written, or undefined for an instance the registry
   * does not know. `read` is the instance's item as the caller already read it (null: not in the
   * table then), taken instead of reading it again: its write still holds only if no other write
   * came since, and is tried again on a fresh read otherwise.
   */
  finishedJob(
    id: string,
    cacheKey: string,
    at: string,
    read?: InstanceItem | null,
  ): Promise<InstanceRecord | undefined>;
  /** An instance resumed from the warm pool: booting again, same store. */
  resumed(id: string, at: string): Promise<void>;
  /** An instance went into the warm pool: nothing runs on it until it resumes. */
  parked(id: string): Promise<void>;
  /**
   * Release, phase one: marks the instance `releasing` if `idle(record)` holds when written. Returns
   * the record as written, or undefined when it is not idle (or unknown). An existing mark is kept.
   */
  markReleasing(id: string, idle: (record: InstanceRecord) => boolean): Promise<InstanceRecord | undefined>;
  /** The plan no longer releases it: the mark goes (unless the instance was released already). */
  clearReleasing(id: string): Promise<InstanceRecord | undefined>;
  /** Release, phase two done: the instance lost its protection; its mark stays until it is gone. */
  released(id: string): Promise<void>;
  /** HandleInterruption marks an instance interrupted (a weaker notice never replaces a stronger one). */
  interrupted(id: string, interruption: Interruption): Promise<InstanceRecord | undefined>;
  forget(id: string): Promise<void>;
}

/** An instance between runs (stopped, or resuming): nothing runs on it, and it has not reported yet. */
const quiet = (record: InstanceRecord): InstanceRecord => ({
  ...record,
  runner: "booting",
  runningJobs: [],
  lastHeartbeatAt: null,
  idleSince: null,
  claiming: null,
  releasing: null,
  // A stop ends what an interruption notice said about this run of the instance (a spot warm store
  // stopped by its interruption runs again as a new spot instance).
  interruption: null,
  parkedAt: null,
});

/**
 * What a heartbeat does to a release mark. A job (or a spot notice) before the release is done takes
 * the mark away: the instance is busy, the plan decides again. The first report of `claiming: false`
 * with nothing running, written while the mark is there, confirms it: the answer to that very
 * heartbeat says `release`, so the agent claims nothing until the mark goes. A report that claims
 * again (the answer that said `release` had not reached it yet) leaves it unconfirmed.
 */
export function releasingAfterBeat(
  releasing: Releasing | null,
  beat: Heartbeat,
  at: string,
): Releasing | null {
  if (!releasing || releasing.releasedAt) return releasing;
  if (beat.runningJobs.length || beat.interruption || beat.runner !== "ready") return null;
  if (beat.claiming !== false) return { ...releasing, confirmedAt: null };
  return releasing.confirmedAt ? releasing : { ...releasing, confirmedAt: at };
}

export function createInstanceRegistry(store: Store): InstanceRegistry {
  const { client, tableName, now } = store;

  function toItem(record: InstanceRecord): Record<string, unknown> {
    return {
      ...key(record.id),
      kind: "instance",
      ...record,
      gsi1pk: `INSTANCES#${record.pool}`,
      gsi1sk: record.id,
    };
  }

  async function get(id: string) {
    const got = await client.send(
      new GetCommand({ TableName: tableName, Key: key(id), ConsistentRead: true }),
    );
    return got.Item ? instanceFromItem(got.Item) : undefined;
  }

  /**
   * Optimistic update on `lastWrite` (unique to each write), so a heartbeat and a registration never
   * undo each other, and on the record still being there, so that a write never brings back a
   * forgotten instance. A change that returns null writes nothing (`after` is then null). `read`,
   * when given, is the item as the caller read it, taken for the first attempt instead of reading it.
   */
  async function update(
    id: string,
    change: (record: InstanceRecord) => InstanceRecord,
  ): Promise<{ before: InstanceRecord; after: InstanceRecord } | undefined>;
  async function update(
    id: string,
    change: (record: InstanceRecord) => InstanceRecord | null,
    read?: InstanceItem | null,
  ): Promise<{ before: InstanceRecord; after: InstanceRecord | null } | undefined>;
  async function update(
    id: string,
    change: (record: InstanceRecord) => InstanceRecord | null,
    read?: InstanceItem | null,
  ) {
    for (let attempt = 1; ; attempt++) {
      const item =
        attempt === 1 && read !== undefined
          ? read
          : (await client.send(new GetCommand({ TableName: tableName, Key: key(id), ConsistentRead: true })))
              .Item;
      if (!item) return undefined;
      const before = instanceFromItem(item);
      const after = change(before);
      if (!after) return { before, after: null };
      try {
        await client.send(
          new PutCommand({
            TableName: tableName,
            // Unique, not only a time: two writes in the same millisecond (or on a clock that does not
            // move, as local mode's fake one) must not pass for each other.
            Item: { ...toItem(after), lastWrite: `${now().toISOString()}#${randomUUID()}` },
            ConditionExpression:
              "attribute_exists(pk) AND (attribute_not_exists(lastWrite) OR lastWrite = :w)",
            ExpressionAttributeValues: { ":w": item.lastWrite ?? null },
          }),
        );
        return { before, after };
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException) || attempt >= 8) throw error;
      }
    }
  }

  return {
    async register(registration) {
      const record = registeredRecord(registration, now().toISOString());
      try {
        await client.send(
          new PutCommand({
            TableName: tableName,
            Item: toItem(record),
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        );
        return record;
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
        return (await get(registration.id)) ?? record;
      }
    },

    get,

    async inPool(pool) {
      const records: InstanceRecord[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const page = await client.send(
          new QueryCommand({
            TableName: tableName,
            IndexName: "gsi1",
            KeyConditionExpression: "gsi1pk = :pk",
            ExpressionAttributeValues: { ":pk": `INSTANCES#${pool}` },
            ExclusiveStartKey: start,
          }),
        );
        records.push(...(page.Items ?? []).map(instanceFromItem));
        start = page.LastEvaluatedKey;
      } while (start);
      return records;
    },

    heartbeat(id, beat) {
      const at = now().toISOString();
      return update(id, (record) => {
        const busy = beat.runningJobs.length > 0;
        const protocol = beat.protocol ?? 0;
        return {
          ...record,
          runner: beat.interruption ? "draining" : beat.runner,
          slots: beat.slots,
          runningJobs: beat.runningJobs,
          // The agent's report adds to what the ledger recorded; it never takes a finished job's key away.
          cacheKeys: storeKeys(record.finishedCacheKeys, beat.cacheKeys),
          reportedCacheKeys: beat.cacheKeys,
          storeBytes: beat.storeBytes,
          freeDiskBytes: beat.freeDiskBytes ?? null,
          pushQueueDepth: beat.pushQueueDepth ?? null,
          pushLagSeconds: beat.pushLagSeconds ?? null,
          lastHeartbeatAt: at,
          idleSince: busy ? null : (record.idleSince ?? at),
          // A notice stays until the instance is gone (EC2 does not take it back); a warning outranks a
          // rebalance recommendation.
          interruption: strongerInterruption(record.interruption, beat.interruption),
          gitlabManager: beat.gitlabManager ?? record.gitlabManager,
          agentProtocol: protocol,
          claiming: beat.claiming ?? (protocol >= 2 ? true : null),
          releasing: releasingAfterBeat(record.releasing, beat, at),
          parkedAt: null,
        };
      });
    },

    async markReleasing(id, idle) {
      const done = await update(id, (record) => {
        if (record.releasing) return record.releasing.releasedAt ? null : record;
        if (!idle(record)) return null;
        return { ...record, releasing: { at: now().toISOString(), confirmedAt: null, releasedAt: null } };
      });
      return done?.after ?? undefined;
    },

    async clearReleasing(id) {
      const done = await update(id, (record) =>
        record.releasing && !record.releasing.releasedAt ? { ...record, releasing: null } : null,
      );
      return done?.after ?? undefined;
    },

    async released(id) {
      await update(id, (record) =>
        record.releasing
          ? { ...record, releasing: { ...record.releasing, releasedAt: now().toISOString() } }
          : null,
      );
    },

    async finishedJob(id, cacheKey, at, read) {
      const done = await update(
        id,
        (record) => {
          // A replayed or late completion changes nothing: the key was already used since.
          const last = record.finishedCacheKeyTimes[cacheKey];
          if (record.finishedCacheKeys.includes(cacheKey) && last !== undefined && last >= at) return null;
          const finished = [...record.finishedCacheKeys];
          rememberKey(finished, cacheKey);
          const times: Record<string, string> = {};
          for (const key of finished) {
            const time = key === cacheKey ? at : record.finishedCacheKeyTimes[key];
            if (time !== undefined) times[key] = time;
          }
          return {
            ...record,
            finishedCacheKeys: finished,
            finishedCacheKeyTimes: times,
            cacheKeys: storeKeys(finished, record.reportedCacheKeys),
          };
        },
        read,
      );
      if (!done) return undefined;
      return done.after ?? done.before;
    },

    async resumed(id, at) {
      await update(id, (record) => ({ ...quiet(record), launchedAt: at }));
    },

    async parked(id) {
      await update(id, (record) => ({ ...quiet(record), parkedAt: now().toISOString() }));
    },

    async interrupted(id, interruption) {
      const updated = await update(id, (record) => ({
        ...record,
        interruption: strongerInterruption(record.interruption, interruption),
      }));
      return updated?.after;
    },

    async forget(id) {
      await client.send(new DeleteCommand({ TableName: tableName, Key: key(id) }));
    },
  };
}
