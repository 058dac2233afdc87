import { randomUUID } from "node:crypto";
import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { PutCommand, QueryCommand } from "@aws-sdk/lib-dynamodb";
import { epochSeconds, type Store } from "../table";
import type { JournalKind } from "./kinds";

/**
 * The fleet journal: every scaling decision (with its plan, reason and the API calls made), every
 * spot interruption notice and failure, and the reconciliation sweep's marks, actions, clears and
 * refusals (`sweep`, each with its reason code). The status page shows its latest entries; operators
 * read it to learn why the fleet did what it did.
 */

export { type JournalKind, journalKinds } from "./kinds";

export type Detail = string | number | boolean | null;

export interface JournalEntry {
  time: string;
  pool: string | null;
  kind: JournalKind;
  reason: string;
  details: Record<string, Detail>;
  /** The API calls a decision made, as `Api(param=value, …)` lines. */
  calls: string[];
}

const RETENTION_DAYS = 7;
const day = (date: Date) => date.toISOString().slice(0, 10);

export interface Journal {
  /**
   * Writes an entry. With `once`, a key naming the fact the entry records, the entry is written only
   * the first time that key is seen (within the journal's retention), and a repeat returns null: a
   * report the sender may repeat (a heartbeat whose answer was lost) is journaled once.
   */
  write(
    entry: Omit<JournalEntry, "time" | "details" | "calls"> & Partial<JournalEntry> & { once?: string },
  ): Promise<JournalEntry | null>;
  /** The latest entries, newest first, from the last two days. */
  latest(limit: number): Promise<JournalEntry[]>;
}

export function createJournal(store: Store): Journal {
  const { client, tableName, now } = store;
  return {
    async write(input) {
      const entry: JournalEntry = {
        time: input.time ?? now().toISOString(),
        pool: input.pool,
        kind: input.kind,
        reason: input.reason,
        details: input.details ?? {},
        calls: input.calls ?? [],
      };
      const at = new Date(entry.time);
      if (input.once !== undefined) {
        try {
          await client.send(
            new PutCommand({
              TableName: tableName,
              Item: {
                pk: `JOURNALONCE#${input.once}`,
                sk: "ONCE",
                kind: "journal-once",
                expiresAt: epochSeconds(at) + RETENTION_DAYS * 86_400,
              },
              ConditionExpression: "attribute_not_exists(pk)",
            }),
          );
        } catch (error) {
          if (error instanceof ConditionalCheckFailedException) return null;
          throw error;
        }
      }
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: {
            pk: `JOURNAL#${day(at)}`,
            sk: `${entry.time}#${randomUUID().slice(0, 8)}`,
            kind: "journal",
            entry,
            expiresAt: epochSeconds(at) + RETENTION_DAYS * 86_400,
          },
        }),
      );
      return entry;
    },

    async latest(limit) {
      const today = now();
      const entries: JournalEntry[] = [];
      for (const date of [today, new Date(today.getTime() - 86_400_000)]) {
        if (entries.length >= limit) break;
        const page = await client.send(
          new QueryCommand({
            TableName: tableName,
            KeyConditionExpression: "pk = :pk",
            ExpressionAttributeValues: { ":pk": `JOURNAL#${day(date)}` },
            ScanIndexForward: false,
            Limit: limit - entries.length,
          }),
        );
        entries.push(...(page.Items ?? []).map((item) => item.entry as JournalEntry));
      }
      return entries;
    },
  };
}
