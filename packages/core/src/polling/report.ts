import { GetCommand, PutCommand } from "@aws-sdk/lib-dynamodb";
import type { Store } from "../table";
import type { PollReport } from "./run";

/**
 * The last poll's report (`RECONCILE#poll` / `REPORT`), for the status page: when it ran, its calls,
 * each token's budget left, what it found and which listings were unknown (the first of them, and
 * how many in all). Each poll overwrites it.
 */

export interface StoredPollReport extends PollReport {
  /** Unknown listings in all; `unknown` keeps the first of them. */
  unknownCount: number;
}

const reportKey = { pk: "RECONCILE#poll", sk: "REPORT" };

export async function savePollReport(store: Store, report: PollReport, unknownCount: number): Promise<void> {
  await store.client.send(
    new PutCommand({
      TableName: store.tableName,
      Item: { ...reportKey, kind: "poll-report", report: { ...report, unknownCount } },
    }),
  );
}

export async function loadPollReport(store: Store): Promise<StoredPollReport | undefined> {
  const { Item } = await store.client.send(new GetCommand({ TableName: store.tableName, Key: reportKey }));
  return Item?.report as StoredPollReport | undefined;
}
