import { DeleteCommand, GetCommand, PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { epochSeconds, type Store } from "../table";
import type { SweepAction } from ".";

/**
 * The sweep's marks: what one sweep found and a later sweep acts on, after a fresh read. One item per
 * subject (pk `SWEEP`, sk `MARK#<subject>`), so a thing is marked once however many sweeps see it; a
 * mark no sweep has seen again for a day expires.
 */

export interface SweepMark extends SweepAction {
  /** The sweep that first marked it. */
  sweepId: string;
  /** The latest sweep that found it still qualifying. */
  seenAt: string;
}

export interface SweepMarks {
  /** Every mark, in subject order. */
  all(): Promise<SweepMark[]>;
  /** One mark, by its subject. */
  get(subject: string): Promise<SweepMark | undefined>;
  /** Writes a mark (a new one, or one seen again). */
  put(mark: SweepMark): Promise<void>;
  /** Forgets a mark (acted on, or no longer qualifying). Forgetting one that is gone is fine. */
  clear(subject: string): Promise<void>;
}

const MARK_KEEP_SECONDS = 86_400;

export function createSweepMarks(store: Store): SweepMarks {
  const { client, tableName, now } = store;
  return {
    async all() {
      const marks: SweepMark[] = [];
      let start: Record<string, unknown> | undefined;
      do {
        const page = await client.send(
          new QueryCommand({
            TableName: tableName,
            KeyConditionExpression: "pk = :pk AND begins_with(sk, :mark)",
            ExpressionAttributeValues: { ":pk": "SWEEP", ":mark": "MARK#" },
            ConsistentRead: true,
            ExclusiveStartKey: start,
          }),
        );
        for (const item of page.Items ?? []) marks.push(item.mark as SweepMark);
        start = page.LastEvaluatedKey;
      } while (start);
      return marks;
    },

    async get(subject) {
      const got = await client.send(
        new GetCommand({
          TableName: tableName,
          Key: { pk: "SWEEP", sk: `MARK#${subject}` },
          ConsistentRead: true,
        }),
      );
      return got.Item?.mark as SweepMark | undefined;
    },

    async put(mark) {
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: {
            pk: "SWEEP",
            sk: `MARK#${mark.subject}`,
            kind: "sweep-mark",
            mark,
            expiresAt: epochSeconds(now()) + MARK_KEEP_SECONDS,
          },
        }),
      );
    },

    async clear(subject) {
      await client.send(
        new DeleteCommand({ TableName: tableName, Key: { pk: "SWEEP", sk: `MARK#${subject}` } }),
      );
    },
  };
}
