import * as z from "zod";
import { GitHubAuthError, GitHubRateLimited } from "../github-api";
import type { GitHubClient, GitHubResponse, GitHubRoute } from "../github-api/client";
import type { JobEvent } from "../jobs";
import { jobEventFromWorkflowJob } from "../sources/github";
import {
  denialText,
  type GovernorReport,
  type RateGovernor,
  type RateGovernors,
  readRateHeaders,
  Unanswered,
} from "./governor";

/**
 * GitHub polling, the fallback for missed `workflow_job` webhooks. First the App's failed webhook
 * deliveries are recovered (GitHub never redelivers on its own): a failed `workflow_job` delivery is
 * read from the API (`GET /app/hook/deliveries/{id}`, its payload as GitHub sent it) and its job taken
 * from it; any other failed delivery, or one whose payload cannot be read, is redelivered. Reading
 * costs the same one call as a redelivery, and cannot fail the way the delivery did: a redelivery goes
 * to the endpoint that just failed, and is lost again as often. Then, for the repositories the ledger
 * says are active, the queued and in-progress runs are listed with their jobs (queued jobs hide inside
 * in-progress runs), each job read as the webhook's `workflow_job` (the API's job has its shape).
 *
 * Every call goes through the token's rate governor. A repository whose listing failed, was partial,
 * was rate-limited or was not reached is `unknown`: what was seen of it is true, but the absence of a
 * job from it says nothing. The client should be made with `rateLimitRetries: 0`, so that a limit
 * stops the poll through the governor instead of sleeping in the client.
 */

export interface GitHubPollState {
  /** The newest webhook delivery id a complete pass examined: the next pass stops there. */
  deliveriesCheckedThrough?: number;
  /** The repository the last poll ended with: the next one starts after it, so all get their turn. */
  resumeAfter?: string;
  /**
   * Redeliveries asked per delivery (its guid), so that a delivery whose redelivery failed too is
   * asked again, up to `MAX_REDELIVERY_ATTEMPTS`, and never without end. The most recent guids only.
   */
  redeliveries?: Record<string, number>;
  /** Failed deliveries (guids) whose payload was read and its job taken: not read again. The most recent only. */
  read?: string[];
}

/** Redeliveries Hearth asks of one delivery at most; past them, listing the runs covers its job. */
export const MAX_REDELIVERY_ATTEMPTS = 3;
/** Guids remembered (redeliveries asked, payloads read). */
const REMEMBERED_DELIVERIES = 1000;

export interface GitHubPollOptions {
  client: GitHubClient;
  governors: RateGovernors;
  /** `owner/name` of repositories with recent traffic or jobs in flight, by the ledger. */
  repositories: readonly string[];
  state?: GitHubPollState;
  now: () => number;
  /** A failed delivery older than this is not redelivered (GitHub keeps them 3 days); 1 day by default. */
  redeliverWithinSeconds?: number;
  /** Failed deliveries read or redelivered per poll at most; 25 by default. */
  maxRedeliveries?: number;
  /** Pages of one listing at most (100 items each) before it counts as partial; 10 by default. */
  maxPages?: number;
}

export type ListingStatus = "complete" | "unknown";

export interface RepositoryPoll {
  repository: string;
  status: ListingStatus;
  /** Why the listing is unknown. */
  reason?: string;
  /** Every job seen, as the webhook would have said it: true even when the listing is unknown. */
  events: JobEvent[];
}

export interface DeliveriesPoll {
  status: ListingStatus | "unavailable";
  reason?: string;
  /** Failed deliveries (their first delivery's ids) asked to be delivered again. */
  redelivered: number[];
  /** Failed `workflow_job` deliveries (ids) whose payload was read. */
  read: number[];
  /** The jobs those payloads describe, as their webhooks would have said them. */
  events: JobEvent[];
}

export interface GitHubPollResult {
  deliveries: DeliveriesPoll;
  /** Every active repository, in the order polled; those not reached are `unknown`. */
  repositories: RepositoryPoll[];
  state: GitHubPollState;
  /** Calls made and budget left, per rate bucket, for this poll. */
  budget: Record<string, GovernorReport>;
}

