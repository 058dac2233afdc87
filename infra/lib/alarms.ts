import type { StageSettings } from "../../packages/core/src/config/file";
import {
  dimensionsOf,
  METRIC_NAMESPACE,
  metricDimensions,
  metricNames,
} from "../../packages/functions/src/aws/metric-names";
import { resourcePrefix } from "./names";

/**
 * The stage's CloudWatch alarms as plain data, thresholds from the stage settings. infra/alarms.ts
 * creates one `aws.cloudwatch.MetricAlarm` per definition (property names are Pulumi's), sends their
 * state changes to the alarm topic, and CloudWatch also puts every change on the default event bus.
 */

/** `T`: how infra passes values it knows only at deploy time (Pulumi outputs); plain strings in tests. */
export interface MetricStat<T = string> {
  id: string;
  namespace: string;
  metricName: string;
  dimensions: Record<string, string | T>;
  stat: "Sum" | "Maximum" | "Minimum" | "Average";
  period: number;
}

export interface AlarmSpec<T = string> {
  /** Unique within the stage; part of the component and alarm names. */
  key: string;
  name: string;
  description: string;
  comparisonOperator: "GreaterThanOrEqualToThreshold" | "GreaterThanThreshold" | "LessThanThreshold";
  threshold: number;
  evaluationPeriods: number;
  datapointsToAlarm: number;
  treatMissingData: "notBreaching" | "missing" | "breaching";
  /** One metric, or a math expression over several (`expression` names the one that is compared). */
  metrics: MetricStat<T>[];
  expression?: { id: string; expression: string; label: string };
}

/** What the alarms watch besides Hearth's own metrics. */
export interface AlarmTargets<T = string> {
  /** The HTTP API's id (AWS/ApiGateway `ApiId`). */
  apiId: string | T;
  /** Lambda function names by Hearth function name (AWS/Lambda `FunctionName`). */
  functions: Record<string, string | T>;
  stateMachineArn: string | T;
}

const MINUTE = 60;
const FIVE_MINUTES = 300;

export function alarmName(stage: string, key: string): string {
  return `${resourcePrefix(stage)}-${key}`;
}

function hearthMetric(
  stage: string,
  id: string,
  metric: keyof typeof metricNames,
  stat: MetricStat["stat"],
  period: number,
  dimensions: Record<string, string> = {},
): MetricStat<never> {
  const expected = metricDimensions[metric];
  const given = Object.keys(dimensions);
  if (given.length !== expected.length || !expected.every((name) => given.includes(name))) {
    throw new Error(`${metricNames[metric]} carries [${expected.join(", ")}], not [${given.join(", ")}]`);
  }
  return {
    id,
    namespace: METRIC_NAMESPACE,
    metricName: metricNames[metric],
    dimensions: dimensionsOf(stage, dimensions),
    stat,
    period,
  };
}

