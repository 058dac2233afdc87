import { createHash } from "node:crypto";
import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  ScanCommand,
} from "@aws-sdk/lib-dynamodb";
import {
  applyEvent,
  isTerminal,
  type Job,
  type JobEvent,
  type JobKey,
  type JobStatus,
  jobKeyString,
  jobSchema,
  labelSetKey,
  normalizeLabels,
  sameJob,
} from "../jobs";
import {
  completesOnInstance,
  createStoreKnowledge,
  type ItemKey,
  needsOrigin,
  type StoreReads,
  type StoreSnapshot,
} from "../stores";

export interface LedgerOptions {
  client: DynamoDBDocumentClient;
  tableName: string;
  now?: () => Date;
  /** How long a finished job stays in the ledger, for the status page and reconciliation. */
  finishedJobTtlSeconds?: number;
}

/**
 * - `recorded`: the job changed and was written;
 * - `unchanged`: the event told nothing new (e.g. a late `queued` for a running job); nothing written;
 * - `duplicate`: this delivery was applied before; nothing written.
 */
export type RecordOutcome = "recorded" | "unchanged" | "duplicate";

export interface Ledger {
  /**
   * Apply one event, exactly once per delivery id (when it has one). `previous` is the job as the
   * ledger held it before (undefined when it was new to the ledger).
   */
  record(
    event: JobEvent,
    deliveryId?: string,
  ): Promise<{ outcome: RecordOutcome; job: Job | undefined; previous?: Job | undefined }>;
  get(key: JobKey): Promise<Job | undefined>;
  /** Fill in the labels of a job recorded without them (GitLab tags looked up after the webhook). */
  setLabels(key: JobKey, labels: readonly string[]): Promise<Job | undefined>;
  /** Queued jobs asking for exactly this label set, oldest first. */
  queuedByLabels(labels: readonly string[] | "unknown"): Promise<Job[]>;
  /** Every queued job, oldest first. */
  queued(): Promise<Job[]>;
  /**
   * Every queued job, oldest first, if reading at most `limit` index items finds them all; else
   * undefined. A cheap look at a short queue, which costs the same whatever the queue's length.
   */
  queuedIfFew(limit: number): Promise<Job[] | undefined>;
  /**
   * Up to `limit` queued jobs with these label sets (`labelSetKey`), oldest first, after the job
   * whose queue position (`queuedAt#source#id`) is `after`; `more` when others follow.
   */
  queuedAfter(
    labelSets: readonly string[],
    after: string | undefined,
    limit: number,
  ): Promise<{ jobs: Job[]; more: boolean }>;
  /** Jobs running on an instance. */
  runningOn(instanceId: string): Promise<Job[]>;
  /**
   * Every job running on an instance (a scan of the sparse index of running jobs), if reading at most
   * `readLimit` of them finds them all; `complete` false when there are more (the sweep then acts on
   * nothing).
   */
  runningOnInstances(readLimit: number): Promise<{ jobs: Job[]; complete: boolean }>;
  /** Jobs queued since `from` (any status now), oldest first: the arrivals the forecast learns from. */
  arrivedSince(from: Date): Promise<Job[]>;
  /**
   * Jobs queued since `from` that now have one of `statuses`, newest arrival first, from at most
   * about `readLimit` of the latest arrivals: bounded, whatever arrived since.
   */
  latestArrivals(from: Date, statuses: readonly JobStatus[], readLimit: number): Promise<Job[]>;
}

const MAX_ATTEMPTS = 8;
/**
 * Delivery ids are remembered on the job item itself, so deduplication costs no extra read or write
 * and the ids expire with the job. A job sees a handful of events; a replay older than the last
 * `DELIVERIES_KEPT` is still harmless, because applying an event again changes nothing.
 */
const DELIVERIES_KEPT = 20;
const jobPk = (key: JobKey) => `JOB#${key.source}#${key.id}`;
/**
 * gsi1's partition key for the queue of one label set. DynamoDB refuses key values over 2048 bytes,
 * and a job may ask for up to 100 labels of 256 characters: a long set is indexed by its hash.
 */
