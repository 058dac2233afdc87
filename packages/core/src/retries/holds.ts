import { PutCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { BOOT_GRACE_MS, reportsOnTime } from "../fleet";
import type { InstanceRecord } from "../instances";
import type { JobKey, Source } from "../jobs";
import { conditionalWrite, epochSeconds, type Store } from "../table";

/**
 * The retry hold. A retry of an interrupted job goes to whichever runner of its pool listens first,
 * often a spot one, where a second interruption would lose the job for good. While a pool with
 * `retryOnDemand` has a retry waiting, it holds its spot runners: each live spot instance is answered
 * `hold` (protocol 3) and stops claiming, and the planner puts the pool's new capacity on demand. The
 * retry call itself is made only once no spot runner can take it (`gateOpen`).
 *
 * | item          | pk             | sk                     |
 * |---------------|----------------|------------------------|
 * | a held retry  | `HOLD#<pool>`  | `JOB#<source>#<job id>`|
 * | pool's flag   | `HOLD#<pool>`  | `POOL`                 |
 *
 * A held retry is `pending` (its call waits for the gate, or failed and is tried again), `placed`
 * (asked of the forge; held until its job runs) or `awaiting` (GitHub: the run has not completed, so
 * no re-run is due yet; this does not hold the pool). A retry that is not its job's last is recorded
 * `unheld`: it holds nothing, and the record only keeps its call tried (`retryHeld`) until it is made.
 * A record ends when the retry's job runs or ends (an `unheld` one once its call is made), or
 * `HOLD_MAX_SECONDS` after `since`. The pool's flag only makes the journal say once when the pool
 * starts and stops holding.
 */

/** How long the gate waits for the spot agents to confirm: 4 heartbeats of 15 s. */
export const HOLD_CONFIRM_SECONDS = 60;
/**
 * A retry not started within this may no longer starve its pool of spot capacity. An hour: a full
 * pool serves its queue oldest first, so a retry (at the queue's end) can wait behind many jobs; with
 * 15 minutes the trace simulator saw such retries go to spot and be lost (docs/BENCHMARKS.md).
 */
export const HOLD_MAX_SECONDS = 3600;
/** Ended and expired items are kept a day, then go with the table's TTL. */
const KEEP_SECONDS = 86_400;

export type HoldState = "pending" | "awaiting" | "placed" | "unheld";

export interface Hold {
  pool: string;
  source: Source;
  jobId: string;
  /** When the hold began (or, for a GitHub retry, when its run completed and its re-run became due). */
  since: string;
  state: HoldState;
  placedAt: string | null;
  endedAt: string | null;
  endReason: string | null;
}

export interface RetryHolds {
  /**
   * Holds the pool for the job's retry, from now, if it is not held for it already: an `awaiting` hold
   * becomes `pending` again with a new `since`. Returns the hold, and whether the pool's hold for the
   * job began with this call. With `state` `unheld`, records a retry that holds nothing the same way
   * (an `awaiting` one becomes `unheld`).
   */
  begin(pool: string, job: JobKey, state?: "pending" | "unheld"): Promise<{ hold: Hold; began: boolean }>;
  get(pool: string, job: JobKey): Promise<Hold | undefined>;
  /** The pool's holds that have not ended (expired ones included: `active` tells). */
  open(pool: string): Promise<Hold[]>;
  /** Marks a hold that has not ended. */
  mark(pool: string, job: JobKey, state: HoldState): Promise<void>;
  /** Ends the hold: true when this call ended it. */
  end(pool: string, job: JobKey, reason: string): Promise<boolean>;
  /** Sets the pool's flag: true when this call changed it. */
  flag(pool: string, holding: boolean): Promise<boolean>;
}

/** Whether a hold holds its pool at `now`: not ended, not expired, and its retry due and held. */
export const active = (hold: Hold, now: number): boolean =>
  hold.endedAt === null &&
  (hold.state === "pending" || hold.state === "placed") &&
  now - Date.parse(hold.since) < HOLD_MAX_SECONDS * 1000;

export const expired = (hold: Hold, now: number): boolean =>
  hold.endedAt === null && now - Date.parse(hold.since) >= HOLD_MAX_SECONDS * 1000;

const pk = (pool: string) => `HOLD#${pool}`;
const jobSk = (job: JobKey) => `JOB#${job.source}#${job.id}`;

function fromItem(item: Record<string, unknown>): Hold {
  return {
    pool: String(item.pool),
    source: item.source as Source,
    jobId: String(item.jobId),
    since: String(item.since),
    state: item.state as HoldState,
    placedAt: (item.placedAt as string | null) ?? null,
    endedAt: (item.endedAt as string | null) ?? null,
    endReason: (item.endReason as string | null) ?? null,
  };
}

export function createRetryHolds(store: Store): RetryHolds {
  const { client, tableName, now } = store;
  const expiresAt = (since: Date) => epochSeconds(since) + HOLD_MAX_SECONDS + KEEP_SECONDS;

  async function get(pool: string, job: JobKey): Promise<Hold | undefined> {
    const page = await client.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: "pk = :pk AND sk = :sk",
        ExpressionAttributeValues: { ":pk": pk(pool), ":sk": jobSk(job) },
        ConsistentRead: true,
      }),
    );
    const item = page.Items?.[0];
    return item ? fromItem(item) : undefined;
  }

  return {
    async begin(pool, job, state = "pending") {
      const at = now();
      const hold: Hold = {
        pool,
        source: job.source,
        jobId: job.id,
        since: at.toISOString(),
        state,
        placedAt: null,
        endedAt: null,
        endReason: null,
      };
      const created = await conditionalWrite(() =>
        client.send(
          new PutCommand({
            TableName: tableName,
            Item: { pk: pk(pool), sk: jobSk(job), kind: "hold", ...hold, expiresAt: expiresAt(at) },
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        ),
      );
      if (created) return { hold, began: true };
      // A GitHub run that completed since its job's hold went awaiting: its re-run is due from now.
      const due = await conditionalWrite(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { pk: pk(pool), sk: jobSk(job) },
            UpdateExpression: "SET #state = :pending, since = :since, expiresAt = :expires",
            ConditionExpression: "#state = :awaiting AND attribute_type(endedAt, :null)",
            ExpressionAttributeNames: { "#state": "state" },
            ExpressionAttributeValues: {
              ":pending": state,
              ":awaiting": "awaiting",
              ":since": hold.since,
              ":expires": expiresAt(at),
              ":null": "NULL",
            },
          }),
        ),
      );
      const stored = await get(pool, job);
      return { hold: stored ?? hold, began: due };
    },

    get,

    async open(pool) {
      const holds: Hold[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const page = await client.send(
          new QueryCommand({
            TableName: tableName,
            KeyConditionExpression: "pk = :pk AND begins_with(sk, :job)",
            FilterExpression: "attribute_type(endedAt, :null)",
            ExpressionAttributeValues: { ":pk": pk(pool), ":job": "JOB#", ":null": "NULL" },
            ConsistentRead: true,
            ExclusiveStartKey: start,
          }),
        );
        holds.push(...(page.Items ?? []).map(fromItem));
        start = page.LastEvaluatedKey;
      } while (start);
      return holds;
    },

    async mark(pool, job, state) {
      await conditionalWrite(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { pk: pk(pool), sk: jobSk(job) },
            UpdateExpression:
              state === "placed" ? "SET #state = :state, placedAt = :at" : "SET #state = :state",
            ConditionExpression: "attribute_exists(pk) AND attribute_type(endedAt, :null)",
            ExpressionAttributeNames: { "#state": "state" },
            ExpressionAttributeValues: {
              ":state": state,
              ":null": "NULL",
              ...(state === "placed" ? { ":at": now().toISOString() } : {}),
            },
          }),
        ),
      );
    },

    end(pool, job, reason) {
      return conditionalWrite(() =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { pk: pk(pool), sk: jobSk(job) },
            UpdateExpression: "SET endedAt = :at, endReason = :reason",
            ConditionExpression: "attribute_exists(pk) AND attribute_type(endedAt, :null)",
            ExpressionAttributeValues: { ":at": now().toISOString(), ":reason": reason, ":null": "NULL" },
          }),
        ),
      );
    },

    flag(pool, holding) {
      return conditionalWrite(() =>
        client.send(
          new PutCommand({
            TableName: tableName,
            Item: { pk: pk(pool), sk: "POOL", kind: "hold-pool", holding, at: now().toISOString() },
            ConditionExpression: holding
              ? "attribute_not_exists(pk) OR holding = :false"
              : "attribute_exists(pk) AND holding = :true",
            ExpressionAttributeValues: holding ? { ":false": false } : { ":true": true },
          }),
        ),
      );
    },
  };
}

