import { settings } from "./config";
import { dynamoArgs } from "./lib/storage";

const production = settings.stage === "production";

/**
 * The single DynamoDB table (on demand: an idle stage pays only for storage), with TTL on
 * `expiresAt` and the three indexes the ledger, the registry and the forecast read. Production keeps
 * 35 days of point-in-time recovery and cannot be deleted by accident.
 */
export const table = new sst.aws.Dynamo("Table", {
  ...dynamoArgs(),
  deletionProtection: production,
  transform: {
    table: (args) => {
      args.pointInTimeRecovery = { enabled: production };
      args.serverSideEncryption = { enabled: true };
    },
  },
});

/** The table's name for the functions (`Storage` link). Permissions are granted by infra/lib/iam.ts. */
export const storage = new sst.Linkable("Storage", { properties: { tableName: table.name } });
