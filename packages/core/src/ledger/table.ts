import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";

/**
 * The single table's shape, as plain data: local mode creates it from this, infra declares the same.
 *
 * | item | pk                  | sk    | byLabels (gsi1)                     | byInstance (gsi2)          |
 * |------|---------------------|-------|-------------------------------------|----------------------------|
 * | job  | `JOB#<source>#<id>` | `JOB` | `QUEUED#<labels>`, `<queuedAt>#<key>` | `INSTANCE#<id>`, `<key>` |
 *
 * The indexes are sparse: a job is in `byLabels` only while queued, and in `byInstance` only while
 * running on a known instance. `expiresAt` (epoch seconds) is the TTL attribute.
 */
export const ledgerTable = {
  partitionKey: "pk",
  sortKey: "sk",
  ttlAttribute: "expiresAt",
  indexes: {
    byLabels: { partitionKey: "gsi1pk", sortKey: "gsi1sk" },
    byInstance: { partitionKey: "gsi2pk", sortKey: "gsi2sk" },
  },
} as const;

export function createTableInput(tableName: string): CreateTableCommandInput {
  const { indexes } = ledgerTable;
  const attributes = ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"];
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST",
    KeySchema: [
      { AttributeName: ledgerTable.partitionKey, KeyType: "HASH" },
      { AttributeName: ledgerTable.sortKey, KeyType: "RANGE" },
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
export async function ensureLedgerTable(client: DynamoDBClient, tableName: string): Promise<void> {
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
        TimeToLiveSpecification: { AttributeName: ledgerTable.ttlAttribute, Enabled: true },
      }),
    );
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    // Already enabled, or a backend without TTL.
    if (!["ValidationException", "UnknownOperationException"].includes(name)) throw error;
  }
}
