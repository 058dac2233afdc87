import { existsSync, readFileSync } from "node:fs";
import { parseHearthConfig, stageSettings } from "@hearth/core/config";
import { scaleFleetDefinition } from "@hearth/core/workflows";
import validator from "asl-validator";
import { afterEach, describe, expect, it, vi } from "vitest";
import { functionLinks, functionNames } from "../../packages/functions/src/aws/links";
import { METRIC_NAMESPACE } from "../../packages/functions/src/aws/metric-names";
import { createHearthMetrics } from "../../packages/functions/src/aws/metrics";
import { alarmEventPattern, alarms } from "../lib/alarms";
import { apiRoutes } from "../lib/api";
import { functionSpecs, MAX_ITERATIONS, scaleFleetTaskFunctions } from "../lib/functions";
import { wildcardMatch } from "../lib/iam";

const settings = stageSettings(parseHearthConfig({}), "production");
const targets = {
  apiId: "a1b2c3",
  functions: Object.fromEntries(functionNames.map((fn) => [fn, `hearth-production-${fn}`])),
  stateMachineArn: "arn:aws:states:eu-west-1:123456789012:stateMachine:hearth-production-scale-fleet",
};
const specs = alarms(settings, targets);
const byKey = (key: string) => {
  const spec = specs.find((alarm) => alarm.key === key);
  if (!spec) throw new Error(`no alarm ${key}`);
  return spec;
};

interface EmittedPoint {
  namespace: string;
  name: string;
  unit: string;
  value: unknown;
  dimensions: Record<string, string>;
}

