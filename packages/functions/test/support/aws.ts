import { randomUUID } from "node:crypto";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "@hearth/core/local";
import { defaultPools } from "@hearth/core/pools";
import { ensureTable } from "@hearth/core/table";
import { vi } from "vitest";
import { allows, type PolicyDocument, type Scope } from "../../../../infra/lib/iam";
import { groupNames, parameterPaths } from "../../../../infra/lib/names";
import {
  type FunctionName,
  functionLinks,
  type Link,
  type LinkName,
  linkEnvironment,
} from "../../src/aws/links";
import { autoScalingPools } from "./pools";

/**
 * Runs the Lambda handlers as Lambda would: their links in `SST_RESOURCE_*`, DynamoDB on a real
 * (embedded) endpoint, the other AWS APIs mocked; and records every AWS call a handler makes, so a
 * test can hold it to the function's IAM policy.
 */

export const STAGE = "test";
export const scope: Scope = {
  partition: "aws",
  region: "us-east-1",
  accountId: "123456789012",
  stage: STAGE,
};
export const STATE_MACHINE_ARN = `arn:aws:states:us-east-1:123456789012:stateMachine:hearth-${STAGE}-scale-fleet`;
export const INTERRUPTION_MACHINE_ARN = `arn:aws:states:us-east-1:123456789012:stateMachine:hearth-${STAGE}-handle-interruption`;
export const GITHUB_SECRET = "aws-test-github-secret";
export const GITLAB_TOKEN = "aws-test-gitlab-token";
export const STATUS_TOKEN = "aws-test-status-token";

export const tableArn = (tableName: string) => `arn:aws:dynamodb:us-east-1:123456789012:table/${tableName}`;

/** Every link's value for a stage on `tableName`. */
export function allLinks(tableName: string): { [N in LinkName]: Link<N> } {
  return {
    App: { name: "hearth", stage: STAGE },
    HearthConfig: {
      // Warm groups that are Auto Scaling groups: the Auto Scaling mocks answer for them.
      pools: autoScalingPools,
      gitlabUrl: "https://gitlab.example.com",
      githubApiUrl: "https://api.github.com",
      maxIterations: 60,
      reconciliation: { pollMinutes: 1, sweepMinutes: 5, budgetShare: 0.1, dryRun: false },
    },
    Storage: { tableName },
    Fleet: {
      groups: Object.fromEntries(defaultPools.map((pool) => [pool.name, groupNames(STAGE, pool.name)])),
      runnerConfigPrefix: parameterPaths(STAGE).runnerConfigs,
      account: scope.accountId,
      partition: scope.partition,
    },
    ScaleFleet: { stateMachineArn: STATE_MACHINE_ARN },
    HandleInterruption: { stateMachineArn: INTERRUPTION_MACHINE_ARN },
    GithubWebhookSecret: { value: GITHUB_SECRET },
    GitlabWebhookToken: { value: GITLAB_TOKEN },
    GitlabSigningToken: { value: "" },
    GitlabApiToken: { value: "" },
    StatusToken: { value: STATUS_TOKEN },
    // No GitHub App and no GitLab runner token: no runner is minted or deleted.
    GithubAppId: { value: "" },
    GithubAppPrivateKey: { value: "" },
    GitlabRunnerTokens: { tokens: Object.fromEntries(defaultPools.map((pool) => [pool.name, ""])) },
  };
}

/** The links `fn` declares (and SST's `App`), as the environment variables SST sets. */
export function functionEnvironment(fn: FunctionName, tableName: string): Record<string, string> {
  const links = allLinks(tableName);
  const own = Object.fromEntries(
    ["App", ...functionLinks[fn]].map((name) => [name, links[name as LinkName]]),
  );
  return linkEnvironment(own);
}

export interface AwsTestStage {
  dynamo: EmbeddedDynamo;
  tableName: string;
  /** Puts `env` in `process.env` (with a region, fake credentials and the embedded DynamoDB). */
  setEnvironment(env: Record<string, string>): void;
  close(): Promise<void>;
}

export async function startAwsTestStage(): Promise<AwsTestStage> {
  const dynamo = await startEmbeddedDynamo();
  const tableName = `hearth-${STAGE}-${randomUUID()}`;
  const { client } = localDynamoClients(dynamo.endpoint);
  await ensureTable(client, tableName);
  client.destroy();
  const set: string[] = [];
  return {
    dynamo,
    tableName,
    setEnvironment(env) {
      const all = {
        AWS_REGION: "us-east-1",
        AWS_ACCESS_KEY_ID: "test",
        AWS_SECRET_ACCESS_KEY: "test",
        AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
        POWERTOOLS_LOG_LEVEL: "INFO",
        ...env,
      };
      for (const [key, value] of Object.entries(all)) {
        process.env[key] = value;
        set.push(key);
      }
    },
    async close() {
      for (const key of set) delete process.env[key];
      await dynamo.close();
    },
  };
}

export interface AwsCall {
  action: string;
  resource: string;
}

const documentActions: Record<string, string> = {
  Get: "GetItem",
  Put: "PutItem",
  Update: "UpdateItem",
  Delete: "DeleteItem",
  BatchGet: "BatchGetItem",
  BatchWrite: "BatchWriteItem",
  TransactGet: "TransactGetItems",
  TransactWrite: "TransactWriteItems",
};

