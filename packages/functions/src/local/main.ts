import "./node-runtime";
import { parseArgs } from "node:util";
import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { EC2Client } from "@aws-sdk/client-ec2";
import { SSMClient } from "@aws-sdk/client-ssm";
import { ConfigError, loadHearthConfig, readSettings, stageSettings } from "@hearth/core/config";
import { groupNames, parameterPaths } from "@hearth/core/deploy";
import { createAwsFleet, fleetClientConfig } from "@hearth/core/fleet-aws";
import { namesStores, type PoolConfig } from "@hearth/core/pools";
import { identifyBySts } from "../agent/sts-identity";
import { createLogger } from "../log";
import { AwsFleetError, checkAwsFleet } from "./aws-check";
import { DataDirInUse } from "./data-lock";
import { isLoopback, openHostRefusal } from "./host";
import { writeLocalSecrets } from "./secrets-file";
import { PortInUse, startLocal } from "./server";

const usage = `Usage: npm start -- [--port N] [--host ADDR [--allow-open]] [--data DIR] [--config FILE] [--fleet sim|aws --stage NAME] [--webhook-loss R]

Runs Hearth in one process with an embedded DynamoDB.
  --port N       port for the HTTP server (default: $PORT or 3000)
  --host ADDR    address to listen on (default 127.0.0.1). Any other than loopback needs STATUS_TOKEN
                 set (the status API and the simulation then ask for it), or --allow-open
  --allow-open   serve a non-loopback --host without STATUS_TOKEN: anyone who can reach it reads the
                 status and drives the simulation
  --data DIR     keep the embedded DynamoDB and the simulated fleet in DIR (default: in memory); one
                 Hearth at a time per DIR
  --config FILE  the pool config (default: $HEARTH_CONFIG or hearth.config.json if present, else the
                 built-in x86_64 and aarch64 pools)
  --fleet aws    drive real Auto Scaling groups with the AWS SDK's default credentials, instead of the
                 simulated fleet: each pool's \`autoScalingGroups\` from the config, else stage NAME's
                 (hearth-NAME-<pool>-warm and -burst)
  --webhook-loss R  the simulated forges drop this share (0 to 1) of their webhooks at random,
                 recorded as failed deliveries (default 0); also PUT /sim/forge/webhook-loss`;

/** A pool's groups: named in the pool config, or the ones a stage's infra created. */
const groupsOf = (stage: string, pool: PoolConfig) => pool.autoScalingGroups ?? groupNames(stage, pool.name);

/** Single-host controller mode: real groups, driven by this process. */
function awsFleet(
  stage: string,
  pools: readonly PoolConfig[],
  autoScaling: AutoScalingClient,
  where: { account: string; partition: string },
) {
  return createAwsFleet({
    autoScaling,
    ec2: new EC2Client(fleetClientConfig()),
    ssm: new SSMClient(fleetClientConfig()),
    groups: Object.fromEntries(pools.map((pool) => [pool.name, groupsOf(stage, pool)])),
    runnerConfigPrefix: parameterPaths(stage).runnerConfigs,
    stage,
    account: where.account,
    partition: where.partition,
  });
}

/** Mistakes on the command line: one line, no stack. */
class UsageError extends Error {}

