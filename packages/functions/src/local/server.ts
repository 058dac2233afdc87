import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { Settings } from "@hearth/core/config";
import { createGitLabJobs } from "@hearth/core/gitlab-api";
import { createLedger, ensureLedgerTable, type Ledger } from "@hearth/core/ledger";
import { localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import { serve } from "@hono/node-server";
import { createApp } from "../app";
import type { Logger } from "../log";

export interface LocalOptions {
  port: number;
  host?: string;
  /** Keep the embedded DynamoDB in this folder instead of in memory. */
  dataDir?: string;
  settings: Settings;
  log: Logger;
}

export interface LocalHearth {
  url: string;
  ledger: Ledger;
  /** The secrets in effect, including ones generated because none was configured. */
  secrets: { githubWebhookSecret: string; gitlabWebhookToken: string };
  generated: string[];
  /** Resolves when background work started so far (tag lookups) has settled. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export const TABLE_NAME = "hearth";

/** Hearth in one process: the webhook app on a port, backed by an embedded DynamoDB. */
export async function startLocal(options: LocalOptions): Promise<LocalHearth> {
  const { settings, log } = options;
  const generated: string[] = [];
  const secret = (value: string | undefined, name: string) => {
    if (value) return value;
    generated.push(name);
    return randomBytes(24).toString("hex");
  };
  const githubWebhookSecret = secret(settings.GITHUB_WEBHOOK_SECRET, "GITHUB_WEBHOOK_SECRET");
  const gitlabWebhookToken = secret(settings.GITLAB_WEBHOOK_TOKEN, "GITLAB_WEBHOOK_TOKEN");

  const dynamo = await startEmbeddedDynamo({ path: options.dataDir });
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  await ensureLedgerTable(client, TABLE_NAME);
  const ledger = createLedger({ client: documents, tableName: TABLE_NAME });

  const pending = new Set<Promise<void>>();
  const app = createApp({
    ledger,
    log,
    github: { secret: githubWebhookSecret },
    gitlab: {
      token: gitlabWebhookToken,
      signingToken: settings.GITLAB_SIGNING_TOKEN,
      api:
        settings.GITLAB_URL && settings.GITLAB_API_TOKEN
          ? createGitLabJobs({ url: settings.GITLAB_URL, token: settings.GITLAB_API_TOKEN })
          : undefined,
    },
    background: (task) => {
      const run = task().finally(() => pending.delete(run));
      pending.add(run);
    },
  });

  const server = serve({ fetch: app.fetch, port: options.port, hostname: options.host ?? "127.0.0.1" });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) resolve();
    server.once("listening", () => resolve());
    server.once("error", reject);
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://${options.host && options.host !== "0.0.0.0" ? options.host : "127.0.0.1"}:${port}`,
    ledger,
    secrets: { githubWebhookSecret, gitlabWebhookToken },
    generated,
    idle: async () => {
      while (pending.size) await Promise.allSettled([...pending]);
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...pending]);
      client.destroy();
      await dynamo.close();
    },
  };
}
