import { randomUUID } from "node:crypto";
import { ScanCommand } from "@aws-sdk/lib-dynamodb";
import type { GitLabJobs } from "@hearth/core/gitlab-api";
import { createInstanceRegistry } from "@hearth/core/instances";
import { createJournal } from "@hearth/core/journal";
import { createLeases } from "@hearth/core/leases";
import { createLedger, type Ledger } from "@hearth/core/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import { defaultPools } from "@hearth/core/pools";
import {
  createRetryRecords,
  type RetryDeps,
  type RetryForges,
  retryAfterJobRecorded,
  retryAfterRunCompleted,
} from "@hearth/core/retries";
import { createScalingRecords } from "@hearth/core/scaling";
import { afterJobRecorded } from "@hearth/core/scaling/after-recorded";
import { signGitLabBody } from "@hearth/core/sources/gitlab";
import { ensureTable } from "@hearth/core/table";
import { Webhooks } from "@octokit/webhooks";
import { createApp } from "../../src/app";
import { silentLogger } from "../../src/log";

export const GITHUB_SECRET = "github-test-secret";
export const GITLAB_TOKEN = "gitlab-test-token";
export const GITLAB_SIGNING = `whsec_${Buffer.from("hearth-test-signing-key-32-bytes").toString("base64")}`;

export interface Harness {
  app: ReturnType<typeof createApp>;
  ledger: Ledger;
  /** Every item in the table: to prove that a request wrote nothing. */
  items(): Promise<Record<string, unknown>[]>;
  /** Waits for the work the app deferred (tag lookups). */
  settle(): Promise<void>;
  /** The ScaleFleet runs the recorded jobs started, by pool (the runs themselves are not run here). */
  started: string[];
  /** Retries' dependencies, when the harness was given forges to retry with. */
  retries: RetryDeps | undefined;
}

let dynamo: EmbeddedDynamo | undefined;

/** One embedded DynamoDB per test file; a fresh table per harness. */
export async function embeddedDynamo(): Promise<EmbeddedDynamo> {
  dynamo ??= await startEmbeddedDynamo();
  return dynamo;
}

export async function stopEmbeddedDynamo(): Promise<void> {
  await dynamo?.close();
  dynamo = undefined;
}

export async function createHarness(
  options: {
    signingToken?: string;
    gitlabApi?: GitLabJobs;
    now?: () => Date;
    retryForges?: RetryForges;
  } = {},
): Promise<Harness> {
  const { endpoint } = await embeddedDynamo();
  const { client, documents } = localDynamoClients(endpoint);
  const tableName = `hearth-${randomUUID()}`;
  await ensureTable(client, tableName);
  const ledger = createLedger({ client: documents, tableName, now: options.now });
  const store = { client: documents, tableName, now: options.now ?? (() => new Date()) };
  const pending = new Set<Promise<void>>();
  const started: string[] = [];
  const scaling = {
    pools: defaultPools,
    ledger,
    leases: createLeases(store),
    scalingRecords: createScalingRecords(store),
    gitlab: options.gitlabApi,
    startScaleFleet: async (pool: string) => {
      started.push(pool);
    },
    holder: () => randomUUID(),
  };
  const retries: RetryDeps | undefined = options.retryForges && {
    ledger,
    registry: createInstanceRegistry(store),
    journal: createJournal(store),
    records: createRetryRecords(store),
    pools: defaultPools,
    forges: options.retryForges,
    now: store.now,
  };
  const app = createApp({
    ledger,
    log: silentLogger,
    now: options.now,
    github: { secret: GITHUB_SECRET },
    gitlab: { token: GITLAB_TOKEN, signingToken: options.signingToken },
    background: (task) => {
      const run = task().finally(() => pending.delete(run));
      pending.add(run);
    },
    // With a GitLab API, a recorded job's tags are looked up and its pool asked for capacity.
    afterJobRecorded: options.gitlabApi
      ? async (job) => {
          await afterJobRecorded(scaling, job);
        }
      : undefined,
    retries: retries && {
      afterJobRecorded: (job) => retryAfterJobRecorded(retries, job),
      afterRunCompleted: (run) => retryAfterRunCompleted(retries, run),
    },
  });
  return {
    app,
    ledger,
    started,
    retries,
    async items() {
      const out = await documents.send(new ScanCommand({ TableName: tableName, ConsistentRead: true }));
      return out.Items ?? [];
    },
    async settle() {
      while (pending.size) await Promise.allSettled([...pending]);
    },
  };
}

const githubSigner = new Webhooks({ secret: GITHUB_SECRET });

/** A request as GitHub sends it: signed body, event and delivery headers. */
export async function githubRequest(
  event: string,
  payload: unknown,
  options: { delivery?: string; secret?: string } = {},
): Promise<Request> {
  const body = JSON.stringify(payload);
  const signer = options.secret ? new Webhooks({ secret: options.secret }) : githubSigner;
  return new Request("http://hearth.test/webhooks/github", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": event,
      "x-github-delivery": options.delivery ?? randomUUID(),
      "x-hub-signature-256": await signer.sign(body),
      "user-agent": "GitHub-Hookshot/test",
    },
    body,
  });
}

/** A request as GitLab sends it: token, event, idempotency key, and (optionally) a signature. */
export function gitlabRequest(
  payload: unknown,
  options: {
    token?: string;
    signingToken?: string;
    idempotencyKey?: string;
    event?: string;
    timestamp?: number;
  } = {},
): Request {
  const body = JSON.stringify(payload);
  const id = options.idempotencyKey ?? randomUUID();
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-gitlab-event": options.event ?? "Job Hook",
    "x-gitlab-token": options.token ?? GITLAB_TOKEN,
    "idempotency-key": id,
    "x-gitlab-event-uuid": randomUUID(),
    "x-gitlab-webhook-uuid": randomUUID(),
  };
  if (options.signingToken) {
    const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000);
    headers["webhook-id"] = id;
    headers["webhook-timestamp"] = String(timestamp);
    headers["webhook-signature"] = signGitLabBody(id, timestamp, body, options.signingToken);
  }
  return new Request("http://hearth.test/webhooks/gitlab", { method: "POST", headers, body });
}