export function queuedPk(setKey: string): string {
  const pk = `QUEUED#${setKey}`;
  if (Buffer.byteLength(pk, "utf8") <= 1024) return pk;
  return `QUEUED#sha256:${createHash("sha256").update(setKey).digest("hex")}`;
}

type Item = Record<string, unknown>;

/** A job's own fields: what `queued()` reads of each item. */
const queuedProjection = Object.keys(jobSchema.shape) as Array<keyof Job>;

const optionalFields = new Set<string>(["interruption", "retry", "retryOf", "retryNumber", "store"]);

const projectionNames = Object.fromEntries(queuedProjection.map((field, i) => [`#f${i}`, field]));

/** Position in the queue: the order of gsi1's sort key, and of the status page's cursor. */
export const queuePosition = (job: Pick<Job, "queuedAt" | "source" | "id">): string =>
  `${job.queuedAt ?? ""}#${job.source}#${job.id}`;

function byQueuePosition(items: Item[]): Job[] {
  return items
    .map((item) => ({ job: storedJob(item), key: queuePosition(item as unknown as Job) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({ job }) => job);
}

/** A job item as the ledger wrote it (validated then), without the item's bookkeeping. */
function storedJob(item: Item): Job {
  const job = {} as Record<string, unknown>;
  for (const field of queuedProjection) {
    const value = item[field];
    // The retry fields are absent on most jobs; every other field is null when unknown.
    if (value !== undefined) job[field] = value;
    else if (!optionalFields.has(field)) job[field] = null;
  }
  return job as unknown as Job;
}

/**
 * A job as the table stores it: the job, its bookkeeping, and the keys of the indexes it belongs to
 * (queued, running on an instance, arrived on a day). Exported for benchmarks that fill a table.
 */
export function jobItem(
  job: Job,
  options: { version: number; deliveries: string[]; now: Date; finishedTtlSeconds: number },
): Item {
  const item: Item = {
    ...job,
    pk: jobPk(job),
    sk: "JOB",
    kind: "job",
    version: options.version,
    deliveries: options.deliveries,
    updatedAt: options.now.toISOString(),
  };
  if (job.status === "queued") {
    item.gsi1pk = queuedPk(labelSetKey(job));
    item.gsi1sk = `${job.queuedAt ?? ""}#${job.source}#${job.id}`;
  }
  if (job.status === "running" && job.instanceId) {
    item.gsi2pk = `INSTANCE#${job.instanceId}`;
    item.gsi2sk = jobKeyString(job);
  }
  if (job.queuedAt) {
    item.gsi3pk = `ARRIVED#${job.queuedAt.slice(0, 10)}`;
    item.gsi3sk = `${job.queuedAt}#${job.source}#${job.id}`;
  }
  if (isTerminal(job.status)) {
    const finished = job.finishedAt ? new Date(job.finishedAt) : options.now;
    item.expiresAt = Math.floor(finished.getTime() / 1000) + options.finishedTtlSeconds;
  }
  return item;
}

export function createLedger(options: LedgerOptions): Ledger {
  const { client, tableName } = options;
  const now = options.now ?? (() => new Date());
  const finishedTtl = options.finishedJobTtlSeconds ?? 7 * 24 * 3600;

  const queuedScan = {
    TableName: tableName,
    IndexName: "gsi1",
    FilterExpression: "#kind = :job AND #status = :queued",
    ProjectionExpression: queuedProjection.map((_, i) => `#f${i}`).join(", "),
    ExpressionAttributeNames: { "#kind": "kind", "#status": "status", ...projectionNames },
    ExpressionAttributeValues: { ":job": "job", ":queued": "queued" },
  };
  const toItem = (job: Job, version: number, deliveries: string[]): Item =>
    jobItem(job, { version, deliveries, now: now(), finishedTtlSeconds: finishedTtl });

  function fromItem(item: Item): Job {
    return jobSchema.parse(item);
  }

  /**
   * Consistent reads of a few items in one call (a BatchGetItem), whichever of them exist. Keys the
   * table left unprocessed (throttling) are asked again, after a short wait.
   */
  async function readItems(keys: ItemKey[]): Promise<Item[]> {
    const items: Item[] = [];
    let pending: Item[] = keys.map((key) => ({ pk: key.pk, sk: key.sk }));
    for (let round = 1; pending.length > 0; round++) {
      if (round > 1) await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** Math.min(round, 8)));
      const got = await client.send(
        new BatchGetCommand({ RequestItems: { [tableName]: { Keys: pending, ConsistentRead: true } } }),
      );
      items.push(...(got.Responses?.[tableName] ?? []));
      pending = got.UnprocessedKeys?.[tableName]?.Keys ?? [];
      if (pending.length > 0 && round >= MAX_ATTEMPTS) throw new Error("DynamoDB left reads unprocessed");
    }
    return items;
  }

  /**
   * Read-modify-write with optimistic concurrency: single-item conditional puts only (no
   * transactions, which dynalite lacks and which cost twice as much on AWS).
   */
  async function update(
    key: JobKey,
    change: (current: Job | undefined) => Job | undefined | Promise<Job | undefined>,
    deliveryId?: string,
    first: {
      /** Items read with the job's own in its first read, in the same call, for `change` to use. */
      alongside?: { keys: ItemKey[]; read(items: Item[]): void };
      /**
       * The job is most likely new: the first attempt does not read it, and writes it only if it is
       * not there (as a read that found nothing would); a job that is there is then read as usual.
       */
      likelyNew?: boolean;
    } = {},
  ): Promise<{ outcome: RecordOutcome; job: Job | undefined; previous: Job | undefined }> {
    const { alongside, likelyNew } = first;
    const jobKey = { pk: jobPk(key), sk: "JOB" };
    for (let attempt = 1; ; attempt++) {
      let item: Item | undefined;
      if (attempt === 1 && likelyNew) {
        item = undefined;
      } else if (attempt === 1 && alongside) {
        const items = await readItems([jobKey, ...alongside.keys]);
        item = items.find((read) => read.pk === jobKey.pk && read.sk === jobKey.sk);
        alongside.read(items.filter((read) => read !== item));
      } else {
        const got = await client.send(
          new GetCommand({ TableName: tableName, Key: jobKey, ConsistentRead: true }),
        );
        item = got.Item;
      }
      const seen: string[] = Array.isArray(item?.deliveries) ? item.deliveries : [];
      const current = item ? fromItem(item) : undefined;
      if (deliveryId !== undefined && seen.includes(deliveryId))
        return { outcome: "duplicate", job: current, previous: current };
      const next = await change(current);
      // An event that tells nothing new is not written at all: applying it again is harmless.
      if (next === undefined || (current !== undefined && sameJob(current, next))) {
        return { outcome: "unchanged", job: current, previous: current };
      }
      const version = typeof item?.version === "number" ? item.version : 0;
      const deliveries = deliveryId === undefined ? seen : [deliveryId, ...seen].slice(0, DELIVERIES_KEPT);
      try {
        await client.send(
          new PutCommand({
            TableName: tableName,
            Item: toItem(next, version + 1, deliveries),
            ...(item
              ? { ConditionExpression: "version = :v", ExpressionAttributeValues: { ":v": version } }
              : { ConditionExpression: "attribute_not_exists(pk)" }),
          }),
        );
        return { outcome: "recorded", job: next, previous: current };
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException) || attempt >= MAX_ATTEMPTS) throw error;
      }
    }
  }

  async function queryAll(input: ConstructorParameters<typeof QueryCommand>[0]): Promise<Item[]> {
    const items: Item[] = [];
    let start: Item | undefined;
    do {
      const page = await client.send(new QueryCommand({ ...input, ExclusiveStartKey: start }));
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  const stores = createStoreKnowledge({ client, tableName, now });

  /**
   * What a job's store holds follows from the ledger's own transitions, whichever path recorded them
   * (webhook, poll, heartbeat, sweep): the record where a job first runs on an instance decides its
   * store's origin, and the record where it completes adds its key to that store, only once that
   * record is written. So a write retried after a concurrent one never sees the job's own key: the
   * decision is made once per `record` call (reads only) and kept across its attempts, unless a
   * concurrent write already decided it, whose decision the job keeps.
   */
  async function record(event: JobEvent, deliveryId?: string) {
    let decided: NonNullable<Job["store"]> | undefined;
    // An event that runs or completes the job on an instance reads the instance's store with the job
    // itself, in one call: the decision and the completion below then read nothing more, mostly.
    const reads: StoreReads | undefined = stores.readsFor(event);
    let snapshot: StoreSnapshot | undefined;
    const result = await update(
      event,
      async (current) => {
        const next = applyEvent(current, event);
        if (!needsOrigin(next) || next.instanceId === null) return next;
        if (decided?.instanceId !== next.instanceId) {
          const at = next.startedAt ? new Date(next.startedAt) : now();
          const origin = await stores.originOf(next, next.instanceId, at, snapshot);
          decided = { origin, instanceId: next.instanceId, at: at.toISOString() };
        }
        return { ...next, store: decided };
      },
      deliveryId,
      {
        // A forge's delivery of a job's `queued` is mostly its first word of the job: written without
        // a read first. (A poll's, without a delivery id, mostly finds a job a webhook recorded.)
        likelyNew: event.status === "queued" && deliveryId !== undefined,
        alongside: reads && {
          keys: reads.keys,
          read: (items) => {
            snapshot = reads.snapshot(items);
          },
        },
      },
    );
    const { job, previous } = result;
    if (
      result.outcome === "recorded" &&
      job &&
      completesOnInstance(previous, job) &&
      job.instanceId !== null
    ) {
      // Best effort, after the job is written: a key not recorded costs a later job a warm decision
      // (counted cold), never a wrong job.
      await stores
        .finished(job, job.instanceId, job.finishedAt ? new Date(job.finishedAt) : now(), snapshot)
        .catch(() => undefined);
    }
    return result;
  }

  return {
    record,

    async get(key) {
      const got = await client.send(
        new GetCommand({ TableName: tableName, Key: { pk: jobPk(key), sk: "JOB" }, ConsistentRead: true }),
      );
      return got.Item ? fromItem(got.Item) : undefined;
    },

    async setLabels(key, labels) {
      const { job } = await update(key, (current) =>
        current ? { ...current, labels: normalizeLabels(labels), labelsKnown: true } : undefined,
      );
      return job;
    },

    async queuedByLabels(labels) {
      const setKey = labels === "unknown" ? "?" : normalizeLabels(labels).join(",");
      const items = await queryAll({
        TableName: tableName,
        IndexName: "gsi1",
        KeyConditionExpression: "gsi1pk = :pk",
        ExpressionAttributeValues: { ":pk": queuedPk(setKey) },
        ScanIndexForward: true,
      });
      return items.map(fromItem);
    },

    async queued() {
      // The index is sparse (queued jobs and the instance registry). The scan reads only the job's
      // own fields (not its delivery ids, the bulk of an item), and skips re-validating what the
      // ledger itself wrote: the queue may be tens of thousands long.
      const items: Item[] = [];
      let start: Item | undefined;
      do {
        const page = await client.send(new ScanCommand({ ...queuedScan, ExclusiveStartKey: start }));
        items.push(...(page.Items ?? []));
        start = page.LastEvaluatedKey;
      } while (start);
      return byQueuePosition(items);
    },

    async queuedIfFew(limit) {
      const page = await client.send(new ScanCommand({ ...queuedScan, Limit: limit }));
      return page.LastEvaluatedKey ? undefined : byQueuePosition(page.Items ?? []);
    },

    async queuedAfter(labelSets, after, limit) {
      const pages = await Promise.all(
        labelSets.map((setKey) =>
          client.send(
            new QueryCommand({
              TableName: tableName,
              IndexName: "gsi1",
              KeyConditionExpression:
                after === undefined ? "gsi1pk = :pk" : "gsi1pk = :pk AND gsi1sk > :after",
              ExpressionAttributeValues: {
                ":pk": queuedPk(setKey),
                ...(after === undefined ? {} : { ":after": after }),
              },
              ProjectionExpression: queuedScan.ProjectionExpression,
              ExpressionAttributeNames: projectionNames,
              ScanIndexForward: true,
              Limit: limit + 1,
            }),
          ),
        ),
      );
      const all = byQueuePosition(pages.flatMap((page) => page.Items ?? []));
      const more = all.length > limit || pages.some((page) => page.LastEvaluatedKey !== undefined);
      return { jobs: all.slice(0, limit), more };
    },

    async arrivedSince(from) {
      const jobs: Job[] = [];
      const start = from.toISOString();
      for (
        let day = new Date(`${start.slice(0, 10)}T00:00:00.000Z`);
        day <= now();
        day = new Date(day.getTime() + 86_400_000)
      ) {
        const items = await queryAll({
          TableName: tableName,
          IndexName: "gsi3",
          KeyConditionExpression: "gsi3pk = :pk AND gsi3sk >= :from",
          ExpressionAttributeValues: { ":pk": `ARRIVED#${day.toISOString().slice(0, 10)}`, ":from": start },
        });
        jobs.push(...items.map(fromItem));
      }
      return jobs;
    },

    async latestArrivals(from, statuses, readLimit) {
      const jobs: Job[] = [];
      const start = from.toISOString();
      const values = Object.fromEntries(statuses.map((status, i) => [`:s${i}`, status]));
      let read = 0;
      // Newest day first, newest first within it; the table filters, so other statuses are never sent.
      for (
        let day = new Date(`${now().toISOString().slice(0, 10)}T00:00:00.000Z`);
        day.getTime() >= Date.parse(`${start.slice(0, 10)}T00:00:00.000Z`) && read < readLimit;
        day = new Date(day.getTime() - 86_400_000)
      ) {
        let cursor: Item | undefined;
        do {
          const page = await client.send(
            new QueryCommand({
              TableName: tableName,
              IndexName: "gsi3",
              KeyConditionExpression: "gsi3pk = :pk AND gsi3sk >= :from",
              FilterExpression: `#status IN (${statuses.map((_, i) => `:s${i}`).join(", ")})`,
              ExpressionAttributeNames: { "#status": "status" },
              ExpressionAttributeValues: {
                ":pk": `ARRIVED#${day.toISOString().slice(0, 10)}`,
                ":from": start,
                ...values,
              },
              ScanIndexForward: false,
              Limit: Math.min(500, readLimit - read),
              ExclusiveStartKey: cursor,
            }),
          );
          read += page.ScannedCount ?? 0;
          jobs.push(...(page.Items ?? []).map(fromItem));
          cursor = page.LastEvaluatedKey;
        } while (cursor && read < readLimit);
      }
      return jobs;
    },

    async runningOnInstances(readLimit) {
      const items: Item[] = [];
      let start: Item | undefined;
      do {
        const page = await client.send(
          new ScanCommand({
            TableName: tableName,
            IndexName: "gsi2",
            Limit: Math.max(1, readLimit - items.length),
            ExclusiveStartKey: start,
          }),
        );
        items.push(...(page.Items ?? []));
        start = page.LastEvaluatedKey;
      } while (start && items.length < readLimit);
      return { jobs: items.map(fromItem), complete: start === undefined };
    },

    async runningOn(instanceId) {
      const items = await queryAll({
        TableName: tableName,
        IndexName: "gsi2",
        KeyConditionExpression: "gsi2pk = :pk",
        ExpressionAttributeValues: { ":pk": `INSTANCE#${instanceId}` },
      });
      return items.map(fromItem);
    },
  };
}