async function main() {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions();
  } catch (error) {
    // parseArgs names the offending option; its own wording is clear, its stack is not.
    throw new UsageError(`${error instanceof Error ? error.message : String(error)} (see --help)`);
  }
  const { values } = parsed;
  if (values.help) {
    console.log(usage);
    return;
  }
  const portText = values.port ?? process.env.PORT ?? "3000";
  const port = Number(portText);
  if (!/^\d+$/.test(portText.trim()) || port > 65535)
    throw new ConfigError(`--port: not a port (0 to 65535): ${JSON.stringify(portText)}`);

  if (values.fleet !== "sim" && values.fleet !== "aws")
    throw new ConfigError(`--fleet: sim or aws, not ${values.fleet}`);
  const lossText = values["webhook-loss"];
  if (lossText !== undefined && !/^(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$/.test(lossText))
    throw new UsageError(`--webhook-loss: a share from 0 to 1, not ${lossText}`);
  const webhookLoss = lossText === undefined ? undefined : Number(lossText);
  if (webhookLoss !== undefined && values.fleet === "aws")
    throw new UsageError("--webhook-loss: only the simulated forges drop webhooks (not with --fleet aws)");
  const stage = values.stage ?? "local";
  const host = values.host ?? "127.0.0.1";
  const settings = readSettings(process.env);
  const refusal = openHostRefusal(host, settings.STATUS_TOKEN, values["allow-open"] ?? false);
  if (refusal) throw new UsageError(refusal);
  const { pools, reconciliation } = stageSettings(
    loadHearthConfig(values.config, { required: values.config !== undefined }),
    stage,
  );
  const log = createLogger();
  const autoScaling = values.fleet === "aws" ? new AutoScalingClient(fleetClientConfig()) : undefined;
  // Checked before anything starts: a region, credentials AWS accepts, and every group.
  const checked = autoScaling
    ? await checkAwsFleet(
        autoScaling,
        stage,
        // A pool whose warm group Hearth keeps (`warm.market: spot`) has only its burst group.
        pools.flatMap((pool) => {
          const groups = groupsOf(stage, pool);
          return namesStores(pool) ? [groups.burst] : [groups.warm, groups.burst];
        }),
      )
    : undefined;
  const aws = autoScaling && checked ? awsFleet(stage, pools, autoScaling, checked) : undefined;
  const hearth = await startLocal({
    port,
    host,
    dataDir: values.data,
    settings,
    log,
    pools,
    reconciliation,
    stage: checked ? stage : "local",
    ...(webhookLoss !== undefined ? { webhookLoss } : {}),
    ...(aws && checked
      ? {
          fleet: aws,
          identify: (c) => identifyBySts(c.req.header("x-hearth-identity"), { account: checked.account }),
        }
      : {}),
  });
  if (!isLoopback(host) && !settings.STATUS_TOKEN) {
    log.warn("serving without a status token on a non-loopback address (--allow-open)", { host });
  }

  const lines = [
    `Hearth is running at ${hearth.url}`,
    `  Status page:    ${hearth.url}/  (JSON: GET ${hearth.url}/api/status)`,
    `  GitHub webhook: POST ${hearth.url}/webhooks/github`,
    `  GitLab webhook: POST ${hearth.url}/webhooks/gitlab`,
    `  Heartbeats:     POST ${hearth.url}/agent/heartbeat`,
    `  DynamoDB: embedded, ${values.data ? `kept in ${values.data}` : "in memory"}; fleet: ${
      checked ? `AWS Auto Scaling groups of stage ${stage} in ${checked.region}` : "simulated"
    }`,
  ];
  // Configured secrets are never printed; generated ones once, here, labelled as generated.
  if (hearth.generated.length) {
    lines.push("", "No secret was configured for these, so Hearth generated them for this run:");
    if (hearth.generated.includes("GITHUB_WEBHOOK_SECRET")) {
      lines.push(`  GITHUB_WEBHOOK_SECRET=${hearth.secrets.githubWebhookSecret}`);
    }
    if (hearth.generated.includes("GITLAB_WEBHOOK_TOKEN")) {
      lines.push(`  GITLAB_WEBHOOK_TOKEN=${hearth.secrets.gitlabWebhookToken}`);
    }
  }
  lines.push("", "Watch it scale: run `npm run demo` in another terminal, and open the status page.", "");
  // With a signing token, GitLab's webhooks must be signed (Standard Webhooks): a token alone is
  // refused, so the one-line example would not work. The demo signs with the same variable.
  if (settings.GITLAB_SIGNING_TOKEN) {
    lines.push(
      "GitLab webhooks must be signed here (GITLAB_SIGNING_TOKEN is set): `npm run demo` signs them",
      "when GITLAB_SIGNING_TOKEN is set in its environment too.",
      "",
    );
  } else {
    lines.push(
      `Or send one job yourself, with GITLAB_WEBHOOK_TOKEN set to the token${
        hearth.generated.includes("GITLAB_WEBHOOK_TOKEN") ? " generated above" : " you configured"
      }:`,
      `  curl -s -X POST ${hearth.url}/webhooks/gitlab -H 'X-Gitlab-Event: Job Hook' \\`,
      `    -H "X-Gitlab-Token: $GITLAB_WEBHOOK_TOKEN" -H 'Content-Type: application/json' \\`,
      `    -d '{"object_kind":"build","build_id":1,"build_name":"test","build_status":"pending","pipeline_id":1,"project_id":1}'`,
      "",
    );
  }
  process.stderr.write(`${lines.join("\n")}\n`);
  // Only generated secrets are written down (for `npm run demo`); configured ones stay where they are.
  writeLocalSecrets({
    url: hearth.url,
    ...(hearth.generated.includes("GITHUB_WEBHOOK_SECRET")
      ? { githubWebhookSecret: hearth.secrets.githubWebhookSecret }
      : {}),
    ...(hearth.generated.includes("GITLAB_WEBHOOK_TOKEN")
      ? { gitlabWebhookToken: hearth.secrets.gitlabWebhookToken }
      : {}),
  });

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

function parseOptions() {
  return parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      "allow-open": { type: "boolean" },
      data: { type: "string" },
      config: { type: "string" },
      fleet: { type: "string", default: "sim" },
      stage: { type: "string" },
      "webhook-loss": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

main().catch((error) => {
  // Mistakes a user can fix get one line; anything else keeps its stack, for a bug report.
  const known = [ConfigError, UsageError, DataDirInUse, PortInUse, AwsFleetError].some(
    (kind) => error instanceof kind,
  );
  const message = known ? error.message : error instanceof Error ? error.stack : String(error);
  process.stderr.write(`hearth: ${message}\n`);
  process.exit(1);
});
