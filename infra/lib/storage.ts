import { table } from "../../packages/core/src/table";

/**
 * The single table as SST's `Dynamo` takes it, derived from the table definition local mode creates
 * (`table`, `createTableInput` in @hearth/core/table), so that both have the same keys and indexes.
 * Every key is a string; every index projects all attributes; `expiresAt` is the TTL attribute.
 */
export function dynamoArgs() {
  const keys = [
    table.partitionKey,
    table.sortKey,
    ...Object.values(table.indexes).flatMap((index) => [index.partitionKey, index.sortKey]),
  ];
  return {
    fields: Object.fromEntries(keys.map((key) => [key, "string" as const])),
    primaryIndex: { hashKey: table.partitionKey, rangeKey: table.sortKey },
    globalIndexes: Object.fromEntries(
      Object.entries(table.indexes).map(([name, index]) => [
        name,
        { hashKey: index.partitionKey, rangeKey: index.sortKey, projection: "all" as const },
      ]),
    ),
    ttl: table.ttlAttribute,
  };
}
