import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand, QueryCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { FleetObservation } from "../fleet";
import type { Demand, PoolDemand } from "../planner";
import { epochSeconds, type Store } from "../table";

/**
 * What the last ScaleFleet iteration of a pool decided. The webhook reads `spareSlots` to decide
 * whether a new queued job needs a ScaleFleet run at all.
 */
export interface PoolState {
  pool: string;
  at: string;
  desiredWarm: number;
  desiredBurst: number;
  warmPoolSize: number;
  queued: number;
  /** Slots of the desired capacity, less busy ones and the queue: what new jobs can still take. */
  spareSlots: number;
  reason: string;
}

export interface StoredForecast {
  at: string;
  demand: PoolDemand;
}

/** One minute of a pool, for the status page's chart. */
export interface Sample {
  /** The minute, ISO (`…:00.000Z`). */
  minute: string;
  queued: number;
  /** Job slots on instances in service (launching or ready). */
  capacity: number;
  busy: number;
}

/**
 * The whole queue as the last full read of it counted it (ScaleFleet's Observe, the minute tick):
 * what the status page shows when the queue is too long to count on every request.
 */
export interface QueueSnapshot {
  at: string;
  /** Per pool: queued jobs, and the oldest one's epoch milliseconds (null when none). */
  pools: Record<string, { count: number; oldestQueuedAt: number | null }>;
  unroutable: number;
  /** The label sets (`labelSetKey`) of jobs routed to a pool: where to page through the queue. */
  labelSets: string[];
}

/** At most this many label sets are kept; past it the status page pages through the first ones. */
export const SNAPSHOT_LABEL_SETS = 200;

const queueKey = { pk: "QUEUE", sk: "SNAPSHOT" };
const stateKey = (pool: string) => ({ pk: `POOL#${pool}`, sk: "STATE" });
const fleetKey = (pool: string) => ({ pk: `POOL#${pool}`, sk: "FLEET" });
const forecastKey = (pool: string) => ({ pk: `POOL#${pool}`, sk: "FORECAST" });

/**
 * The control plane's records per pool, beside the ledger and the registry: the last decision
 * (`PoolState`, with the spare slots webhooks take), the demand forecast, the fleet snapshot and the
 * per-minute samples the status page shows, and the whole queue's last count.
 */
export interface ScalingRecords {
  get(pool: string): Promise<PoolState | undefined>;
  put(state: PoolState): Promise<void>;
  /**
   * Takes one spare slot for a newly queued job, if there is one. True means the job is covered by
   * capacity that is ready or booting, and no ScaleFleet run is needed for it.
   */
  takeSpareSlot(pool: string): Promise<boolean>;
  forecast(pool: string): Promise<StoredForecast | undefined>;
  putForecast(demand: Demand, at: Date): Promise<void>;
  /** The fleet as the last observation saw it: the status page reads this, not the AWS APIs. */
  fleet(pool: string): Promise<(FleetObservation & { at: string }) | undefined>;
  putFleet(pool: string, observation: FleetObservation): Promise<void>;
  putSample(pool: string, sample: Sample): Promise<void>;
  queue(): Promise<QueueSnapshot | undefined>;
  putQueue(snapshot: QueueSnapshot): Promise<void>;
  /** Samples since `from`, oldest first. */
  samples(pool: string, from: Date): Promise<Sample[]>;
}

export function createScalingRecords(store: Store): ScalingRecords {
  const { client, tableName } = store;
  return {
    async get(pool) {
      const got = await client.send(new GetCommand({ TableName: tableName, Key: stateKey(pool) }));
      if (!got.Item) return undefined;
      // `spareSlots` lives at the top of the item, where webhooks decrement it.
      return { ...(got.Item.state as PoolState), spareSlots: Number(got.Item.spareSlots ?? 0) };
    },
    async put(state) {
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: { ...stateKey(state.pool), kind: "pool-state", state, spareSlots: state.spareSlots },
        }),
      );
    },
    async takeSpareSlot(pool) {
      try {
        await client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: stateKey(pool),
            UpdateExpression: "SET spareSlots = spareSlots - :one",
            ConditionExpression: "spareSlots >= :one",
            ExpressionAttributeValues: { ":one": 1 },
          }),
        );
        return true;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return false;
        throw error;
      }
    },
    async forecast(pool) {
      const got = await client.send(new GetCommand({ TableName: tableName, Key: forecastKey(pool) }));
      return got.Item?.forecast as StoredForecast | undefined;
    },
    async fleet(pool) {
      const got = await client.send(new GetCommand({ TableName: tableName, Key: fleetKey(pool) }));
      return got.Item?.fleet as (FleetObservation & { at: string }) | undefined;
    },
    async putFleet(pool, observation) {
      const fleet = { ...observation, at: store.now().toISOString() };
      await client.send(
        new PutCommand({ TableName: tableName, Item: { ...fleetKey(pool), kind: "fleet", fleet } }),
      );
    },
    async queue() {
      const got = await client.send(new GetCommand({ TableName: tableName, Key: queueKey }));
      return got.Item?.queue as QueueSnapshot | undefined;
    },
    async putQueue(queue) {
      await client.send(
        new PutCommand({ TableName: tableName, Item: { ...queueKey, kind: "queue", queue } }),
      );
    },
    async putSample(pool, sample) {
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: {
            pk: `SERIES#${pool}`,
            sk: sample.minute,
            kind: "sample",
            sample,
            expiresAt: epochSeconds(new Date(sample.minute)) + 2 * 3600,
          },
        }),
      );
    },
    async samples(pool, from) {
      const page = await client.send(
        new QueryCommand({
          TableName: tableName,
          KeyConditionExpression: "pk = :pk AND sk >= :from",
          ExpressionAttributeValues: { ":pk": `SERIES#${pool}`, ":from": from.toISOString() },
        }),
      );
      return (page.Items ?? []).map((item) => item.sample as Sample);
    },
    async putForecast(demand, at) {
      for (const [pool, poolDemand] of Object.entries(demand)) {
        const forecast: StoredForecast = { at: at.toISOString(), demand: poolDemand };
        await client.send(
          new PutCommand({
            TableName: tableName,
            Item: { ...forecastKey(pool), kind: "forecast", forecast },
          }),
        );
      }
    },
  };
}
