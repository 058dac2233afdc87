import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { epochSeconds, type Store } from "../table";
import { type NoticeKind, noticeStrength } from "./events";

/**
 * Each instance's strongest interruption notice so far (none < rebalance < warning), one item per
 * instance: `INTERRUPTION#<instance id>` / `INTERRUPTION`. A notice is acted on only by the
 * conditional write that raises it, so however many events arrive, in whatever order, each
 * strength is handled once.
 */

export interface InterruptionRecord {
  instanceId: string;
  kind: NoticeKind;
  strength: number;
  /** When the notice that set `kind` was given. */
  at: string;
  deadline: string | null;
  /** When HandleInterruption first drained the instance (null until then). */
  drainedAt: string | null;
}

/** A claim is kept a week: a late duplicate (EventBridge retries for up to a day) still finds it. */
const KEEP_DAYS = 7;
const key = (instanceId: string) => ({ pk: `INTERRUPTION#${instanceId}`, sk: "INTERRUPTION" });

export interface InterruptionRecords {
  get(instanceId: string): Promise<InterruptionRecord | undefined>;
  /**
   * Records `kind` if it is stronger than what the instance has: `raised` true for the one caller
   * that did, with the kind it replaced.
   */
  raise(notice: {
    instanceId: string;
    kind: NoticeKind;
    at: string;
    deadline: string | null;
  }): Promise<{ raised: boolean; previous: NoticeKind | null }>;
  /** Notes the first drain (later ones keep the first time). */
  drained(instanceId: string, at: string): Promise<void>;
}

export function createInterruptionRecords(store: Store): InterruptionRecords {
  const { client, tableName, now } = store;
  const get = async (instanceId: string) => {
    const got = await client.send(
      new GetCommand({ TableName: tableName, Key: key(instanceId), ConsistentRead: true }),
    );
    if (!got.Item) return undefined;
    const { instanceId: id, notice: kind, strength, at, deadline, drainedAt } = got.Item;
    return {
      instanceId: id,
      kind,
      strength,
      at,
      deadline,
      drainedAt: drainedAt ?? null,
    } as InterruptionRecord;
  };
  return {
    get,
    async raise(notice) {
      const strength = noticeStrength(notice.kind);
      const before = await get(notice.instanceId);
      if (before && before.strength >= strength) return { raised: false, previous: before.kind };
      try {
        await client.send(
          new PutCommand({
            TableName: tableName,
            Item: {
              ...key(notice.instanceId),
              kind: "interruption",
              instanceId: notice.instanceId,
              // `kind` is the item's type on every item of the table; the notice's is `notice`.
              notice: notice.kind,
              strength,
              at: notice.at,
              deadline: notice.deadline,
              drainedAt: before?.drainedAt ?? null,
              expiresAt: epochSeconds(now()) + KEEP_DAYS * 86_400,
            },
            ConditionExpression: "attribute_not_exists(pk) OR strength < :s",
            ExpressionAttributeValues: { ":s": strength },
          }),
        );
        return { raised: true, previous: before?.kind ?? null };
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return { raised: false, previous: null };
        throw error;
      }
    },
    async drained(instanceId, at) {
      try {
        await client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: key(instanceId),
            UpdateExpression: "SET drainedAt = :at",
            ConditionExpression:
              "attribute_exists(pk) AND (attribute_not_exists(drainedAt) OR drainedAt = :null)",
            ExpressionAttributeValues: { ":at": at, ":null": null },
          }),
        );
      } catch (error) {
        if (!(error instanceof ConditionalCheckFailedException)) throw error;
      }
    },
  };
}