function resourceOf(service: string, action: string, input: Record<string, unknown>, table: string): string {
  switch (service) {
    case "dynamodb":
      return input.IndexName
        ? `${tableArn(table)}/index/${input.IndexName}`
        : tableArn(String(input.TableName));
    case "autoscaling":
      return action.startsWith("Describe")
        ? "*"
        : `arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:00000000-0000-0000-0000-000000000000:autoScalingGroupName/${input.AutoScalingGroupName}`;
    case "states":
      return String(input.stateMachineArn);
    case "ssm":
      return `arn:aws:ssm:us-east-1:123456789012:parameter${input.Name}`;
    case "ec2":
      return action.startsWith("Describe")
        ? "*"
        : `arn:aws:ec2:us-east-1:123456789012:instance/${(input.InstanceIds as string[] | undefined)?.[0]}`;
    default:
      return "*";
  }
}

/** Records the DynamoDB calls made through any document client (the stores' only way to the table). */
export function recordDynamoCalls(table: string): { calls: AwsCall[]; restore(): void } {
  const calls: AwsCall[] = [];
  const original = DynamoDBDocumentClient.prototype.send;
  const spy = vi.spyOn(DynamoDBDocumentClient.prototype, "send").mockImplementation(function (
    this: DynamoDBDocumentClient,
    command: unknown,
    ...rest: unknown[]
  ) {
    const { name } = (command as object).constructor;
    const base = name.replace(/Command$/, "");
    const action = `dynamodb:${documentActions[base] ?? base}`;
    const input = (command as { input: Record<string, unknown> }).input;
    calls.push({ action, resource: resourceOf("dynamodb", action, input, table) });
    return (original as (...args: unknown[]) => unknown).call(this, command, ...rest) as never;
  });
  return { calls, restore: () => spy.mockRestore() };
}

/** The calls a mocked client received, as IAM actions on resources. */
export function mockedCalls(
  service: string,
  mock: { calls(): Array<{ args: readonly unknown[] }> },
): AwsCall[] {
  return mock.calls().map((call) => {
    const command = call.args[0] as { constructor: { name: string }; input: Record<string, unknown> };
    const action = `${service}:${command.constructor.name.replace(/Command$/, "")}`;
    return { action, resource: resourceOf(service, action, command.input, "") };
  });
}

/** The calls `policy` does not allow (none, for a least-privilege policy that is also sufficient). */
export function forbidden(policy: PolicyDocument, calls: readonly AwsCall[]): AwsCall[] {
  return calls.filter((call) => !allows(policy, call.action, call.resource));
}

/** An API Gateway HTTP API (payload 2.0) event, as the API's routes deliver it. */
export function httpEvent(options: {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** The caller's ARN, for a route with IAM auth. */
  iamUserArn?: string;
}) {
  const headers = Object.fromEntries(
    Object.entries({ host: "abc123.execute-api.us-east-1.amazonaws.com", ...options.headers }).map(
      ([k, v]) => [k.toLowerCase(), v],
    ),
  );
  return {
    version: "2.0",
    routeKey: `${options.method} ${options.path}`,
    rawPath: options.path,
    rawQueryString: "",
    headers,
    requestContext: {
      accountId: "123456789012",
      apiId: "abc123",
      domainName: headers.host,
      domainPrefix: "abc123",
      http: {
        method: options.method,
        path: options.path,
        protocol: "HTTP/1.1",
        sourceIp: "192.0.2.1",
        userAgent: "test",
      },
      requestId: randomUUID(),
      routeKey: `${options.method} ${options.path}`,
      stage: "$default",
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
      ...(options.iamUserArn
        ? {
            authorizer: {
              iam: {
                accessKey: "ASIAEXAMPLE",
                accountId: "123456789012",
                callerId: "AROAEXAMPLE:i-0123456789abcdef0",
                principalOrgId: null,
                userArn: options.iamUserArn,
                userId: "AROAEXAMPLE:i-0123456789abcdef0",
              },
            },
          }
        : {}),
    },
    body: options.body,
    isBase64Encoded: false,
  };
}

/** A Lambda context, enough for Powertools and Hono. */
export const lambdaContext = (functionName: string) => ({
  callbackWaitsForEmptyEventLoop: false,
  functionName,
  functionVersion: "$LATEST",
  invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
  memoryLimitInMB: "512",
  awsRequestId: randomUUID(),
  logGroupName: `/hearth/${STAGE}/${functionName}`,
  logStreamName: "test",
  getRemainingTimeInMillis: () => 10_000,
});

/** Captures what a function prints (Powertools logs and EMF, on stdout and stderr) while `run` runs. */
export async function captureStdout<T>(run: () => Promise<T>): Promise<{ result: T; lines: string[] }> {
  const lines: string[] = [];
  const capture = (chunk: unknown) => {
    lines.push(...String(chunk).split("\n").filter(Boolean));
    return true;
  };
  const out = vi.spyOn(process.stdout, "write").mockImplementation(capture);
  const err = vi.spyOn(process.stderr, "write").mockImplementation(capture);
  try {
    return { result: await run(), lines };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** The EMF metric names in captured lines. */
export const emittedMetrics = (lines: readonly string[]): string[] =>
  lines
    .filter((line) => line.includes('"_aws"'))
    .flatMap((line) => {
      const document = JSON.parse(line) as {
        _aws: { CloudWatchMetrics: Array<{ Metrics: Array<{ Name: string }> }> };
      };
      return document._aws.CloudWatchMetrics.flatMap((d) => d.Metrics.map((m) => m.Name));
    });
