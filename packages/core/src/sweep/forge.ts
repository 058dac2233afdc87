import { GitHubRateLimited, type RunnerScope } from "../github-api";
import type { ListedRunner, ScopeRunners } from "../github-api/runners";
import type { JobEvent, JobKey } from "../jobs";
import { type Job, jobKeyString } from "../jobs";
import { denialText, type RateGovernor, readRateHeaders } from "../polling/governor";
import { jobEventFromWorkflowJob } from "../sources/github";
import { jobEventFromApiJob } from "../sources/gitlab";
import type { SweepDeps } from ".";

/**
 * The sweep's forge calls, each through its token's rate governor (the one polling uses), so that
 * the two together keep to their share of the budget. A call the governor holds back, a rate limit,
 * a 5xx, a page that is not whole: each is `Unknown`, never "nothing there".
 */

/** A forge answer the sweep could not get or read: what it says is unknown, not absent. */
export class Unknown extends Error {
  constructor(
    readonly listing: string,
    message: string,
  ) {
    super(message);
    this.name = "Unknown";
  }
}

const text = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** One GitHub call for the sweep: taken from the governor, its headers observed, its failure `Unknown`. */
export async function governedGitHub<T extends { headers: Record<string, string | number | undefined> }>(
  deps: Pick<SweepDeps, "governors" | "now">,
  runners: ScopeRunners,
  listing: string,
  call: () => Promise<T>,
): Promise<T> {
  if (!runners.bucket) throw new Unknown(listing, "this GitHub client cannot say its rate bucket");
  let governor: RateGovernor;
  try {
    governor = deps.governors.github.for(await runners.bucket());
  } catch (error) {
    throw new Unknown(listing, text(error));
  }
  const denial = governor.take();
  if (denial) throw new Unknown(listing, `not swept: ${denialText(denial, "GitHub")}`);
  try {
    const answer = await call();
    governor.observe(readRateHeaders(answer.headers, deps.now().getTime()));
    return answer;
  } catch (error) {
    if (error instanceof GitHubRateLimited) governor.backOff(error.retryAt.getTime());
    if (error instanceof Unknown) throw error;
    throw new Unknown(listing, text(error));
  }
}

/** The scope as an action's detail carries it (plain values), and back. */
export function scopeDetail(scope: RunnerScope): Record<string, string | number | null> {
  return "repository" in scope
    ? { repository: scope.repository, organization: null, runnerGroupId: null }
    : { repository: null, organization: scope.organization, runnerGroupId: scope.runnerGroupId };
}

export function scopeOf(detail: Record<string, string | number | null>): RunnerScope {
  if (typeof detail.repository === "string") return { repository: detail.repository };
  if (typeof detail.organization === "string" && typeof detail.runnerGroupId === "number")
    return { organization: detail.organization, runnerGroupId: detail.runnerGroupId };
  throw new Error("the action names no runner scope");
}

/** Every runner of a scope, page by page; `Unknown` if any page fails or the pages fall short of the count. */
export async function listScopeRunners(
  deps: Pick<SweepDeps, "governors" | "now">,
  runners: ScopeRunners,
  listing: string,
  maxPages = 20,
): Promise<ListedRunner[]> {
  const listRunners = runners.listRunners?.bind(runners);
  if (!listRunners) throw new Unknown(listing, "this GitHub client cannot list runners");
  const listed: ListedRunner[] = [];
  for (let page = 1; ; page++) {
    if (page > maxPages) throw new Unknown(listing, `more than ${maxPages} pages of runners`);
    const answer = await governedGitHub(deps, runners, listing, () => listRunners(page));
    listed.push(...answer.runners);
    if (listed.length >= answer.totalCount) return listed;
    if (answer.runners.length < answer.perPage) {
      throw new Unknown(listing, `${listed.length} of ${answer.totalCount} runners listed (a partial page)`);
    }
  }
}

/** `hearth-<instance id>-<slot>` (`runnerIdentity`): the instance and slot, or undefined for another name. */
export function parseHearthRunnerName(name: string): { instanceId: string; slot: number } | undefined {
  const match = /^hearth-([A-Za-z0-9][A-Za-z0-9-]{0,47})-(\d{1,2})$/.exec(name);
  if (!match?.[1] || match[2] === undefined) return undefined;
  return { instanceId: match[1], slot: Number(match[2]) };
}

