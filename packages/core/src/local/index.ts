import { Worker } from "node:worker_threads";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";

export interface EmbeddedDynamo {
  endpoint: string;
  close(): Promise<void>;
}

/**
 * dynalite on a loopback port: the real DynamoDB wire protocol, in memory or in a LevelDB folder. It
 * runs on a worker thread, so that its work and the app's run on different cores.
 */
export async function startEmbeddedDynamo(
  options: { path?: string; port?: number } = {},
): Promise<EmbeddedDynamo> {
  const worker = new Worker(new URL("./dynalite-worker.mjs", import.meta.url), {
    workerData: { path: options.path, port: options.port ?? 0 },
  });
  const port = await new Promise<number>((resolve, reject) => {
    worker.once("message", (message: { port?: number; error?: string }) =>
      message.port ? resolve(message.port) : reject(new Error(`dynalite did not start: ${message.error}`)),
    );
    worker.once("error", reject);
  });
  // The process may exit while the worker still runs (a test runner, Ctrl-C).
  worker.unref();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async close() {
      // A request still under way when the process stops (an agent's last heartbeat) can hold
      // dynalite's close open; what it acknowledged is on disk already, so the worker goes anyway.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, CLOSE_WAIT_MS);
        worker.once("message", () => {
          clearTimeout(timer);
          resolve();
        });
        worker.postMessage("close");
      });
      await worker.terminate();
    },
  };
}

/** How long closing waits for dynalite to finish its requests before the worker is ended. */
const CLOSE_WAIT_MS = 2_000;

/** A client for a local endpoint; any credentials do. */
export function localDynamoClients(endpoint: string) {
  const client = new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 3,
  });
  const documents = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return { client, documents };
}
