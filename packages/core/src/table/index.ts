import {
  ConditionalCheckFailedException,
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";

import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";

/**
 * Hearth's single DynamoDB table, as plain data: local mode creates it from this, infra declares the
 * same. Every item type, its keys and the sparse indexes it appears in:
 *
 * | item          | pk                     | sk              | gsi1 (pk / sk)                        | gsi2 (pk / sk)            |
 * |---------------|------------------------|-----------------|---------------------------------------|---------------------------|
 * | job           | `JOB#<source>#<id>`    | `JOB`           | `QUEUED#<labels>` / `<queuedAt>#<key>` while queued | `INSTANCE#<id>` / `<key>` while running |
 *
 * Jobs are also in gsi3 (`ARRIVED#<yyyy-mm-dd>` / `<queuedAt>#<key>`), by the day they were queued:
 * the demand forecast reads the last week of arrivals from it.
 *
 * | instance      | `INSTANCE#<id>`        | `INSTANCE`      | `INSTANCES#<pool>` / `<id>`           | –                         |
 * | journal entry | `JOURNAL#<yyyy-mm-dd>` | `<time>#<id>`   | –                                     | –                         |
 * | journaled once| `JOURNALONCE#<key>`    | `ONCE`          | –                                     | –                         |
 * | lease         | `LEASE#<name>`         | `LEASE`         | –                                     | –                         |
 * | pool state    | `POOL#<name>`          | `STATE`         | –                                     | –                         |
 * | series sample | `SERIES#<pool>`        | `<minute>`      | –                                     | –                         |
 * | slot runner   | `RUNNERS#<instance>`   | `SLOT#<nn>`     | `RUNNERS-IN#<pool>` / `<instance>#<nn>` | –                       |
 * | runner removal| `RUNNER-REMOVALS`      | `<forge>#<id>`  | –                                     | –                         |
 * | retry claim   | `RETRY#gitlab#<job>`   | `RETRY`         | –                                     | –                         |
 * | re-run        | `RERUN#github#<repo>#<run>#<attempt>` | `RUN`, `JOB#<id>` | –                      | –                         |
 * | retry hold    | `HOLD#<pool>`          | `JOB#<source>#<job>`, `POOL` | –                        | –                         |
 * | sweep mark    | `SWEEP`                | `MARK#<subject>`| –                                     | –                         |
 * | poll state    | `RECONCILE#<forge>`    | `STATE`         | –                                     | –                         |
 * | poll report   | `RECONCILE#poll`       | `REPORT`        | –                                     | –                         |
 * | finished key  | `CACHED#<pool>`        | `<cache key>`   | –                                     | –                         |
 *
 * `expiresAt` (epoch seconds) is the TTL attribute: finished jobs, journal entries (and the marks of
 * reports journaled once), samples, gone instances and sweep marks no sweep has seen for a day expire,
 * and a pool's finished keys once the binary cache's window has passed.
 * The sweep reads gsi2 whole (a scan of the sparse index of jobs running on instances).
 */
export const table = {
  partitionKey: "pk",
  sortKey: "sk",
  ttlAttribute: "expiresAt",
  indexes: {
    gsi1: { partitionKey: "gsi1pk", sortKey: "gsi1sk" },
    gsi2: { partitionKey: "gsi2pk", sortKey: "gsi2sk" },
    gsi3: { partitionKey: "gsi3pk", sortKey: "gsi3sk" },
  },
} as const;

/** What every store module needs: the client, the table, and a clock. */
export interface Store {
  client: DynamoDBDocumentClient;
  tableName: string;
  now: () => Date;
}

export const epochSeconds = (date: Date): number => Math.floor(date.getTime() / 1000);

/** Runs a conditional write: false when its condition failed (another writer was first), else true. */
export async function conditionalWrite(write: () => Promise<unknown>): Promise<boolean> {
  try {
    await write();
    return true;
  } catch (error) {
    if (error instanceof ConditionalCheckFailedException) return false;
    throw error;
  }
}

export function createTableInput(tableName: string): CreateTableCommandInput {
  const { indexes } = table;
  const attributes = ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk"];
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    KeySchema: [
      { AttributeName: table.partitionKey, KeyType: "HASH" },
      { AttributeName: table.sortKey, KeyType: "RANGE" },
    ],
    AttributeDefinitions: attributes.map((name) => ({ AttributeName: name, AttributeType: "S" })),
    GlobalSecondaryIndexes: Object.entries(indexes).map(([name, index]) => ({
      IndexName: name,
      KeySchema: [
        { AttributeName: index.partitionKey, KeyType: "HASH" },
        { AttributeName: index.sortKey, KeyType: "RANGE" },
      ],
      Projection: { ProjectionType: "ALL" },
    })),
  };
}

/**
 * Creates the table if it is missing (local mode and tests; infra owns it in AWS) and waits until
 * it is active. TTL is enabled where the backend supports it (DynamoDB Local does, dynalite does not).
 */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new CreateTableCommand(createTableInput(tableName)));
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  for (let i = 0; i < 200; i++) {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: tableName }));
    const indexesActive = (Table?.GlobalSecondaryIndexes ?? []).every(
      (index) => index.IndexStatus === "ACTIVE",
    );
    if (Table?.TableStatus === "ACTIVE" && indexesActive) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  try {
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: table.ttlAttribute, Enabled: true },
      }),
    );
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    // Already enabled, or a backend without TTL.
    if (!["ValidationException", "UnknownOperationException"].includes(name)) throw error;
  }
}
