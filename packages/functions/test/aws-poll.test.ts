import { SFNClient, StartExecutionCommand } from "@aws-sdk/client-sfn";
import { createLedger } from "@hearth/core/ledger";
import { localDynamoClients } from "@hearth/core/local";
import { loadPollReport } from "@hearth/core/polling";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { functionPolicy } from "../../../infra/lib/iam";
import { FakeGitHub } from "../../core/test/support/fake-github";
import { jobEvent } from "../../core/test/support/jobs";
import { functionLinks, type LinkName, linkEnvironment } from "../src/aws/links";
import {
  type AwsCall,
  type AwsTestStage,
  allLinks,
  captureStdout,
  forbidden,
  lambdaContext,
  mockedCalls,
  recordDynamoCalls,
  STATE_MACHINE_ARN,
  scope,
  startAwsTestStage,
  tableArn,
} from "./support/aws";

/**
 * The poll's Lambda, loaded with only its links (the App pointed at a fake GitHub built from GitHub's
 * OpenAPI description), on the embedded DynamoDB and a mocked SFN: a job whose webhook was lost is
 * recorded and its pool's ScaleFleet started, and the poll's figures are metrics per forge.
 */

const sfn = mockClient(SFNClient);
let stage: AwsTestStage;
let dynamo: { calls: AwsCall[]; restore(): void };
let github: FakeGitHub;
let handler: (event: unknown, context: unknown) => Promise<void>;
let missed: string;

beforeAll(async () => {
  stage = await startAwsTestStage();
  github = await new FakeGitHub().start();
  github.install("acme");
  const links = allLinks(stage.tableName);
  const own = Object.fromEntries(
    ["App", ...functionLinks.poll].map((name) => [name, links[name as LinkName]]),
  ) as Parameters<typeof linkEnvironment>[0];
  stage.setEnvironment(
    linkEnvironment({
      ...own,
      HearthConfig: { ...links.HearthConfig, githubApiUrl: github.baseUrl },
      GithubAppId: { value: String(github.appId) },
      GithubAppPrivateKey: { value: github.privateKey },
    }),
  );
  dynamo = recordDynamoCalls(stage.tableName);
  ({ handler } = (await import("../src/aws/poll")) as unknown as { handler: typeof handler });
  sfn.on(StartExecutionCommand).resolves({ executionArn: `${STATE_MACHINE_ARN}:run`, startDate: new Date() });

  // A webhook told of one job of acme/app; the next job's webhook was lost.
  const { documents } = localDynamoClients(stage.dynamo.endpoint);
  const ledger = createLedger({ client: documents, tableName: stage.tableName });
  await ledger.record(jobEvent({ id: "1", queuedAt: new Date().toISOString() }), "delivery-1");
  const run = github.addRun("acme/app", {
    status: "queued",
    jobs: [{ status: "queued", labels: ["nix", "x86_64-linux"] }],
  });
  missed = String(run.jobs[0]?.id);
});
afterAll(async () => {
  dynamo.restore();
  await github.stop();
  await stage.close();
});

describe("the poll Lambda", () => {
  let lines: string[] = [];

  it("records the job no webhook announced and starts its pool's ScaleFleet", async () => {
    ({ lines } = await captureStdout(() => handler({}, lambdaContext("hearth-test-poll"))));
    const { documents } = localDynamoClients(stage.dynamo.endpoint);
    const ledger = createLedger({ client: documents, tableName: stage.tableName });
    expect(await ledger.get({ source: "github", id: missed })).toMatchObject({ status: "queued" });
    const pools = sfn
      .commandCalls(StartExecutionCommand)
      .map((call) => JSON.parse(call.args[0].input.input ?? "").pool);
    expect(pools).toEqual(["x86_64"]);
    const report = await loadPollReport({
      client: documents,
      tableName: stage.tableName,
      now: () => new Date(),
    });
    expect(report).toMatchObject({ queued: 1, unknownCount: 0 });
    expect(github.violations).toEqual([]);
  });

  it("reports the poll's calls, budget left, jobs found and unknown listings for GitHub", () => {
    const metrics = lines
      .filter((line) => line.includes('"_aws"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((doc) => doc.forge === "github");
    const value = (name: string) => metrics.find((doc) => name in doc)?.[name];
    expect(value("PollCalls")).toBeGreaterThanOrEqual(4);
    expect(value("PollBudgetLeft")).toBeGreaterThan(400);
    expect(value("PollFoundJobs")).toBe(1);
    expect(value("PollUnknownListings")).toBe(0);
  });

  it("made only AWS calls its IAM policy allows", () => {
    const policy = functionPolicy("poll", scope, {
      tableArn: tableArn(stage.tableName),
      stateMachineArn: STATE_MACHINE_ARN,
      pools: ["x86_64", "aarch64"],
    });
    const calls = [...dynamo.calls, ...mockedCalls("states", sfn)];
    expect(calls.length).toBeGreaterThan(0);
    expect(forbidden(policy, calls)).toEqual([]);
  });
});
