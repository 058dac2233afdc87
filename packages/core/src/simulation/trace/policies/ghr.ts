import type { SimInstance, SimJob, SimPool } from "../fleet";
import { every, type Policy, type PolicyContext } from "../policy";

/**
 * `ghr`: terraform-aws-github-runner (github-aws-runners/terraform-aws-github-runner, formerly
 * philips-labs), with ephemeral runners as its docs recommend for `workflow_job` scaling:
 * - the webhook puts the job on SQS with `delay_webhook_event` = 30 s (default), giving busy runners
 *   the chance to take it; the scale-up Lambda then checks the job is still queued
 *   (`enable_job_queued_check`) and creates one spot instance for it (always a fresh, cold one);
 * - an ephemeral runner takes one job, and its instance terminates itself when the job ends;
 * - the scale-down Lambda runs every 5 min (`scale_down_schedule_expression`) and terminates runners
 *   that are idle and older than `minimum_running_time_in_minutes` = 5;
 * - `job_retry` is enabled, so a job whose runner went to an older job is scaled up again;
 * - spot interruptions are not drained: the job is lost with the instance, retried, and the retry
 *   is a new queued event.
 * Best reasonable settings: `runners_maximum_count` is the fleet model's 50 per pool.
 */
export const ghr = {
  queueDelaySeconds: 30,
  scaleDownSeconds: 300,
  minimumRunningSeconds: 300,
  /** SQS visibility timeout before a failed scale-up message is delivered again. */
  retrySeconds: 30,
  /** `job_retry.delay_in_seconds`: when a job is checked again after its runner was created. */
  jobRetrySeconds: 300,
};

export function ghrPolicy(context: PolicyContext): Policy {
  const { fleet, clock, model } = context;
  // At `runners_maximum_count` the Lambda fails the message and SQS delivers it again after the
  // visibility timeout: failed messages wait in order and are retried together. An ephemeral runner
  // takes the oldest job, not necessarily its own, so `job_retry` checks each job again later and
  // scales up once more if it is still queued.
  const redeliver = new Map<SimPool, SimJob[]>();
  const scaleUp = (job: SimJob): boolean => {
    if (job.state !== "queued") return true;
    if (fleet.launch(job.pool, { market: "spot", group: "ephemeral", maxJobs: 1 }) === null) return false;
    clock.after(ghr.jobRetrySeconds, () => message(job));
    return true;
  };
  const retry = (pool: SimPool) => {
    const failed = redeliver.get(pool) ?? [];
    let done = 0;
    while (done < failed.length && scaleUp(failed[done] as SimJob)) done++;
    failed.splice(0, done);
    if (failed.length > 0) clock.after(ghr.retrySeconds, () => retry(pool));
  };
  const message = (job: SimJob) => {
    const failed = redeliver.get(job.pool) ?? [];
    redeliver.set(job.pool, failed);
    if (failed.length > 0) {
      failed.push(job);
      return;
    }
    if (scaleUp(job)) return;
    failed.push(job);
    clock.after(ghr.retrySeconds, () => retry(job.pool));
  };
  const scaleDown = () => {
    const now = fleet.now;
    for (const pool of fleet.pools) {
      const idle = pool.instances.filter(
        (i: SimInstance) =>
          i.state === "ready" && i.busy === 0 && now - i.launchedAt >= ghr.minimumRunningSeconds,
      );
      for (const instance of idle) fleet.terminate(instance);
    }
  };
  return {
    observer: {
      jobQueued: (job: SimJob) => {
        clock.after(model.webhookDelaySeconds + ghr.queueDelaySeconds, () => message(job));
      },
      jobFinished: (_job, instance: SimInstance) => fleet.terminate(instance),
    },
    start() {
      every(context, ghr.scaleDownSeconds, ghr.scaleDownSeconds, scaleDown);
    },
  };
}
