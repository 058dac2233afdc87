import "./node-runtime";
import { parseArgs } from "node:util";
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { EC2Client } from "@aws-sdk/client-ec2";
import { SSMClient } from "@aws-sdk/client-ssm";
import { ConfigError, readSettings } from "@hearth/core/config";
import {
  groupNames,
  HearthConfigError,
  loadHearthConfig,
  parameterPaths,
  stageSettings,
} from "@hearth/core/deploy";
import { createAwsFleet, fleetClientConfig } from "@hearth/core/fleet-aws";
import type { PoolConfig } from "@hearth/core/pools";
import { identifyBySts } from "../agent/sts-identity";
import { createLogger } from "../log";
import { writeLocalSecrets } from "./secrets-file";
import { startLocal } from "./server";

const usage = `Usage: npm start -- [--port N] [--host ADDR] [--data DIR] [--config FILE] [--fleet sim|aws --stage NAME]

Runs Hearth in one process with an embedded DynamoDB.
  --port N       port for the HTTP server (default: $PORT or 3000)
  --host ADDR    address to listen on (default 127.0.0.1)
  --data DIR     keep the embedded DynamoDB (and the simulated fleet) in DIR (default: in memory)
  --config FILE  the pool config (default: $HEARTH_CONFIG or hearth.config.json if present, else the
                 built-in x86_64 and aarch64 pools)
  --fleet aws    drive real Auto Scaling groups with the AWS SDK's default credentials, instead of the
                 simulated fleet: each pool's \`autoScalingGroups\` from the config, else stage NAME's
                 (hearth-NAME-<pool>-warm and -burst)`;

/** A pool's groups: named in the pool config, or the ones a stage's infra created. */
const groupsOf = (stage: string, pool: PoolConfig) => pool.autoScalingGroups ?? groupNames(stage, pool.name);

/** Single-host controller mode: real groups, driven by this process. */
function awsFleet(stage: string, pools: readonly PoolConfig[], autoScaling: AutoScalingClient) {
  return createAwsFleet({
    autoScaling,
    ec2: new EC2Client(fleetClientConfig()),
    ssm: new SSMClient(fleetClientConfig()),
    groups: Object.fromEntries(pools.map((pool) => [pool.name, groupsOf(stage, pool)])),
    runnerConfigPrefix: parameterPaths(stage).runnerConfigs,
  });
}

/**
 * The account the stage's groups live in, read once from a group's ARN: only roles of this account
 * may speak for the fleet's instances.
 */
function stageAccount(stage: string, pools: readonly PoolConfig[], autoScaling: AutoScalingClient) {
  let account: Promise<string> | undefined;
  const read = async () => {
    const names = pools.flatMap((pool) => Object.values(groupsOf(stage, pool)));
    const out = await autoScaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: names }),
    );
    const arns = (out.AutoScalingGroups ?? []).map((group) => group.AutoScalingGroupARN ?? "");
    const found = /^arn:aws[a-z-]*:autoscaling:[^:]*:(\d{12}):/.exec(arns[0] ?? "")?.[1];
    if (!found) throw new Error(`no Auto Scaling group of stage ${stage} found`);
    return found;
  };
  return () => {
    account ??= read().catch((error) => {
      account = undefined;
      throw error;
    });
    return account;
  };
}

async function main() {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      host: { type: "string" },
      data: { type: "string" },
      config: { type: "string" },
      fleet: { type: "string", default: "sim" },
      stage: { type: "string" },
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

  if (values.fleet !== "sim" && values.fleet !== "aws")
    throw new ConfigError(`--fleet: sim or aws, not ${values.fleet}`);
  const stage = values.stage ?? "local";
  const { pools } = stageSettings(
    loadHearthConfig(values.config, { required: values.config !== undefined }),
    stage,
  );
  const log = createLogger();
  const autoScaling = values.fleet === "aws" ? new AutoScalingClient(fleetClientConfig()) : undefined;
  const aws = autoScaling ? awsFleet(stage, pools, autoScaling) : undefined;
  const account = autoScaling ? stageAccount(stage, pools, autoScaling) : undefined;
  const hearth = await startLocal({
    port,
    host: values.host,
    dataDir: values.data,
    settings: readSettings(process.env),
    log,
    pools,
    ...(aws && account
      ? { fleet: aws, identify: (c) => identifyBySts(c.req.header("x-hearth-identity"), { account }) }
      : {}),
  });

  const lines = [
    `Hearth is running at ${hearth.url}`,
    `  Status page:    ${hearth.url}/  (JSON: GET ${hearth.url}/api/status)`,
    `  GitHub webhook: POST ${hearth.url}/webhooks/github`,
    `  GitLab webhook: POST ${hearth.url}/webhooks/gitlab`,
    `  Heartbeats:     POST ${hearth.url}/agent/heartbeat`,
    `  DynamoDB: embedded, ${values.data ? `kept in ${values.data}` : "in memory"}; fleet: ${
      aws ? `AWS Auto Scaling groups of stage ${stage}` : "simulated"
    }`,
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
    "Watch it scale: run `npm run demo` in another terminal, and open the status page.",
    "",
    "Or send one job yourself:",
    `  curl -s -X POST ${hearth.url}/webhooks/gitlab -H 'X-Gitlab-Event: Job Hook' \\`,
    `    -H 'X-Gitlab-Token: ${hearth.secrets.gitlabWebhookToken}' -H 'Content-Type: application/json' \\`,
    `    -d '{"object_kind":"build","build_id":1,"build_name":"test","build_status":"pending","pipeline_id":1,"project_id":1}'`,
    "",
  );
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

main().catch((error) => {
  const known = error instanceof ConfigError || error instanceof HearthConfigError;
  const message = known ? error.message : error instanceof Error ? error.stack : String(error);
  process.stderr.write(`hearth: ${message}\n`);
  process.exit(1);
});
