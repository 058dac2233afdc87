import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import type { Demand, PoolDemand } from "../planner";
import type { Store } from "../table";

/**
 * Per pool, what the last ScaleFleet iteration saw and decided, and the demand forecast. The webhook
 * reads `spareSlots` to decide whether a new queued job needs a ScaleFleet run at all.
 */
export interface PoolState {
  pool: string;
  at: string;
  desiredWarm: number;
  desiredBurst: number;
  warmPoolSize: number;
  queued: number;
  /** Free slots on ready or booting instances, less the queue: what new jobs can still take. */
  spareSlots: number;
  reason: string;
}

export interface StoredForecast {
  at: string;
  demand: PoolDemand;
}

const stateKey = (pool: string) => ({ pk: `POOL#${pool}`, sk: "STATE" });
const forecastKey = (pool: string) => ({ pk: `POOL#${pool}`, sk: "FORECAST" });

export interface PoolStates {
  get(pool: string): Promise<PoolState | undefined>;
  put(state: PoolState): Promise<void>;
  /**
   * Takes one spare slot for a newly queued job, if there is one. True means the job is covered by
   * capacity that is ready or booting, and no ScaleFleet run is needed for it.
   */
  takeSpareSlot(pool: string): Promise<boolean>;
  forecast(pool: string): Promise<StoredForecast | undefined>;
  putForecast(demand: Demand, at: Date): Promise<void>;
}

export function createPoolStates(store: Store): PoolStates {
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
