import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import {
  type CapacityState,
  capacityStates,
  METRIC_NAMESPACE,
  METRIC_SERVICE,
  metricNames,
} from "./metric-names";

/**
 * Hearth's metrics, printed as CloudWatch Embedded Metric Format by Powertools Metrics: one log line
 * per data point (a "single metric"), so that each carries exactly the dimensions the alarms watch.
 * CloudWatch extracts them from the function's log group; no PutMetricData call, no extra permission.
 */
export interface HearthMetrics {
  /** A pool's queue, once a tick. */
  queue(pool: string, queued: number, oldestSeconds: number): void;
  /**
   * A pool's worst store health, once a tick while an instance of it reports: each figure only when
   * some instance measured it.
   */
  stores(pool: string, health: { pushLagSeconds: number | null; freeDiskBytes: number | null }): void;
  /** Queued jobs that no pool can run, and the oldest one's wait, once a tick. */
  unroutable(count: number, oldestSeconds: number): void;
  /**
   * A pool's instances by state, once an observation. States with no instance are left out: each
   * metric costs by the hours it is emitted, and an idle stage would pay for a row of zeros (graph
   * them with FILL(m, 0)).
   */
  capacity(pool: string, counts: Record<CapacityState, number>): void;
  /** A ScaleFleet iteration that changed the pool. */
  decision(pool: string): void;
  /** A webhook delivery answered with `status`. */
  webhook(status: number): void;
  /** The GitHub App failed to authenticate a call for `pool`'s runners (a `GitHubAuthError`). */
  githubAuthFailure(pool: string): void;
  /** HandleInterruption drained one of `pool`'s spot instances. */
  interruption(pool: string): void;
  /** Hearth asked a forge to retry one of `pool`'s interrupted jobs. */
  retry(pool: string): void;
  /** One poll of `forge`: its calls, the least budget left of its tokens, jobs found, unknown listings. */
  poll(forge: string, figures: { calls: number; budgetLeft: number; found: number; unknown: number }): void;
}

export function createHearthMetrics(stage: string, metrics?: Metrics): HearthMetrics {
  const base =
    metrics ??
    new Metrics({ namespace: METRIC_NAMESPACE, serviceName: METRIC_SERVICE, defaultDimensions: { stage } });
  const emit = (
    name: string,
    unit: (typeof MetricUnit)[keyof typeof MetricUnit],
    value: number,
    dimensions: Record<string, string> = {},
  ) => {
    const single = base.singleMetric();
    for (const [key, dimension] of Object.entries(dimensions)) single.addDimension(key, dimension);
    single.addMetric(name, unit, value);
  };
  return {
    queue(pool, queued, oldestSeconds) {
      emit(metricNames.queuedJobs, MetricUnit.Count, queued, { pool });
      emit(metricNames.oldestQueuedSeconds, MetricUnit.Seconds, Math.max(0, Math.round(oldestSeconds)), {
        pool,
      });
    },
    stores(pool, health) {
      if (health.pushLagSeconds !== null)
        emit(metricNames.storePushLagSeconds, MetricUnit.Seconds, Math.round(health.pushLagSeconds), {
          pool,
        });
      if (health.freeDiskBytes !== null)
        emit(metricNames.storeFreeDiskBytes, MetricUnit.Bytes, health.freeDiskBytes, { pool });
    },
    unroutable(count, oldestSeconds) {
      emit(metricNames.unroutableJobs, MetricUnit.Count, count);
      emit(metricNames.oldestUnroutableSeconds, MetricUnit.Seconds, Math.max(0, Math.round(oldestSeconds)));
    },
    capacity(pool, counts) {
      for (const state of capacityStates) {
        if (counts[state] > 0) emit(metricNames.instances, MetricUnit.Count, counts[state], { pool, state });
      }
    },
    decision(pool) {
      emit(metricNames.decisions, MetricUnit.Count, 1, { pool });
    },
    webhook(status) {
      emit(metricNames.webhookRequests, MetricUnit.Count, 1);
      if (status >= 400 && status < 500) emit(metricNames.webhookRejected, MetricUnit.Count, 1);
    },
    githubAuthFailure(pool) {
      emit(metricNames.githubAuthErrors, MetricUnit.Count, 1, { pool });
    },
    interruption(pool) {
      emit(metricNames.interruptions, MetricUnit.Count, 1, { pool });
    },
    retry(pool) {
      emit(metricNames.retries, MetricUnit.Count, 1, { pool });
    },
    poll(forge, figures) {
      emit(metricNames.pollCalls, MetricUnit.Count, figures.calls, { forge });
      emit(metricNames.pollBudgetLeft, MetricUnit.Count, figures.budgetLeft, { forge });
      emit(metricNames.pollFoundJobs, MetricUnit.Count, figures.found, { forge });
      emit(metricNames.pollUnknownListings, MetricUnit.Count, figures.unknown, { forge });
    },
  };
}

/** Counts a pool's instances by state, as `capacity` reports them. */
export function countByState(
  instances: ReadonlyArray<{ state: string; busySlots: number }>,
): Record<CapacityState, number> {
  const counts = Object.fromEntries(capacityStates.map((state) => [state, 0])) as Record<
    CapacityState,
    number
  >;
  for (const instance of instances) {
    const state =
      instance.state === "ready"
        ? instance.busySlots > 0
          ? "busy"
          : "idle"
        : (instance.state as CapacityState);
    if (state in counts) counts[state] += 1;
  }
  return counts;
}
