/**
 * The CloudWatch metrics Hearth emits (as EMF, through Powertools Metrics) and the dimension sets
 * they carry. Plain data: the emitter (./metrics) and the alarms (infra/lib/alarms) both read it, and
 * a test checks that what the functions print matches what the alarms watch.
 */

export const METRIC_NAMESPACE = "Hearth";
/** Powertools puts the service name on every metric as the `service` dimension. */
export const METRIC_SERVICE = "hearth";

export const metricNames = {
  /** Per pool, each tick: jobs queued for the pool. */
  queuedJobs: "QueuedJobs",
  /** Per pool, each tick: how long the pool's oldest queued job has waited (0 when none). */
  oldestQueuedSeconds: "OldestQueuedSeconds",
  /**
   * Per pool, each tick with an instance reporting: the longest any of its reporting instances has
   * had a build waiting to be pushed to the binary cache.
   */
  storePushLagSeconds: "StorePushLagSeconds",
  /** Per pool, each tick with an instance reporting: the least free disk of its reporting stores. */
  storeFreeDiskBytes: "StoreFreeDiskBytes",
  /** Each tick: queued jobs that no pool can run (some are for GitHub's hosted runners, and soon start). */
  unroutableJobs: "UnroutableJobs",
  /** Each tick: how long the oldest of them has waited (0 when none); a long wait is a config problem. */
  oldestUnroutableSeconds: "OldestUnroutableSeconds",
  /** Per pool and state, each ScaleFleet observation: instances in that state (states with none left out). */
  instances: "Instances",
  /** Per pool: ScaleFleet iterations that changed the fleet (made API calls). */
  decisions: "Decisions",
  /** Every webhook delivery the API answered. */
  webhookRequests: "WebhookRequests",
  /** Webhook deliveries answered with a 4xx (bad signature or token, malformed, not configured). */
  webhookRejected: "WebhookRejected",
  /**
   * Per pool: calls for the pool's runners that the GitHub App could not authenticate (a private key
   * that is expired, revoked or not the App's, or the App not installed where the pool registers).
   */
  githubAuthErrors: "GitHubAuthErrors",
  /** Per pool: spot instances HandleInterruption drained (a warning or a rebalance recommendation; once per instance). */
  interruptions: "Interruptions",
  /** Per pool: retries Hearth asked of a forge for jobs a spot interruption took down. */
  retries: "Retries",
  /** Per forge, each poll: calls polling made (all the forge's tokens). */
  pollCalls: "PollCalls",
  /**
   * Per forge, each poll: calls reconciliation may still make in the window by its share, for the
   * forge's token with the least left.
   */
  pollBudgetLeft: "PollBudgetLeft",
  /** Per forge, each poll: jobs polling found that no webhook had announced (now queued in the ledger). */
  pollFoundJobs: "PollFoundJobs",
  /** Per forge, each poll: listings that failed, were cut or not reached (their jobs unknown). */
  pollUnknownListings: "PollUnknownListings",
} as const;

/** Instance states as the metrics count them: the planner's, with `ready` split into idle and busy. */
export const capacityStates = [
  "launching",
  "idle",
  "busy",
  "draining",
  "stopping",
  "stopped",
  "terminating",
] as const;
export type CapacityState = (typeof capacityStates)[number];

/** The dimensions of each metric, beyond `service` and `stage`. */
export const metricDimensions: Record<keyof typeof metricNames, readonly string[]> = {
  queuedJobs: ["pool"],
  oldestQueuedSeconds: ["pool"],
  storePushLagSeconds: ["pool"],
  storeFreeDiskBytes: ["pool"],
  unroutableJobs: [],
  oldestUnroutableSeconds: [],
  instances: ["pool", "state"],
  decisions: ["pool"],
  webhookRequests: [],
  webhookRejected: [],
  githubAuthErrors: ["pool"],
  interruptions: ["pool"],
  retries: ["pool"],
  pollCalls: ["forge"],
  pollBudgetLeft: ["forge"],
  pollFoundJobs: ["forge"],
  pollUnknownListings: ["forge"],
};

/** The full dimension map of one data point, as CloudWatch (and so an alarm) sees it. */
export function dimensionsOf(stage: string, extra: Record<string, string> = {}): Record<string, string> {
  return { service: METRIC_SERVICE, stage, ...extra };
}