/** One GitLab API call for the sweep through the API token's governor. */
export async function governedGitLab(
  deps: Pick<SweepDeps, "gitlab" | "governors" | "now">,
  listing: string,
  path: string,
): Promise<{ status: number; body: unknown; items: unknown[] | undefined; next: string | undefined }> {
  const gitlab = deps.gitlab;
  if (!gitlab) throw new Unknown(listing, "no GitLab API token is configured");
  const governor = deps.governors.gitlab;
  const denial = governor.take();
  if (denial) throw new Unknown(listing, `not swept: ${denialText(denial, "GitLab")}`);
  let page: Awaited<ReturnType<typeof gitlab.lists.page>>;
  try {
    page = await gitlab.lists.page(path);
  } catch (error) {
    throw new Unknown(listing, text(error));
  }
  const { answer } = page;
  governor.observe(readRateHeaders(answer.headers, deps.now().getTime()));
  if (answer.status === 429) throw new Unknown(listing, `${answer.where} answered 429 (rate limit)`);
  return { status: answer.status, body: answer.body, items: page.items, next: page.next };
}

/** A GitLab runner manager, as `GET /runners/:id/managers` lists it (the fields Hearth reads). */
export interface ListedManager {
  systemId: string;
  status: string;
  contactedAt: string | null;
}

/** Every manager of a pool runner; `Unknown` if a page fails or is not a whole list. */
export async function listManagers(
  deps: Pick<SweepDeps, "gitlab" | "governors" | "now">,
  runnerId: number,
  listing: string,
  maxPages = 20,
): Promise<ListedManager[]> {
  const managers: ListedManager[] = [];
  let path: string | undefined = `/runners/${runnerId}/managers?per_page=100`;
  for (let page = 1; path !== undefined; page++) {
    if (page > maxPages) throw new Unknown(listing, `more than ${maxPages} pages of managers`);
    const answer = await governedGitLab(deps, listing, path);
    if (answer.status !== 200 || answer.items === undefined) {
      throw new Unknown(
        listing,
        answer.status === 200
          ? "a page of managers that is not a whole list"
          : `GET /runners/${runnerId}/managers answered ${answer.status}`,
      );
    }
    for (const item of answer.items) {
      const manager = item as { system_id?: unknown; status?: unknown; contacted_at?: unknown } | null;
      if (typeof manager?.system_id !== "string" || typeof manager.status !== "string")
        throw new Unknown(listing, "a manager Hearth cannot read");
      managers.push({
        systemId: manager.system_id,
        status: manager.status,
        contactedAt: typeof manager.contacted_at === "string" ? manager.contacted_at : null,
      });
    }
    path = answer.next;
  }
  return managers;
}

/** A job the forge could not be asked about (its project is unknown: it was first seen in a heartbeat). */
export const readableAtForge = (job: Pick<Job, "source" | "project" | "projectId">): boolean =>
  job.source === "github" ? /^[^/\s]+\/[^/\s]+$/.test(job.project) : job.projectId !== null;

/** The API job's status as a `workflow_job` webhook's action. */
const githubAction = (status: unknown): string =>
  status === "queued" || status === "in_progress" || status === "completed" ? status : "waiting";

/**
 * A job's state as its forge says it now, as the webhooks' own event (`gone` when the forge has no
 * such job); `Unknown` when it cannot be read.
 */
export async function readForgeJob(
  deps: Pick<SweepDeps, "runners" | "gitlab" | "governors" | "now">,
  job: Pick<Job, "source" | "id" | "project" | "projectId">,
): Promise<{ event: JobEvent | undefined } | "gone"> {
  const listing = `job:${jobKeyString(job as JobKey)}`;
  if (!readableAtForge(job)) throw new Unknown(listing, "its project is unknown (first seen in a heartbeat)");
  if (job.source === "github") {
    const github = deps.runners.github;
    if (!github) throw new Unknown(listing, "no GitHub credentials are configured");
    const runners = github({ repository: job.project });
    const getJob = runners.getJob?.bind(runners);
    if (!getJob) throw new Unknown(listing, "this GitHub client cannot read a job");
    const answer = await governedGitHub(deps, runners, listing, async () => {
      const got = await getJob(job.id);
      return { got, headers: got?.headers ?? {} };
    });
    if (!answer.got) return "gone";
    try {
      return {
        event: jobEventFromWorkflowJob({
          action: githubAction((answer.got.job as { status?: unknown } | null)?.status),
          workflow_job: answer.got.job,
          repository: { full_name: job.project },
        }),
      };
    } catch (error) {
      throw new Unknown(listing, `GitHub answered a job Hearth cannot read: ${text(error)}`);
    }
  }
  const answer = await governedGitLab(
    deps,
    listing,
    `/projects/${encodeURIComponent(job.projectId ?? "")}/jobs/${encodeURIComponent(job.id)}`,
  );
  if (answer.status === 404) return "gone";
  if (answer.status !== 200)
    throw new Unknown(listing, `GET /projects/:id/jobs/:job_id answered ${answer.status}`);
  try {
    return { event: jobEventFromApiJob(answer.body, deps.gitlab?.url ?? "", deps.now()) };
  } catch (error) {
    throw new Unknown(listing, `GitLab answered a job Hearth cannot read: ${text(error)}`);
  }
}