/** What Powertools prints as EMF: one point per line, as CloudWatch will extract it. */
function captureEmf(run: () => void): EmittedPoint[] {
  const lines: string[] = [];
  const write = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    run();
  } finally {
    write.mockRestore();
  }
  return lines
    .flatMap((chunk) => chunk.split("\n"))
    .filter((line) => line.includes('"_aws"'))
    .flatMap((line) => {
      const document = JSON.parse(line) as Record<string, unknown> & {
        _aws: {
          CloudWatchMetrics: Array<{
            Namespace: string;
            Dimensions: string[][];
            Metrics: Array<{ Name: string; Unit: string }>;
          }>;
        };
      };
      return document._aws.CloudWatchMetrics.flatMap((directive) =>
        directive.Metrics.flatMap((metric) =>
          directive.Dimensions.map((set) => ({
            namespace: directive.Namespace,
            name: metric.Name,
            unit: metric.Unit,
            value: document[metric.Name],
            dimensions: Object.fromEntries(set.map((key) => [key, String(document[key])])),
          })),
        ),
      );
    });
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("the metrics the functions emit", () => {
  const points = captureEmf(() => {
    const metrics = createHearthMetrics("production");
    for (const pool of settings.pools) {
      metrics.queue(pool.name, 3, 125.4);
      metrics.capacity(pool.name, {
        launching: 1,
        idle: 2,
        busy: 3,
        draining: 0,
        stopping: 0,
        stopped: 4,
        terminating: 0,
      });
      metrics.decision(pool.name);
    }
    for (const pool of settings.pools)
      metrics.stores(pool.name, { pushLagSeconds: 42.4, freeDiskBytes: 5e10 });
    // A pool whose reporting instances measured neither: nothing is emitted for it.
    metrics.stores("quiet", { pushLagSeconds: null, freeDiskBytes: null });
    metrics.unroutable(2, 700);
    metrics.webhook(202);
    metrics.webhook(401);
    for (const pool of settings.pools) metrics.githubAuthFailure(pool.name);
    for (const pool of settings.pools) metrics.interruption(pool.name);
    metrics.poll("github", { calls: 7, budgetLeft: 481, found: 2, unknown: 1 });
  });

  it("are EMF in the Hearth namespace, with the service and stage on every point", () => {
    expect(points.length).toBeGreaterThan(0);
    for (const point of points) {
      expect(point.namespace).toBe(METRIC_NAMESPACE);
      expect(point.dimensions).toMatchObject({ service: "hearth", stage: "production" });
    }
  });

  it("report capacity by state, queued jobs, oldest wait, decisions and rejected webhooks", () => {
    const find = (name: string, dimensions: Record<string, string> = {}) =>
      points.filter(
        (p) =>
          p.name === name && Object.entries(dimensions).every(([key, value]) => p.dimensions[key] === value),
      );
    expect(find("QueuedJobs", { pool: "x86_64" })[0]?.value).toBe(3);
    expect(find("OldestQueuedSeconds", { pool: "x86_64" })[0]).toMatchObject({ value: 125, unit: "Seconds" });
    // States with no instance are left out (an idle stage would pay for a row of zeros).
    expect(find("Instances", { pool: "aarch64" }).map((p) => p.dimensions.state)).toEqual([
      "launching",
      "idle",
      "busy",
      "stopped",
    ]);
    expect(find("Instances", { pool: "aarch64", state: "stopped" })[0]?.value).toBe(4);
    expect(find("Decisions", { pool: "x86_64" })).toHaveLength(1);
    expect(find("WebhookRequests")).toHaveLength(2);
    expect(find("WebhookRejected")).toHaveLength(1);
    expect(find("OldestUnroutableSeconds")[0]?.value).toBe(700);
    expect(find("GitHubAuthErrors", { pool: "x86_64" })).toEqual([
      expect.objectContaining({ value: 1, unit: "Count" }),
    ]);
    expect(find("Interruptions", { pool: "aarch64" })).toEqual([
      expect.objectContaining({ value: 1, unit: "Count" }),
    ]);
    expect(find("StorePushLagSeconds", { pool: "x86_64" })).toEqual([
      expect.objectContaining({ value: 42, unit: "Seconds" }),
    ]);
    expect(find("StoreFreeDiskBytes", { pool: "aarch64" })).toEqual([
      expect.objectContaining({ value: 5e10, unit: "Bytes" }),
    ]);
    expect(points.filter((p) => p.dimensions.pool === "quiet")).toEqual([]);
    // A poll's figure per forge: its calls and the budget its tokens have left.
    expect(
      ["PollCalls", "PollBudgetLeft", "PollFoundJobs", "PollUnknownListings"].map(
        (name) => find(name, { forge: "github" })[0]?.value,
      ),
    ).toEqual([7, 481, 2, 1]);
  });

  it("match every alarm on Hearth's own metrics: same name, same dimensions", () => {
    const watched = specs.flatMap((alarm) => alarm.metrics).filter((m) => m.namespace === METRIC_NAMESPACE);
    expect(watched.length).toBeGreaterThan(0);
    for (const metric of watched) {
      const match = points.find(
        (p) =>
          p.name === metric.metricName &&
          JSON.stringify(Object.entries(p.dimensions).sort()) ===
            JSON.stringify(Object.entries(metric.dimensions).sort()),
      );
      expect(match, `${metric.metricName} ${JSON.stringify(metric.dimensions)}`).toBeDefined();
    }
  });
});

