import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { readSettings } from "@hearth/core/config";
import { createLedger } from "@hearth/core/ledger";
import { handle } from "hono/aws-lambda";
import { createApp } from "../app";
import { createLogger } from "../log";

/**
 * The webhook Lambda behind API Gateway. It records and answers; it does no slow work, because a
 * Lambda is frozen once it answers. GitLab tag lookups happen in the ScaleFleet workflow instead.
 */
const settings = readSettings(process.env);
const tableName = process.env.HEARTH_TABLE_NAME;
if (!tableName) throw new Error("HEARTH_TABLE_NAME is not set");

const documents = DynamoDBDocumentClient.from(new DynamoDBClient({}), {
  marshallOptions: { removeUndefinedValues: true },
});

const app = createApp({
  ledger: createLedger({ client: documents, tableName }),
  log: createLogger(),
  github: { secret: settings.GITHUB_WEBHOOK_SECRET },
  gitlab: {
    token: settings.GITLAB_WEBHOOK_TOKEN,
    signingToken: settings.GITLAB_SIGNING_TOKEN,
    api: undefined,
  },
  background: () => {},
});

export const handler = handle(app);
