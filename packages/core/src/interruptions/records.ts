import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { GetCommand, PutCommand, UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { epochSeconds, type Store } from "../table";
import { type NoticeKind, noticeStrength } from "./events";

/**
 * Each instance's strongest interruption notice so far (none < rebalance < warning), one item per
 * instance: `INTERRUPTION#<instance id>` / `INTERRUPTION`. A notice is acted on only by the
 * conditional write that raises it, so however many events arrive, in whatever order, each
 * strength is handled once. A spot warm store that its interruption stopped runs again later as a
 * new spot instance with the same id: a notice given after that stop starts over.
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
  /** When the interruption stopped it (a spot warm store): a later notice is for its next run. */
  stoppedAt: string | null;
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
  /** Notes that the interruption stopped the instance (store kept): a notice after `at` starts over. */
  stopped(instanceId: string, at: string): Promise<void>;
}

export function createInterruptionRecords(store: Store): InterruptionRecords {
  const { client, tableName, now } = store;
  const get = async (instanceId: string) => {
    const got = await client.send(
      new GetCommand({ TableName: tableName, Key: key(instanceId), ConsistentRead: true }),
    );
    if (!got.Item) return undefined;
    const { instanceId: id, notice: kind, strength, at, deadline, drainedAt, stoppedAt } = got.Item;
    return {
      instanceId: id,
      kind,
      strength,
      at,
      deadline,
      drainedAt: drainedAt ?? null,
      stoppedAt: stoppedAt ?? null,
    } as InterruptionRecord;
  };
  return {
    get,
    async raise(notice) {
      const strength = noticeStrength(notice.kind);
      const found = await get(notice.instanceId);
      // A notice given after the instance's stop is for its next run: the old claim does not count.
      const fresh = found?.stoppedAt != null && notice.at > found.stoppedAt;
      const before = fresh ? undefined : found;
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
            ConditionExpression: "attribute_not_exists(pk) OR strength < :s OR stoppedAt < :at",
            ExpressionAttributeValues: { ":s": strength, ":at": notice.at },
          }),
        );
        return { raised: true, previous: before?.kind ?? null };
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return { raised: false, previous: null };
        throw error;
      }
    },
    async stopped(instanceId, at) {
      await client
        .send(
          new UpdateCommand({
            TableName: tableName,
            Key: key(instanceId),
            UpdateExpression: "SET stoppedAt = :at",
            ConditionExpression: "attribute_exists(pk)",
            ExpressionAttributeValues: { ":at": at },
          }),
        )
        .catch((error) => {
          if (!(error instanceof ConditionalCheckFailedException)) throw error;
        });
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