describe("the alarms", () => {
  it("watch every pool's oldest queued job, 15 minutes by default, 5 minutes running", () => {
    for (const pool of settings.pools) {
      const alarm = byKey(`oldest-queued-${pool.name}`);
      expect(alarm).toMatchObject({
        name: `hearth-production-oldest-queued-${pool.name}`,
        threshold: 900,
        comparisonOperator: "GreaterThanOrEqualToThreshold",
        evaluationPeriods: 5,
        datapointsToAlarm: 5,
      });
      expect(alarm.metrics[0]).toMatchObject({
        metricName: "OldestQueuedSeconds",
        stat: "Maximum",
        period: 60,
      });
    }
  });

  it("take their thresholds from the stage's settings", () => {
    const strict = stageSettings(
      parseHearthConfig({
        stages: { production: { alarms: { thresholds: { oldestQueuedSeconds: 300, lambdaErrors: 1 } } } },
      }),
      "production",
    );
    const custom = alarms(strict, targets);
    expect(custom.find((a) => a.key === "oldest-queued-x86_64")?.threshold).toBe(300);
    expect(custom.find((a) => a.key === "errors-api")?.threshold).toBe(1);
    expect(custom.find((a) => a.key === "webhooks-rejected")?.threshold).toBe(25);
  });

  it("compute the webhook rejection rate only over periods with enough deliveries", () => {
    const alarm = byKey("webhooks-rejected");
    expect(alarm.metrics.map((m) => m.metricName)).toEqual(["WebhookRejected", "WebhookRequests"]);
    expect(alarm.expression?.expression).toBe(
      "IF(FILL(requests, 0) >= 5, 100 * FILL(rejected, 0) / requests, 0)",
    );
    expect(alarm).toMatchObject({ threshold: 25, evaluationPeriods: 3, datapointsToAlarm: 2 });
  });

  it("watch API Gateway's 5xx rate, which includes functions that crashed or timed out", () => {
    const alarm = byKey("api-5xx");
    expect(alarm.metrics).toEqual([
      expect.objectContaining({
        namespace: "AWS/ApiGateway",
        metricName: "5xx",
        dimensions: { ApiId: "a1b2c3" },
      }),
      expect.objectContaining({
        namespace: "AWS/ApiGateway",
        metricName: "Count",
        dimensions: { ApiId: "a1b2c3" },
      }),
    ]);
    expect(alarm.threshold).toBe(5);
  });

  it("watch every function's errors, and that the tick keeps running", () => {
    for (const fn of functionNames) {
      expect(byKey(`errors-${fn}`).metrics[0]).toMatchObject({
        namespace: "AWS/Lambda",
        metricName: "Errors",
        dimensions: { FunctionName: `hearth-production-${fn}` },
      });
    }
    expect(byKey("tick-stopped")).toMatchObject({
      comparisonOperator: "LessThanThreshold",
      threshold: 1,
      treatMissingData: "breaching",
      metrics: [expect.objectContaining({ metricName: "Invocations" })],
    });
  });

  it("watch failed and timed-out ScaleFleet runs, and unroutable jobs", () => {
    const failed = byKey("scale-fleet-failed");
    expect(failed.metrics.map((m) => m.metricName)).toEqual(["ExecutionsFailed", "ExecutionsTimedOut"]);
    expect(failed.metrics.every((m) => m.dimensions.StateMachineArn === targets.stateMachineArn)).toBe(true);
    expect(byKey("unroutable-jobs")).toMatchObject({
      threshold: 600,
      metrics: [expect.objectContaining({ metricName: "OldestUnroutableSeconds", stat: "Maximum" })],
    });
  });

  it("watch GitHub App authentication failures per pool: any in 5 minutes", () => {
    for (const pool of settings.pools) {
      const alarm = byKey(`github-auth-${pool.name}`);
      expect(alarm).toMatchObject({
        name: `hearth-production-github-auth-${pool.name}`,
        comparisonOperator: "GreaterThanOrEqualToThreshold",
        threshold: 1,
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        treatMissingData: "notBreaching",
      });
      expect(alarm.metrics).toEqual([
        {
          id: "m1",
          namespace: "Hearth",
          metricName: "GitHubAuthErrors",
          dimensions: { service: "hearth", stage: "production", pool: pool.name },
          stat: "Sum",
          period: 300,
        },
      ]);
    }
  });

  it("watch every pool's stores: builds not reaching the binary cache, and disk running out", () => {
    for (const pool of settings.pools) {
      expect(byKey(`cache-push-${pool.name}`)).toMatchObject({
        comparisonOperator: "GreaterThanOrEqualToThreshold",
        threshold: 3600,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        treatMissingData: "notBreaching",
        metrics: [
          expect.objectContaining({ metricName: "StorePushLagSeconds", stat: "Maximum", period: 300 }),
        ],
      });
      expect(byKey(`cache-push-${pool.name}`).description).toContain("npm run cache-key");
      expect(byKey(`store-disk-${pool.name}`)).toMatchObject({
        comparisonOperator: "LessThanThreshold",
        threshold: 5 * 2 ** 30,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        treatMissingData: "notBreaching",
        metrics: [
          expect.objectContaining({ metricName: "StoreFreeDiskBytes", stat: "Minimum", period: 300 }),
        ],
      });
    }
    const strict = stageSettings(
      parseHearthConfig({ alarms: { thresholds: { pushLagSeconds: 900, freeDiskGiB: 20 } } }),
      "production",
    );
    const custom = alarms(strict, targets);
    expect(custom.find((a) => a.key === "cache-push-x86_64")?.threshold).toBe(900);
    expect(custom.find((a) => a.key === "store-disk-x86_64")?.threshold).toBe(20 * 2 ** 30);
  });

  it("have unique names under the stage's prefix, which the event pattern matches", () => {
    const names = specs.map((alarm) => alarm.name);
    expect(new Set(names).size).toBe(names.length);
    const pattern = alarmEventPattern("production", "eu-west-1", "123456789012");
    const prefix = pattern.resources[0]?.prefix ?? "";
    expect(pattern["detail-type"]).toEqual(["CloudWatch Alarm State Change"]);
    for (const name of names) {
      expect(`arn:aws:cloudwatch:eu-west-1:123456789012:alarm:${name}`.startsWith(prefix)).toBe(true);
    }
    expect("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:hearth-productionx-y".startsWith(prefix)).toBe(
      false,
    );
  });
});