/**
 * Whether a pool's spot instances are live: not draining or interrupted, released, or silent for
 * longer than a heartbeat may be late (or, never heard from, longer than a boot may take).
 */
function liveSpot(instance: InstanceRecord, now: number): boolean {
  if (instance.market !== "spot") return false;
  if (instance.interruption || instance.runner === "draining") return false;
  if (instance.releasing?.releasedAt) return false;
  if (instance.lastHeartbeatAt === null) return now - Date.parse(instance.launchedAt) <= BOOT_GRACE_MS;
  return reportsOnTime(instance.lastHeartbeatAt, now);
}

export type Gate =
  | { open: true; why: "confirmed" | "no-spot" }
  | { open: true; why: "unconfirmed"; unconfirmed: string[] }
  | { open: false; unconfirmed: string[] };

/**
 * The gate before a held retry's call: no spot runner of the pool can take it once every live spot
 * instance has said `claiming: false` in a heartbeat at or after the hold's `since`. An agent that has
 * not confirmed within `HOLD_CONFIRM_SECONDS` is older than protocol 3 or dying: the retry goes
 * without its confirmation (`unconfirmed`).
 */
export function gateOpen(instances: readonly InstanceRecord[], since: string, now: number): Gate {
  const from = Date.parse(since);
  const live = instances.filter((instance) => liveSpot(instance, now));
  if (!live.length) return { open: true, why: "no-spot" };
  const unconfirmed = live
    .filter(
      (instance) =>
        instance.claiming !== false ||
        instance.lastHeartbeatAt === null ||
        Date.parse(instance.lastHeartbeatAt) < from,
    )
    .map((instance) => instance.id);
  if (!unconfirmed.length) return { open: true, why: "confirmed" };
  if (now - from >= HOLD_CONFIRM_SECONDS * 1000) return { open: true, why: "unconfirmed", unconfirmed };
  return { open: false, unconfirmed };
}
