import { TagsUnavailable } from "../gitlab-api";
import { needsTagLookup, resolveTags } from "../ingest";
import type { Job } from "../jobs";
import { routeJob } from "../pools";
import { requestScale, type ScaleRequest, type ScalingDeps, type StartRun } from "./index";

/**
 * What follows "a webhook recorded a queued job", the same in every host: learn the job's tags if it
 * is a GitLab job whose Job Hook did not carry them, route it, and ask for capacity in its own pool
 * (a spare slot, or a ScaleFleet run when it holds the pool's lease).
 */

/**
 * How long a webhook may wait for GitLab's API to say a job's tags. GitHub and GitLab count a
 * delivery unanswered after 10 s as failed; the lookup must leave room for the rest of the request.
 */
export const TAG_LOOKUP_BUDGET_MS = 2_500;

export type AfterRecorded =
  /** The job is not queued (any more): nothing to scale for. */
  | { kind: "not_queued" }
  /**
   * The tags could not be looked up in time (GitLab slow or failing): no pool is asked, since the
   * job's own pool is not known. The minute tick looks them up again and scales for the job.
   */
  | { kind: "tags_pending"; error: string }
  | { kind: "unroutable"; reason: string }
  | {
      kind: "requested";
      pool: string;
      outcome: ScaleRequest;
      /** `looked_up`: from GitLab's API just now; `unknown`: they cannot be known, routed as untagged. */
      tags: "known" | "looked_up" | "unknown";
    };

export interface AfterRecordedDeps
  extends Pick<ScalingDeps, "pools" | "ledger" | "leases" | "scalingRecords" | "gitlab"> {
  /** Starts a ScaleFleet run (StartExecution in AWS, aws-local-stepfunctions locally). */
  startScaleFleet: StartRun;
  /** A new run's name, which is also its lease holder. */
  holder: (pool: string) => string;
  lookupBudgetMs?: number;
}

class LookupTimedOut extends Error {}

function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LookupTimedOut(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export async function afterJobRecorded(deps: AfterRecordedDeps, recorded: Job): Promise<AfterRecorded> {
  if (recorded.status !== "queued") return { kind: "not_queued" };
  let job = recorded;
  let tags: "known" | "looked_up" | "unknown" = "known";
  if (needsTagLookup(recorded)) {
    tags = "unknown";
    const { gitlab } = deps;
    if (gitlab) {
      try {
        const resolved = await within(
          resolveTags(deps.ledger, gitlab, recorded),
          deps.lookupBudgetMs ?? TAG_LOOKUP_BUDGET_MS,
        );
        if (resolved) {
          job = resolved;
          tags = "looked_up";
        }
      } catch (error) {
        // No API can say (local mode's simulated forge does not know the job): routed as untagged.
        if (!(error instanceof TagsUnavailable)) {
          return { kind: "tags_pending", error: error instanceof Error ? error.message : String(error) };
        }
      }
      if (job.status !== "queued") return { kind: "not_queued" };
    }
  }
  const route = routeJob(job, deps.pools);
  if (!("pool" in route)) return { kind: "unroutable", reason: route.unroutable };
  // Under warm-first placement a free slot may not take the job: its warm store, stopped, resumes
  // for it instead, which only a run decides. So a spare slot covers a job only where any free slot
  // takes it.
  const pool = deps.pools.find((candidate) => candidate.name === route.pool);
  const outcome = await requestScale(deps, route.pool, deps.startScaleFleet, deps.holder(route.pool), {
    covered: pool?.placement === "any",
  });
  return { kind: "requested", pool: route.pool, outcome, tags };
}