export function alarms<T = string>(settings: StageSettings, targets: AlarmTargets<T>): AlarmSpec<T>[] {
  const { stage } = settings;
  const t = settings.alarms.thresholds;
  const name = (key: string) => alarmName(stage, key);
  const list: AlarmSpec<T>[] = [];

  // A job that waits long means capacity cannot be had: the pool is at its instance limit, spot and
  // the on-demand fallback both fail, the AMI does not boot, or runners do not register. Minutes of
  // waiting are normal under a burst (a cold instance takes a minute or two); a quarter of an hour,
  // five minutes running, is not.
  for (const pool of settings.pools) {
    list.push({
      key: `oldest-queued-${pool.name}`,
      name: name(`oldest-queued-${pool.name}`),
      description: `A job for pool ${pool.name} has waited over ${t.oldestQueuedSeconds} s to start`,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      threshold: t.oldestQueuedSeconds,
      evaluationPeriods: 5,
      datapointsToAlarm: 5,
      // The tick reports every minute, zeros included; no data means the tick is not running, which
      // the tick-stopped alarm reports.
      treatMissingData: "missing",
      metrics: [hearthMetric(stage, "m1", "oldestQueuedSeconds", "Maximum", MINUTE, { pool: pool.name })],
    });
  }

  // A job no pool can run waits for ever: a label typo in a workflow, or a pool missing from the
  // config. Jobs for GitHub's hosted runners also show here (an organization webhook sends them), but
  // they start within minutes, so the alarm waits longer than that.
  list.push({
    key: "unroutable-jobs",
    name: name("unroutable-jobs"),
    description: `A job that no pool can run has been queued over ${t.unroutableAfterSeconds} s`,
    comparisonOperator: "GreaterThanOrEqualToThreshold",
    threshold: t.unroutableAfterSeconds,
    evaluationPeriods: 5,
    datapointsToAlarm: 5,
    treatMissingData: "missing",
    metrics: [hearthMetric(stage, "m1", "oldestUnroutableSeconds", "Maximum", MINUTE)],
  });

  // Rejected deliveries: a wrong or rotated secret rejects every one, and the forge then disables
  // the hook (GitLab after repeated failures). A rate, over periods with enough deliveries to be one.
  list.push({
    key: "webhooks-rejected",
    name: name("webhooks-rejected"),
    description: `Over ${t.webhookRejectedPercent}% of webhook deliveries were rejected (4xx): check the secrets`,
    comparisonOperator: "GreaterThanThreshold",
    threshold: t.webhookRejectedPercent,
    evaluationPeriods: 3,
    datapointsToAlarm: 2,
    treatMissingData: "notBreaching",
    metrics: [
      hearthMetric(stage, "rejected", "webhookRejected", "Sum", FIVE_MINUTES),
      hearthMetric(stage, "requests", "webhookRequests", "Sum", FIVE_MINUTES),
    ],
    expression: {
      id: "rate",
      expression: `IF(FILL(requests, 0) >= ${t.minimumRequests}, 100 * FILL(rejected, 0) / requests, 0)`,
      label: "Rejected webhook deliveries (%)",
    },
  });

  // The GitHub App cannot authenticate: its private key expired, was revoked or replaced, or the App
  // was uninstalled where the pool registers runners. No GitHub runner is minted or deleted until it
  // is fixed, and it never heals by itself, so one failure is enough. Per pool, as the metric is.
  for (const pool of settings.pools) {
    list.push({
      key: `github-auth-${pool.name}`,
      name: name(`github-auth-${pool.name}`),
      description: `The GitHub App failed to authenticate for pool ${pool.name}: check its private key and installation`,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      threshold: 1,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      // Emitted only on a failure: no data is no failure.
      treatMissingData: "notBreaching",
      metrics: [hearthMetric(stage, "m1", "githubAuthErrors", "Sum", FIVE_MINUTES, { pool: pool.name })],
    });
  }

  // Spot capacity taken back often: each interruption costs a replacement's boot and, for a warning,
  // the jobs it ran (retried). Many in an hour mean the pool's instance types or zones are in short
  // supply: widen them, or lower the spot share. Per pool, over an hour, as the setting says.
  for (const pool of settings.pools) {
    list.push({
      key: `interruptions-${pool.name}`,
      name: name(`interruptions-${pool.name}`),
      description: `Over ${t.interruptionsPerHour} spot instances of pool ${pool.name} were interrupted within an hour`,
      comparisonOperator: "GreaterThanThreshold",
      threshold: t.interruptionsPerHour,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      // Emitted only when an instance is interrupted: no data is none.
      treatMissingData: "notBreaching",
      metrics: [hearthMetric(stage, "m1", "interruptions", "Sum", 3600, { pool: pool.name })],
    });
  }

  // The stores' health, as the agents report it (the tick's per-pool worst). Builds that do not reach
  // the binary cache (no signing key set, no access to the bucket) leave every other store, and every
  // fresh spot instance, to build them again: the queue's oldest build an hour old is not a slow
  // upload. A store short of disk fails its jobs' builds: Nix collects garbage below
  // `services.hearth.nix.minFree` (10 GiB), so less than the threshold means collection cannot keep
  // up. No instance reporting is no data, and no alarm. A store stopped with builds still queued
  // reports their age, stop included, once resumed; two five-minute periods let its first push
  // clear that before the alarm fires.
  for (const pool of settings.pools) {
    list.push({
      key: `cache-push-${pool.name}`,
      name: name(`cache-push-${pool.name}`),
      description: `A store of pool ${pool.name} has had builds waiting over ${t.pushLagSeconds} s to reach the binary cache: check its signing key (npm run cache-key) and the instances' access to the cache bucket`,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      threshold: t.pushLagSeconds,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      treatMissingData: "notBreaching",
      metrics: [
        hearthMetric(stage, "m1", "storePushLagSeconds", "Maximum", FIVE_MINUTES, { pool: pool.name }),
      ],
    });
    list.push({
      key: `store-disk-${pool.name}`,
      name: name(`store-disk-${pool.name}`),
      description: `A store of pool ${pool.name} has had less than ${t.freeDiskGiB} GiB of disk free for 15 minutes: its builds may fail (raise fleet.rootVolumeGiB)`,
      comparisonOperator: "LessThanThreshold",
      threshold: t.freeDiskGiB * 2 ** 30,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: "notBreaching",
      metrics: [
        hearthMetric(stage, "m1", "storeFreeDiskBytes", "Minimum", FIVE_MINUTES, { pool: pool.name }),
      ],
    });
  }

  // Server errors, as API Gateway counts them: they include a function that crashed or timed out,
  // which the function's own code cannot report. All routes (webhooks, heartbeats, status).
  list.push({
    key: "api-5xx",
    name: name("api-5xx"),
    description: `Over ${t.api5xxPercent}% of API requests failed with a 5xx`,
    comparisonOperator: "GreaterThanThreshold",
    threshold: t.api5xxPercent,
    evaluationPeriods: 2,
    datapointsToAlarm: 2,
    treatMissingData: "notBreaching",
    metrics: [
      {
        id: "errors",
        namespace: "AWS/ApiGateway",
        metricName: "5xx",
        dimensions: { ApiId: targets.apiId },
        stat: "Sum",
        period: FIVE_MINUTES,
      },
      {
        id: "requests",
        namespace: "AWS/ApiGateway",
        metricName: "Count",
        dimensions: { ApiId: targets.apiId },
        stat: "Sum",
        period: FIVE_MINUTES,
      },
    ],
    expression: {
      id: "rate",
      expression: `IF(FILL(requests, 0) >= ${t.minimumRequests}, 100 * FILL(errors, 0) / requests, 0)`,
      label: "API requests answered 5xx (%)",
    },
  });

  // Function errors (unhandled exceptions, timeouts, out of memory). One transient error is retried
  // or superseded by the next tick; several in five minutes are not transient.
  for (const [fn, functionName] of Object.entries(targets.functions)) {
    list.push({
      key: `errors-${fn}`,
      name: name(`errors-${fn}`),
      description: `Function ${fn} failed ${t.lambdaErrors} or more times in 5 minutes`,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
      threshold: t.lambdaErrors,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      treatMissingData: "notBreaching",
      metrics: [
        {
          id: "m1",
          namespace: "AWS/Lambda",
          metricName: "Errors",
          dimensions: { FunctionName: functionName },
          stat: "Sum",
          period: FIVE_MINUTES,
        },
      ],
    });
  }

  // The tick is the control plane's pulse: it reports the queue, catches missed webhooks and ages out
  // idle instances. Fifteen minutes without one (a disabled or deleted schedule, a function that can
  // no longer be invoked) is an outage even though nothing reports an error.
  const tick = targets.functions.tick;
  if (tick !== undefined) {
    list.push({
      key: "tick-stopped",
      name: name("tick-stopped"),
      description: "The minute tick has not run for 15 minutes: the fleet is not being watched",
      comparisonOperator: "LessThanThreshold",
      threshold: 1,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: "breaching",
      metrics: [
        {
          id: "m1",
          namespace: "AWS/Lambda",
          metricName: "Invocations",
          dimensions: { FunctionName: tick },
          stat: "Sum",
          period: FIVE_MINUTES,
        },
      ],
    });
  }

  // ScaleFleet runs that failed (a step failed past its retries, journaled by RecordFailure) or timed
  // out. The next tick starts another run, so one failure heals; failures in two of three
  // five-minute periods mean the pool is not being scaled.
  list.push({
    key: "scale-fleet-failed",
    name: name("scale-fleet-failed"),
    description: "ScaleFleet executions keep failing: pools are not being scaled (see the journal)",
    comparisonOperator: "GreaterThanOrEqualToThreshold",
    threshold: t.scaleFleetFailures,
    evaluationPeriods: 3,
    datapointsToAlarm: 2,
    treatMissingData: "notBreaching",
    metrics: ["ExecutionsFailed", "ExecutionsTimedOut"].map((metricName, i) => ({
      id: `m${i + 1}`,
      namespace: "AWS/States",
      metricName,
      dimensions: { StateMachineArn: targets.stateMachineArn },
      stat: "Sum" as const,
      period: FIVE_MINUTES,
    })),
    expression: { id: "failed", expression: "FILL(m1, 0) + FILL(m2, 0)", label: "Failed or timed-out runs" },
  });

  return list;
}

/**
 * The EventBridge pattern that matches this stage's alarm state changes on the default bus, for
 * teams that route alarms somewhere other than the topic.
 */
export function alarmEventPattern(stage: string, region: string, accountId: string, partition = "aws") {
  return {
    source: ["aws.cloudwatch"],
    "detail-type": ["CloudWatch Alarm State Change"],
    resources: [
      { prefix: `arn:${partition}:cloudwatch:${region}:${accountId}:alarm:${resourcePrefix(stage)}-` },
    ],
  };
}