async function governed(
  governor: RateGovernor,
  now: () => number,
  send: () => Promise<GitHubResponse>,
): Promise<GitHubResponse> {
  const denial = governor.take();
  if (denial) throw new Unanswered(`not polled: ${denialText(denial, "GitHub")}`, true);
  try {
    const response = await send();
    governor.observe(readRateHeaders(response.headers, now()));
    return response;
  } catch (error) {
    if (error instanceof GitHubRateLimited) {
      governor.backOff(error.retryAt.getTime());
      throw new Unanswered(error.message, true);
    }
    if (error instanceof GitHubAuthError) throw new Unanswered(error.message, true);
    throw new Unanswered(error instanceof Error ? error.message : String(error), false);
  }
}

/** The `rel="next"` URL of a `Link` header, if any. */
export function nextLink(link: string | number | undefined | null): URL | undefined {
  if (typeof link !== "string") return undefined;
  for (const part of link.split(",")) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (match?.[1]) {
      try {
        return new URL(match[1]);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

const deliverySchema = z.object({
  id: z.number().int(),
  guid: z.string(),
  delivered_at: z.string(),
  redelivery: z.boolean(),
  status_code: z.number().int(),
  event: z.string(),
  action: z.string().nullable().optional(),
});
type Delivery = z.infer<typeof deliverySchema>;

/** Events Hearth reads: redelivering any other would cost a call for nothing. */
const handledEvents = new Set(["workflow_job", "workflow_run"]);

/** GitHub counts 200–399 as delivered; anything else (a 4xx, a 5xx, no answer in 10 s) failed. */
const failed = (delivery: Delivery) => delivery.status_code < 200 || delivery.status_code >= 400;

const deliveryPayloadSchema = z.object({ request: z.object({ payload: z.unknown() }) });

/**
 * The job a failed `workflow_job` delivery carried, read from the API; undefined when its payload is
 * missing or not a job (the delivery is then redelivered instead), null for an action Hearth ignores.
 */
async function readDelivery(
  asApp: NonNullable<GitHubClient["requestAsApp"]>,
  governor: RateGovernor,
  now: () => number,
  delivery: Delivery,
): Promise<JobEvent | null | undefined> {
  const response = await governed(governor, now, () =>
    asApp("GET /app/hook/deliveries/{delivery_id}" as GitHubRoute, { delivery_id: delivery.id }),
  );
  const parsed = deliveryPayloadSchema.safeParse(response.data);
  if (!parsed.success) return undefined;
  try {
    return jobEventFromWorkflowJob(parsed.data.request.payload) ?? null;
  } catch (error) {
    if (error instanceof z.ZodError) return undefined;
    throw error;
  }
}

interface RecoveredDeliveries {
  poll: DeliveriesPoll;
  newest: number | undefined;
  attempts: Record<string, number>;
  read: string[];
}

async function recoverFailed(options: GitHubPollOptions): Promise<RecoveredDeliveries> {
  const attempts: Record<string, number> = { ...(options.state?.redeliveries ?? {}) };
  const read = [...(options.state?.read ?? [])];
  const readGuids = new Set(read);
  const { client, now } = options;
  const redelivered: number[] = [];
  const readIds: number[] = [];
  const events: JobEvent[] = [];
  if (!client.requestAsApp || !client.appBucket) {
    return {
      poll: {
        status: "unavailable",
        reason: "a personal access token cannot read the App's webhook deliveries",
        redelivered,
        read: readIds,
        events,
      },
      newest: undefined,
      attempts,
      read,
    };
  }
  const asApp = client.requestAsApp.bind(client);
  const governor = options.governors.for(client.appBucket);
  const mark = options.state?.deliveriesCheckedThrough;
  const oldest = now() - (options.redeliverWithinSeconds ?? 86_400) * 1000;
  const maxRedeliveries = options.maxRedeliveries ?? 25;
  const maxPages = options.maxPages ?? 10;
  // Newest first: a delivery's redeliveries are newer than it, so they are seen before it.
  const settled = new Set<string>();
  const pending = new Map<string, Delivery>();
  let newest: number | undefined;
  let status: ListingStatus = "unknown";
  let reason: string | undefined;
  let cursor: string | undefined;
  try {
    pages: for (let page = 1; ; page++) {
      if (page > maxPages) {
        reason = `more than ${maxPages} pages of deliveries since the last complete pass`;
        break;
      }
      const response = await governed(governor, now, () =>
        asApp("GET /app/hook/deliveries", { per_page: 100, ...(cursor ? { cursor } : {}) }),
      );
      const items = z.array(deliverySchema).safeParse(response.data);
      if (!items.success) {
        reason = "GET /app/hook/deliveries answered a page that is not a list of deliveries";
        break;
      }
      for (const delivery of items.data) {
        if ((mark !== undefined && delivery.id <= mark) || Date.parse(delivery.delivered_at) < oldest) {
          status = "complete";
          break pages;
        }
        newest = Math.max(newest ?? delivery.id, delivery.id);
        if (!handledEvents.has(delivery.event) || settled.has(delivery.guid)) continue;
        if (readGuids.has(delivery.guid)) {
          settled.add(delivery.guid);
          pending.delete(delivery.guid);
          continue;
        }
        // A failed redelivery (seen before any attempt of its delivery that got through) is asked
        // again while attempts remain; one asked elsewhere (GitHub's UI) counts as one attempt.
        const spent =
          delivery.redelivery && attempts[delivery.guid] === undefined ? 1 : (attempts[delivery.guid] ?? 0);
        if (!failed(delivery) || spent >= MAX_REDELIVERY_ATTEMPTS) {
          // Delivered, or asked often enough: polling the runs covers the rest.
          settled.add(delivery.guid);
          pending.delete(delivery.guid);
        } else if (!pending.has(delivery.guid)) {
          pending.set(delivery.guid, delivery);
        }
      }
      cursor = nextLink(response.headers.link)?.searchParams.get("cursor") ?? undefined;
      if (!cursor) {
        status = "complete";
        break;
      }
    }
  } catch (error) {
    if (!(error instanceof Unanswered)) throw error;
    reason = error.message;
  }
  // A job's `queued` first (what scaling waits on; a lost `completed` can wait for the next poll),
  // then oldest first: the job that waits longest is told first.
  const queuedFirst = (delivery: Delivery) => (delivery.action === "queued" ? 0 : 1);
  for (const delivery of [...pending.values()].sort(
    (a, b) => queuedFirst(a) - queuedFirst(b) || a.id - b.id,
  )) {
    if (redelivered.length + readIds.length >= maxRedeliveries) {
      status = "unknown";
      reason = `more than ${maxRedeliveries} failed deliveries; the rest next poll`;
      break;
    }
    try {
      if (delivery.event === "workflow_job") {
        const event = await readDelivery(asApp, governor, now, delivery);
        if (event !== undefined) {
          if (event) events.push(event);
          readIds.push(delivery.id);
          read.push(delivery.guid);
          delete attempts[delivery.guid];
          continue;
        }
      }
      await governed(governor, now, () =>
        asApp("POST /app/hook/deliveries/{delivery_id}/attempts" as GitHubRoute, {
          delivery_id: delivery.id,
        }),
      );
      redelivered.push(delivery.id);
      const spent =
        delivery.redelivery && attempts[delivery.guid] === undefined ? 1 : (attempts[delivery.guid] ?? 0);
      delete attempts[delivery.guid];
      attempts[delivery.guid] = spent + 1;
    } catch (error) {
      if (!(error instanceof Unanswered)) throw error;
      status = "unknown";
      reason = error.message;
      if (error.stopsToken) break;
    }
  }
  return {
    poll: {
      status,
      ...(reason !== undefined && status !== "complete" ? { reason } : {}),
      redelivered,
      read: readIds,
      events,
    },
    // Only a complete pass moves the mark: an unfinished one is read again from the newest.
    newest: status === "complete" ? newest : undefined,
    attempts: Object.fromEntries(Object.entries(attempts).slice(-REMEMBERED_DELIVERIES)),
    read: read.slice(-REMEMBERED_DELIVERIES),
  };
}

const listSchema = z.object({ total_count: z.number().int().nonnegative() });

/**
 * Every item of a paginated Actions listing (`total_count` and a list), or an `Unanswered` when a
 * page failed or the pages together hold fewer items than `total_count` says.
 */
async function listAll(
  options: GitHubPollOptions,
  governor: RateGovernor,
  repository: string,
  route: GitHubRoute,
  parameters: Record<string, unknown>,
  key: "workflow_runs" | "jobs",
): Promise<unknown[]> {
  const items: unknown[] = [];
  const maxPages = options.maxPages ?? 10;
  for (let page = 1; ; page++) {
    if (page > maxPages) throw new Unanswered(`${route}: more than ${maxPages} pages`, false);
    const response = await governed(governor, options.now, () =>
      options.client.request({ repository }, route, { ...parameters, per_page: 100, page }),
    );
    const parsed = listSchema.safeParse(response.data);
    const pageItems = (response.data as Record<string, unknown> | null)?.[key];
    if (!parsed.success || !Array.isArray(pageItems))
      throw new Unanswered(`${route} answered a page that is not a listing`, false);
    items.push(...pageItems);
    const total = parsed.data.total_count;
    if (items.length >= total) return items;
    // A short page before the count is reached: the listing is cut, not empty.
    if (pageItems.length < 100) {
      throw new Unanswered(`${route}: ${items.length} of ${total} items listed (a partial page)`, false);
    }
  }
}

const runSchema = z.object({ id: z.number().int() });
const jobStatusSchema = z.object({ status: z.string() });

/** The `workflow_job` action a job of the API stands for; a job not yet queued is still waiting. */
const actionOf = (status: string): string =>
  status === "queued"
    ? "queued"
    : status === "in_progress"
      ? "in_progress"
      : status === "completed"
        ? "completed"
        : "waiting";

/** Lists the repository's queued and in-progress runs and their jobs into `events`. */
async function pollRepository(
  options: GitHubPollOptions,
  repository: string,
  governor: RateGovernor,
  events: JobEvent[],
): Promise<void> {
  const runsRoute = "GET /repos/{owner}/{repo}/actions/runs" as GitHubRoute;
  const jobsRoute = "GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs" as GitHubRoute;
  const runIds = new Set<number>();
  for (const status of ["queued", "in_progress"]) {
    const runs = await listAll(options, governor, repository, runsRoute, { status }, "workflow_runs");
    for (const run of runs) {
      const parsed = runSchema.safeParse(run);
      if (!parsed.success) throw new Unanswered(`${runsRoute} listed a run without an id`, false);
      runIds.add(parsed.data.id);
    }
  }
  for (const runId of runIds) {
    const jobs = await listAll(
      options,
      governor,
      repository,
      jobsRoute,
      { run_id: runId, filter: "latest" },
      "jobs",
    );
    for (const job of jobs) {
      const status = jobStatusSchema.safeParse(job);
      let event: JobEvent | undefined;
      try {
        event = jobEventFromWorkflowJob({
          action: actionOf(status.success ? status.data.status : ""),
          workflow_job: job,
          repository: { full_name: repository },
        });
      } catch (error) {
        if (error instanceof z.ZodError)
          throw new Unanswered(`run ${runId} listed a job Hearth cannot read`, false);
        throw error;
      }
      if (event) events.push(event);
    }
  }
}

/** The repositories in the order this poll takes them: after the one the last poll ended with. */
function rotation(repositories: readonly string[], resumeAfter: string | undefined): string[] {
  const unique = [...new Set(repositories)];
  const at = resumeAfter === undefined ? -1 : unique.indexOf(resumeAfter);
  return at < 0 ? unique : [...unique.slice(at + 1), ...unique.slice(0, at + 1)];
}

export async function pollGitHub(options: GitHubPollOptions): Promise<GitHubPollResult> {
  const { poll: deliveriesPoll, newest, attempts, read } = await recoverFailed(options);
  const repositories: RepositoryPoll[] = [];
  let resumeAfter = options.state?.resumeAfter;
  // Once the governor holds a token back (or GitHub limits it), the poll ends: the rest are not
  // reached, and the next poll starts with the repository it stopped at. (Reading another
  // repository's installation would itself cost the App a call.)
  let stop: string | undefined;
  for (const repository of rotation(options.repositories, options.state?.resumeAfter)) {
    if (stop !== undefined) {
      repositories.push({ repository, status: "unknown", reason: stop, events: [] });
      continue;
    }
    const events: JobEvent[] = [];
    try {
      const bucket = await options.client.bucketOf({ repository });
      await pollRepository(options, repository, options.governors.for(bucket), events);
      repositories.push({ repository, status: "complete", events });
      resumeAfter = repository;
    } catch (error) {
      const unanswered = error instanceof Unanswered;
      const reason = error instanceof Error ? error.message : String(error);
      repositories.push({ repository, status: "unknown", reason, events });
      if (unanswered && error.stopsToken) stop = reason;
      else resumeAfter = repository;
    }
  }
  return {
    deliveries: deliveriesPoll,
    repositories,
    state: {
      ...(newest !== undefined
        ? { deliveriesCheckedThrough: newest }
        : options.state?.deliveriesCheckedThrough !== undefined
          ? { deliveriesCheckedThrough: options.state.deliveriesCheckedThrough }
          : {}),
      ...(resumeAfter !== undefined ? { resumeAfter } : {}),
      ...(Object.keys(attempts).length ? { redeliveries: attempts } : {}),
      ...(read.length ? { read } : {}),
    },
    budget: options.governors.report(),
  };
}
