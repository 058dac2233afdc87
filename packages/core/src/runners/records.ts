import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { DeleteCommand, GetCommand, PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import type { RunnerScope } from "../github-api";
import type { JobKey } from "../jobs";
import { epochSeconds, type Store } from "../table";
import type { SlotRunnerState } from "./vocabulary";

/**
 * What Hearth recorded of the runners it registered: the current GitHub runner of each job slot, and
 * the runners and managers it still has to delete. Runners are deleted by these recorded ids; only
 * the sweep lists a forge's runners, for those no record holds any more (`sweep/`). Nothing here is a
 * secret: a JIT config lives only in the parameter whose path a record names.
 */

/** The current GitHub runner of one slot of one instance. */
export interface SlotRunner {
  instanceId: string;
  slot: number;
  pool: string;
  /** `hearth-<instance>-<slot>`. */
  name: string;
  scope: RunnerScope;
  /** Null only while the mint is under way (the id is recorded before the config is handed over). */
  runnerId: number | null;
  state: SlotRunnerState;
  /** Where the config was handed over; null once the instance has picked it up (it is then deleted). */
  parameter: string | null;
  job: JobKey | null;
  /** When the record entered its state. */
  since: string;
}

/** A runner or runner manager to delete, kept until a deletion succeeds (a busy runner waits). */
export type Removal =
  | {
      forge: "github";
      runnerId: number;
      name: string;
      scope: RunnerScope;
      instanceId: string;
      pool: string;
      attempts: number;
      retryAt: string;
      lastError: string | null;
    }
  | {
      forge: "gitlab";
      systemId: string;
      instanceId: string;
      pool: string;
      attempts: number;
      retryAt: string;
      lastError: string | null;
    };

export const removalKey = (removal: Pick<Removal, "forge"> & Partial<Removal>): string =>
  removal.forge === "github"
    ? `github#${(removal as { runnerId: number }).runnerId}`
    : `gitlab#${(removal as { pool: string }).pool}#${(removal as { systemId: string }).systemId}`;

/** A removal left undone this long goes to the sweep (the record expires; the forge still has it). */
const REMOVAL_KEEP_DAYS = 7;
/** A mint that has not recorded its runner after this long was cut short: its slot may be taken again. */
export const MINTING_STALE_MS = 2 * 60_000;

const slotKey = (instanceId: string, slot: number) => ({
  pk: `RUNNERS#${instanceId}`,
  sk: `SLOT#${String(slot).padStart(2, "0")}`,
});
const slotIndex = (runner: Pick<SlotRunner, "pool" | "instanceId" | "slot">) => ({
  gsi1pk: `RUNNERS-IN#${runner.pool}`,
  gsi1sk: `${runner.instanceId}#${String(runner.slot).padStart(2, "0")}`,
});
const removalItemKey = (key: string) => ({ pk: "RUNNER-REMOVALS", sk: key });

const SLOT_FIELDS = [
  "instanceId",
  "slot",
  "pool",
  "name",
  "scope",
  "runnerId",
  "state",
  "parameter",
  "job",
  "since",
] as const;

function slotFromItem(item: Record<string, unknown>): SlotRunner {
  return Object.fromEntries(
    SLOT_FIELDS.map((field) => [field, item[field] ?? null]),
  ) as unknown as SlotRunner;
}

function removalFromItem(item: Record<string, unknown>): Removal {
  const { pk: _pk, sk: _sk, kind: _kind, expiresAt: _expires, ...rest } = item;
  return rest as unknown as Removal;
}

export interface RunnerRecords {
  /** The slots' current runners of an instance, by slot. */
  ofInstance(instanceId: string): Promise<SlotRunner[]>;
  /** The slots' current runners of a pool's instances (one index query: the status page's read). */
  inPool(pool: string): Promise<SlotRunner[]>;
  /**
   * Takes a free slot for a mint: true if this caller may mint (no current runner, or a mint cut
   * short). Two heartbeats at once never mint two runners for one slot.
   */
  claim(runner: Omit<SlotRunner, "runnerId" | "state" | "parameter" | "job" | "since">): Promise<boolean>;
  /** Writes a slot's runner as it now is (after a mint, a hand-over, or what the agent reported). */
  put(runner: SlotRunner): Promise<void>;
  /** Clears a slot, only if it still holds `runnerId` (null: the mint that never recorded one). */
  clear(instanceId: string, slot: number, runnerId: number | null): Promise<void>;
  /** A pool's removals whose time has come, oldest first. */
  dueRemovals(pool: string, limit: number): Promise<Removal[]>;
  /** Every removal still owed (the status page shows them by instance). */
  removals(): Promise<Removal[]>;
  putRemoval(removal: Removal): Promise<void>;
  deleteRemoval(removal: Removal): Promise<void>;
}

export function createRunnerRecords(store: Store): RunnerRecords {
  const { client, tableName, now } = store;

  async function queryAll(pk: string, index?: "gsi1"): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await client.send(
        new QueryCommand({
          TableName: tableName,
          ...(index
            ? { IndexName: index, KeyConditionExpression: "gsi1pk = :pk" }
            : { KeyConditionExpression: "pk = :pk", ConsistentRead: true }),
          ExpressionAttributeValues: { ":pk": pk },
          ExclusiveStartKey: start,
        }),
      );
      items.push(...(page.Items ?? []));
      start = page.LastEvaluatedKey;
    } while (start);
    return items;
  }

  return {
    async ofInstance(instanceId) {
      return (await queryAll(`RUNNERS#${instanceId}`)).map(slotFromItem);
    },

    async inPool(pool) {
      return (await queryAll(`RUNNERS-IN#${pool}`, "gsi1")).map(slotFromItem);
    },

    async claim(runner) {
      const at = now();
      try {
        await client.send(
          new PutCommand({
            TableName: tableName,
            Item: {
              ...slotKey(runner.instanceId, runner.slot),
              ...slotIndex(runner),
              kind: "slot-runner",
              ...runner,
              runnerId: null,
              state: "minting",
              parameter: null,
              job: null,
              since: at.toISOString(),
            },
            ConditionExpression:
              "attribute_not_exists(pk) OR (#state = :minting AND attribute_type(runnerId, :null) AND #since < :stale)",
            ExpressionAttributeNames: { "#state": "state", "#since": "since" },
            ExpressionAttributeValues: {
              ":minting": "minting",
              ":null": "NULL",
              ":stale": new Date(at.getTime() - MINTING_STALE_MS).toISOString(),
            },
          }),
        );
        return true;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return false;
        throw error;
      }
    },

    async put(runner) {
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: {
            ...slotKey(runner.instanceId, runner.slot),
            ...slotIndex(runner),
            kind: "slot-runner",
            ...runner,
          },
        }),
      );
    },

    async clear(instanceId, slot, runnerId) {
      try {
        await client.send(
          new DeleteCommand({
            TableName: tableName,
            Key: slotKey(instanceId, slot),
            ConditionExpression:
              runnerId === null ? "attribute_type(runnerId, :null)" : "runnerId = :runnerId",
            ExpressionAttributeValues: runnerId === null ? { ":null": "NULL" } : { ":runnerId": runnerId },
          }),
        );
      } catch (error) {
        // The slot already holds another runner (or none): nothing of this one is left to clear.
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    },

    async dueRemovals(pool, limit) {
      const at = now().toISOString();
      return (await queryAll("RUNNER-REMOVALS"))
        .map(removalFromItem)
        .filter((removal) => removal.pool === pool && removal.retryAt <= at)
        .sort((a, b) => (a.retryAt < b.retryAt ? -1 : 1))
        .slice(0, limit);
    },

    async removals() {
      return (await queryAll("RUNNER-REMOVALS")).map(removalFromItem);
    },

    async putRemoval(removal) {
      const got = await client.send(
        new GetCommand({
          TableName: tableName,
          Key: removalItemKey(removalKey(removal)),
          ConsistentRead: true,
        }),
      );
      const expiresAt =
        (got.Item?.expiresAt as number | undefined) ?? epochSeconds(now()) + REMOVAL_KEEP_DAYS * 86_400;
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: { ...removalItemKey(removalKey(removal)), kind: "runner-removal", ...removal, expiresAt },
        }),
      );
    },

    async deleteRemoval(removal) {
      await client.send(
        new DeleteCommand({ TableName: tableName, Key: removalItemKey(removalKey(removal)) }),
      );
    },
  };
}
