import { parseArgs } from "node:util";
import { ConfigError, readSettings } from "@hearth/core/config";
import { createLogger } from "../log";
import { startLocal } from "./server";

const usage = `Usage: npm start -- [--port N] [--host ADDR] [--data DIR]

Runs Hearth in one process with an embedded DynamoDB.
  --port N     port for the HTTP server (default: $PORT or 3000)
  --host ADDR  address to listen on (default 127.0.0.1)
  --data DIR   keep the embedded DynamoDB in DIR (default: in memory)`;

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      data: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const port = Number(values.port ?? process.env.PORT ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new ConfigError(`--port: not a port: ${port}`);

  const log = createLogger();
  const hearth = await startLocal({
    port,
    host: values.host,
    dataDir: values.data,
    settings: readSettings(process.env),
    log,
  });

  const lines = [
    `Hearth is running at ${hearth.url}`,
    `  GitHub webhook: POST ${hearth.url}/webhooks/github`,
    `  GitLab webhook: POST ${hearth.url}/webhooks/gitlab`,
    `  DynamoDB: embedded, ${values.data ? `kept in ${values.data}` : "in memory"}`,
  ];
  if (hearth.generated.length) {
    lines.push("", "No secret was configured for these, so Hearth made them for this run:");
    if (hearth.generated.includes("GITHUB_WEBHOOK_SECRET")) {
      lines.push(`  GITHUB_WEBHOOK_SECRET=${hearth.secrets.githubWebhookSecret}`);
    }
    if (hearth.generated.includes("GITLAB_WEBHOOK_TOKEN")) {
      lines.push(`  GITLAB_WEBHOOK_TOKEN=${hearth.secrets.gitlabWebhookToken}`);
    }
  }
  lines.push(
    "",
    "Try it:",
    `  curl -s -X POST ${hearth.url}/webhooks/gitlab -H 'X-Gitlab-Event: Job Hook' \\`,
    `    -H 'X-Gitlab-Token: ${hearth.secrets.gitlabWebhookToken}' -H 'Content-Type: application/json' \\`,
    `    -d '{"object_kind":"build","build_id":1,"build_name":"test","build_status":"pending","pipeline_id":1,"project_id":1}'`,
    "",
  );
  process.stderr.write(`${lines.join("\n")}\n`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("stopping", { signal });
    await hearth.close();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((error) => {
  const message =
    error instanceof ConfigError ? error.message : error instanceof Error ? error.stack : String(error);
  process.stderr.write(`hearth: ${message}\n`);
  process.exit(1);
});
