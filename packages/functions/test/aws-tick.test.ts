import { SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { createLedger } from "@hearth/core/ledger";
import { localDynamoClients } from "@hearth/core/local";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { functionPolicy } from "../../../infra/lib/iam";
import { jobEvent } from "../../core/test/support/jobs";
import {
  type AwsCall,
  type AwsTestStage,
  captureStdout,
  forbidden,
  functionEnvironment,
  lambdaContext,
  mockedCalls,
  recordDynamoCalls,
  STATE_MACHINE_ARN,
  scope,
  startAwsTestStage,
  tableArn,
} from "./support/aws";

/** The minute tick's Lambda, loaded with only its links, on the embedded DynamoDB and a mocked SFN. */

const sfn = mockClient(SFNClient);
let stage: AwsTestStage;
let dynamo: { calls: AwsCall[]; restore(): void };
let handler: (event: unknown, context: unknown) => Promise<void>;

beforeAll(async () => {
  stage = await startAwsTestStage();
  stage.setEnvironment(functionEnvironment("tick", stage.tableName));
  dynamo = recordDynamoCalls(stage.tableName);
  ({ handler } = (await import("../src/aws/tick")) as unknown as { handler: typeof handler });
  sfn.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE_ARN}:run`, startDate: new Date() });

  const { documents } = localDynamoClients(stage.dynamo.endpoint);
  const ledger = createLedger({ client: documents, tableName: stage.tableName });
  const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
  await ledger.record(jobEvent({ id: "1", queuedAt: minutesAgo(3) }));
  await ledger.record(jobEvent({ id: "2", queuedAt: minutesAgo(1) }));
  // Asks for a label no pool has: unroutable, and waiting for 20 minutes.
  await ledger.record(jobEvent({ id: "3", labels: ["gpu"], queuedAt: minutesAgo(20) }));
});
afterAll(async () => {
  dynamo.restore();
  await stage.close();
});

interface Point {
  name: string;
  value: number;
  dimensions: Record<string, string>;
}

function points(lines: readonly string[]): Point[] {
  return lines
    .filter((line) => line.includes('"_aws"'))
    .map((line) => {
      const doc = JSON.parse(line);
      const directive = doc._aws.CloudWatchMetrics[0];
      const name = directive.Metrics[0].Name as string;
      const dimensions = Object.fromEntries(
        (directive.Dimensions[0] as string[]).map((key) => [key, doc[key]]),
      );
      return { name, value: doc[name] as number, dimensions };
    });
}

describe("the tick Lambda", () => {
  let lines: string[] = [];

  it("starts ScaleFleet for every pool, even with nothing queued for it", async () => {
    ({ lines } = await captureStdout(() => handler({}, lambdaContext("hearth-test-tick"))));
    const pools = sfn
      .commandCalls(StartExecutionCommand)
      .map((call) => JSON.parse(call.args[0].input.input ?? "").pool);
    expect(pools.sort()).toEqual(["aarch64", "x86_64"]);
  });

  it("reports each pool's queue and oldest wait, and the unroutable jobs", () => {
    const reported = points(lines);
    const value = (name: string, pool?: string) =>
      reported.find((p) => p.name === name && (pool === undefined || p.dimensions.pool === pool))?.value;
    expect(value("QueuedJobs", "x86_64")).toBe(2);
    expect(value("QueuedJobs", "aarch64")).toBe(0);
    expect(value("OldestQueuedSeconds", "x86_64")).toBeGreaterThanOrEqual(180);
    expect(value("OldestQueuedSeconds", "x86_64")).toBeLessThan(240);
    expect(value("OldestQueuedSeconds", "aarch64")).toBe(0);
    expect(value("UnroutableJobs")).toBe(1);
    expect(value("OldestUnroutableSeconds")).toBeGreaterThanOrEqual(1200);
  });

  it("does not start a second run for a pool whose run still holds the lease", async () => {
    sfn.resetHistory();
    await captureStdout(() => handler({}, lambdaContext("hearth-test-tick")));
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(0);
  });

  it("made only AWS calls its IAM policy allows", () => {
    const policy = functionPolicy("tick", scope, {
      tableArn: tableArn(stage.tableName),
      stateMachineArn: STATE_MACHINE_ARN,
      pools: ["x86_64", "aarch64"],
    });
    const calls = [...dynamo.calls, ...mockedCalls("states", sfn)];
    expect(calls.length).toBeGreaterThan(0);
    expect(forbidden(policy, calls)).toEqual([]);
  });

  it("fails, for the error alarm, when it cannot start runs, after trying every pool", async () => {
    // A new stage: fresh leases, and Step Functions refusing.
    sfn.reset();
    sfn.on(StartExecutionCommand).rejects(new Error("AccessDenied"));
    const { documents } = localDynamoClients(stage.dynamo.endpoint);
    const { DeleteCommand } = await import("@aws-sdk/lib-dynamodb");
    for (const pool of ["x86_64", "aarch64"]) {
      await documents.send(
        new DeleteCommand({ TableName: stage.tableName, Key: { pk: `LEASE#scale#${pool}`, sk: "LEASE" } }),
      );
    }
    const run = captureStdout(() => handler({}, lambdaContext("hearth-test-tick")));
    await expect(run).rejects.toThrow(/scale x86_64: AccessDenied.*scale aarch64: AccessDenied/);
    expect(sfn.commandCalls(StartExecutionCommand)).toHaveLength(2);
  });
});