describe("the ScaleFleet definition as deployed", () => {
  const arn = (fn: string) => `arn:aws:lambda:eu-west-1:123456789012:function:hearth-production-${fn}`;
  const definition = scaleFleetDefinition({
    observe: arn("observe"),
    plan: arn("plan"),
    apply: arn("apply"),
    finish: arn("finish"),
    recordFailure: arn("recordFailure"),
  });

  it("is valid Amazon States Language", () => {
    const result = validator(structuredClone(definition), { checkArn: true, checkPaths: true });
    expect(result.errorsText(), result.errorsText()).toBe("");
    expect(result.isValid).toBe(true);
  });

  it("is rejected by the validator when broken, so the check above can fail", () => {
    const broken = structuredClone(definition) as { States: Record<string, Record<string, unknown>> };
    (broken.States.Plan as Record<string, unknown>).Next = "Nowhere";
    expect(validator(broken).isValid).toBe(false);
  });

  it("invokes exactly the five task functions, each with a handler in the functions package", () => {
    const resources = Object.values(definition.States).flatMap((state) =>
      "Resource" in state ? [state.Resource as string] : [],
    );
    expect(new Set(resources)).toEqual(new Set(scaleFleetTaskFunctions.map(arn)));
    for (const fn of scaleFleetTaskFunctions) {
      expect(functionSpecs[fn].handler).toBe(`packages/functions/src/aws/scale.${fn}`);
      expect(wildcardMatch("arn:aws:lambda:*:*:function:hearth-production-*", arn(fn))).toBe(true);
    }
  });

  it("loops within its timeout", () => {
    // Waits are at most 15 s and each step has a 60 s timeout at worst; iterations bound the loop.
    expect(MAX_ITERATIONS * 15).toBeLessThan(definition.TimeoutSeconds);
  });
});

describe("the functions", () => {
  it("run within their limits and link only what they read", () => {
    for (const fn of functionNames) {
      const spec = functionSpecs[fn];
      expect(spec.links).toBe(functionLinks[fn]);
      expect(spec.memoryMB).toBeGreaterThanOrEqual(128);
      expect(spec.timeoutSeconds).toBeLessThanOrEqual(fn === "api" ? 29 : 900);
    }
    expect(functionLinks.plan).toEqual(["HearthConfig"]);
  });

  it("point SST at handlers that exist", () => {
    const root = new URL("../../", import.meta.url);
    for (const fn of functionNames) {
      const handler = functionSpecs[fn].handler;
      const dot = handler.lastIndexOf(".");
      const file = new URL(`${handler.slice(0, dot)}.ts`, root);
      expect(existsSync(file), handler).toBe(true);
      expect(readFileSync(file, "utf8")).toMatch(new RegExp(`export const ${handler.slice(dot + 1)} =`));
    }
  });
});

describe("the API's routes", () => {
  it("are the webhooks, the status (with its preflight) and the heartbeat, which alone takes IAM auth", () => {
    expect(apiRoutes.map((r) => r.route)).toEqual([
      "POST /webhooks/github",
      "POST /webhooks/gitlab",
      "GET /api/status",
      "OPTIONS /api/status",
      "POST /agent/heartbeat",
    ]);
    expect(apiRoutes.filter((r) => r.iam).map((r) => r.route)).toEqual(["POST /agent/heartbeat"]);
    for (const { route } of apiRoutes) expect(route).toMatch(/^(GET|POST|OPTIONS) \/[a-z/]+$/);
  });
});
