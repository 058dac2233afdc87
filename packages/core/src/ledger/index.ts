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
  jobSchema,
  labelSetKey,
  normalizeLabels,
  sameJob,
} from "../jobs";

export { createTableInput, ensureLedgerTable, ledgerTable } from "./table";

export interface LedgerOptions {
  client: DynamoDBDocumentClient;
  tableName: string;
  now?: () => Date;
  /** How long a delivery id is remembered for deduplication. GitHub redelivers for up to 3 days. */
  deliveryTtlSeconds?: number;
  /** How long a finished job stays in the ledger, for the status page and reconciliation. */
  finishedJobTtlSeconds?: number;
}

/**
 * - `recorded`: the job changed and was written;
 * - `unchanged`: the event told nothing new (e.g. a late `queued` for a running job); nothing written
 *   but the delivery id;
 * - `duplicate`: this delivery was applied before; nothing written.
 */
export type RecordOutcome = "recorded" | "unchanged" | "duplicate";

export interface Ledger {
  /** Apply one event, exactly once per delivery id. */
  record(event: JobEvent, deliveryId: string): Promise<{ outcome: RecordOutcome; job: Job | undefined }>;
  get(key: JobKey): Promise<Job | undefined>;
  /** Fill in the labels of a job recorded without them (GitLab tags looked up after the webhook). */
  setLabels(key: JobKey, labels: readonly string[]): Promise<Job | undefined>;
  /** Queued jobs asking for exactly this label set, oldest first. */
  queuedByLabels(labels: readonly string[] | "unknown"): Promise<Job[]>;
  /** Every queued job, oldest first. */
  queued(): Promise<Job[]>;
  /** Jobs running on an instance. */
  runningOn(instanceId: string): Promise<Job[]>;
}

const MAX_ATTEMPTS = 8;
const jobPk = (key: JobKey) => `JOB#${key.source}#${key.id}`;
const deliveryPk = (source: string, deliveryId: string) => `DELIVERY#${source}#${deliveryId}`;

type Item = Record<string, unknown>;

export function createLedger(options: LedgerOptions): Ledger {
  const { client, tableName } = options;
  const now = options.now ?? (() => new Date());
  const deliveryTtl = options.deliveryTtlSeconds ?? 7 * 24 * 3600;
  const finishedTtl = options.finishedJobTtlSeconds ?? 7 * 24 * 3600;
  const epoch = (date: Date) => Math.floor(date.getTime() / 1000);

  function toItem(job: Job, version: number): Item {
    const item: Item = {
      ...job,
      pk: jobPk(job),
      sk: "JOB",
      kind: "job",
      version,
      updatedAt: now().toISOString(),
    };
    if (job.status === "queued") {
      item.gsi1pk = `QUEUED#${labelSetKey(job)}`;
      item.gsi1sk = `${job.queuedAt ?? ""}#${job.source}#${job.id}`;
    }
    if (job.status === "running" && job.instanceId) {
      item.gsi2pk = `INSTANCE#${job.instanceId}`;
      item.gsi2sk = `${job.source}#${job.id}`;
    }
    if (isTerminal(job.status)) {
      const finished = job.finishedAt ? new Date(job.finishedAt) : now();
      item.expiresAt = epoch(finished) + finishedTtl;
    }
    return item;
  }

  function fromItem(item: Item): Job {
    return jobSchema.parse(item);
  }

  /** Read-modify-write with optimistic concurrency: single-item conditional puts only. */
  async function update(
    key: JobKey,
    change: (current: Job | undefined) => Job | undefined,
    prefetched?: { item: Item | undefined },
  ): Promise<{ job: Job | undefined; written: boolean }> {
    let item = prefetched?.item;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      if (attempt > 1 || prefetched === undefined) {
        const got = await client.send(
          new GetCommand({ TableName: tableName, Key: { pk: jobPk(key), sk: "JOB" }, ConsistentRead: true }),
        );
        item = got.Item;
      }
      const current = item ? fromItem(item) : undefined;
      const next = change(current);
      if (next === undefined || (current !== undefined && sameJob(current, next))) {
        return { job: current, written: false };
      }
      const version = typeof item?.version === "number" ? item.version : 0;
      try {
        await client.send(
          new PutCommand({
            TableName: tableName,
            Item: toItem(next, version + 1),
            ...(item
              ? { ConditionExpression: "version = :v", ExpressionAttributeValues: { ":v": version } }
              : { ConditionExpression: "attribute_not_exists(pk)" }),
          }),
        );
        return { job: next, written: true };
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException) || attempt === MAX_ATTEMPTS) throw error;
      }
    }
    throw new Error("unreachable");
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

  return {
    async record(event, deliveryId) {
      const jobKey = { pk: jobPk(event), sk: "JOB" };
      const deliveryKey = { pk: deliveryPk(event.source, deliveryId), sk: "DELIVERY" };
      // One round trip for both reads: was this delivery applied, and what does the ledger hold?
      const got = await client.send(
        new BatchGetCommand({
          RequestItems: { [tableName]: { Keys: [deliveryKey, jobKey], ConsistentRead: true } },
        }),
      );
      let items = got.Responses?.[tableName] ?? [];
      if (got.UnprocessedKeys?.[tableName]) items = [];
      const delivery = items.find((item) => item.pk === deliveryKey.pk);
      const jobItem = items.find((item) => item.pk === jobKey.pk);
      if (delivery) return { outcome: "duplicate", job: jobItem ? fromItem(jobItem) : undefined };

      const { job, written } = await update(event, (current) => applyEvent(current, event), {
        item: jobItem,
      });
      // Recorded after the job: a crash in between only means a redelivery is applied again, and
      // applying an event twice is the same as once.
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: {
            ...deliveryKey,
            kind: "delivery",
            job: `${event.source}#${event.id}`,
            receivedAt: now().toISOString(),
            expiresAt: epoch(now()) + deliveryTtl,
          },
        }),
      );
      return { outcome: written ? "recorded" : "unchanged", job };
    },

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
        IndexName: "byLabels",
        KeyConditionExpression: "gsi1pk = :pk",
        ExpressionAttributeValues: { ":pk": `QUEUED#${setKey}` },
        ScanIndexForward: true,
      });
      return items.map(fromItem);
    },

    async queued() {
      // The index is sparse (queued jobs only), so a scan of it reads just the queue.
      const items: Item[] = [];
      let start: Item | undefined;
      do {
        const page = await client.send(
          new ScanCommand({ TableName: tableName, IndexName: "byLabels", ExclusiveStartKey: start }),
        );
        items.push(...(page.Items ?? []));
        start = page.LastEvaluatedKey;
      } while (start);
      return items
        .sort((a, b) => String(a.gsi1sk).localeCompare(String(b.gsi1sk)))
        .map(fromItem)
        .filter((job) => job.status === "queued");
    },

    async runningOn(instanceId) {
      const items = await queryAll({
        TableName: tableName,
        IndexName: "byInstance",
        KeyConditionExpression: "gsi2pk = :pk",
        ExpressionAttributeValues: { ":pk": `INSTANCE#${instanceId}` },
      });
      return items.map(fromItem);
    },
  };
}
