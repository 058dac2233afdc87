import * as z from "zod";
import type { GitLabListPage, GitLabLists } from "../gitlab-api/job-lists";
import { groupProjectsPath, projectJobsPath } from "../gitlab-api/job-lists";
import type { JobEvent } from "../jobs";
import { jobEventFromApiJob } from "../sources/gitlab";
import type { ListingStatus } from "./github";
import { denialText, type GovernorReport, type RateGovernor, readRateHeaders, Unanswered } from "./governor";

/**
 * GitLab polling, the fallback for missed Job Hooks (GitLab disables a hook after 4 failures in a
 * row): the pending and running jobs of the configured projects, and of every project of the
 * configured groups, read as the Job Hook's events (with their tags, which the API says). One token,
 * one governor. A project whose listing failed, was cut, was rate-limited or was not reached is
 * `unknown`, never "no jobs".
 */

export interface GitLabPollState {
  /** Each group's projects as last listed (ids), and when: a group is listed again after the TTL. */
  groups?: Record<string, { projects: string[]; listedAt: number }>;
  /** The project the last poll ended with: the next one starts after it. */
  resumeAfter?: string;
}

export interface GitLabPollOptions {
  lists: GitLabLists;
  /** The GitLab URL the lists call (`https://gitlab.example.com`), to read projects' paths. */
  gitlabUrl: string;
  governor: RateGovernor;
  /** Projects by id or path (`group/project`). */
  projects: readonly string[];
  /** Groups by id or path; their subgroups' projects too. */
  groups?: readonly string[];
  state?: GitLabPollState;
  now: () => number;
  /** A group's projects are listed again after this long; 600 s by default. */
  groupProjectsTtlSeconds?: number;
  /** Pages of one listing at most before it counts as cut; 10 by default. */
  maxPages?: number;
}

export interface ProjectPoll {
  project: string;
  status: ListingStatus;
  reason?: string;
  /** Every job seen, as its Job Hook would have said it: true even when the listing is unknown. */
  events: JobEvent[];
}

export interface GroupPoll {
  group: string;
  status: ListingStatus;
  reason?: string;
  /** Projects of the group, listed now or remembered. */
  projects: number;
}

export interface GitLabPollResult {
  groups: GroupPoll[];
  /** The configured projects and the groups' projects, in the order polled. */
  projects: ProjectPoll[];
  state: GitLabPollState;
  /** Calls made and budget left, for this poll. */
  budget: GovernorReport;
}

/** Every item of a listing, one governed call per page; an `Unanswered` if any page is not whole. */
async function listAll(
  options: GitLabPollOptions,
  first: string,
  onPage: (items: unknown[]) => void = () => {},
): Promise<unknown[]> {
  const items: unknown[] = [];
  const maxPages = options.maxPages ?? 10;
  let path: string | undefined = first;
  for (let page = 1; path !== undefined; page++) {
    if (page > maxPages) throw new Unanswered(`more than ${maxPages} pages`, false);
    const denial = options.governor.take();
    if (denial) throw new Unanswered(`not polled: ${denialText(denial, "GitLab")}`, true);
    let answered: GitLabListPage;
    try {
      answered = await options.lists.page(path);
    } catch (error) {
      throw new Unanswered(error instanceof Error ? error.message : String(error), false);
    }
    const { answer } = answered;
    options.governor.observe(readRateHeaders(answer.headers, options.now()));
    if (answer.status === 429) throw new Unanswered(`${answer.where} answered 429 (rate limit)`, true);
    if (answer.status === 401 || answer.status === 403) {
      throw new Unanswered(`${answer.where} answered ${answer.status}: the API token may not read it`, false);
    }
    if (answered.items === undefined) {
      // A failure, or a 200 whose body is not a whole JSON list (a page cut short).
      throw new Unanswered(
        answer.status === 200
          ? `${answer.where} answered a page that is not a whole list`
          : `${answer.where} answered ${answer.status}`,
        false,
      );
    }
    items.push(...answered.items);
    onPage(answered.items);
    path = answered.next;
  }
  return items;
}

const projectSchema = z.object({ id: z.number().int() });

/** The projects to poll, in this poll's order: after the one the last poll ended with. */
function rotation(projects: readonly string[], resumeAfter: string | undefined): string[] {
  const unique = [...new Set(projects)];
  const at = resumeAfter === undefined ? -1 : unique.indexOf(resumeAfter);
  return at < 0 ? unique : [...unique.slice(at + 1), ...unique.slice(0, at + 1)];
}

export async function pollGitLab(options: GitLabPollOptions): Promise<GitLabPollResult> {
  const ttlMs = (options.groupProjectsTtlSeconds ?? 600) * 1000;
  const remembered = options.state?.groups ?? {};
  const groupsState: NonNullable<GitLabPollState["groups"]> = {};
  const groups: GroupPoll[] = [];
  let stop: string | undefined;
  const fromGroups: string[] = [];
  for (const group of options.groups ?? []) {
    const known = remembered[group];
    if (known && options.now() - known.listedAt < ttlMs) {
      groupsState[group] = known;
      groups.push({ group, status: "complete", projects: known.projects.length });
      fromGroups.push(...known.projects);
      continue;
    }
    try {
      if (stop !== undefined) throw new Unanswered(stop, true);
      const listed = await listAll(options, groupProjectsPath(group));
      const projects = listed.map((project) => {
        const parsed = projectSchema.safeParse(project);
        if (!parsed.success) throw new Unanswered(`group ${group} listed a project without an id`, false);
        return String(parsed.data.id);
      });
      groupsState[group] = { projects, listedAt: options.now() };
      groups.push({ group, status: "complete", projects: projects.length });
      fromGroups.push(...projects);
    } catch (error) {
      if (!(error instanceof Unanswered)) throw error;
      if (error.stopsToken) stop = error.message;
      // The group's projects as last known are still polled; the group's listing is unknown.
      if (known) {
        groupsState[group] = known;
        fromGroups.push(...known.projects);
      }
      groups.push({ group, status: "unknown", reason: error.message, projects: known?.projects.length ?? 0 });
    }
  }

  const projects: ProjectPoll[] = [];
  let resumeAfter = options.state?.resumeAfter;
  for (const project of rotation([...options.projects, ...fromGroups], resumeAfter)) {
    if (stop !== undefined) {
      projects.push({ project, status: "unknown", reason: stop, events: [] });
      continue;
    }
    const events: JobEvent[] = [];
    try {
      // Each page's jobs are kept as they come: a later page's failure leaves them true.
      await listAll(options, projectJobsPath(project), (jobs) => {
        const receivedAt = new Date(options.now());
        for (const job of jobs) {
          let event: JobEvent | undefined;
          try {
            event = jobEventFromApiJob(job, options.gitlabUrl, receivedAt);
          } catch (error) {
            if (error instanceof z.ZodError)
              throw new Unanswered(`project ${project} listed a job Hearth cannot read`, false);
            throw error;
          }
          if (event) events.push(event);
        }
      });
      projects.push({ project, status: "complete", events });
      resumeAfter = project;
    } catch (error) {
      if (!(error instanceof Unanswered)) throw error;
      projects.push({ project, status: "unknown", reason: error.message, events });
      if (error.stopsToken) stop = error.message;
      else resumeAfter = project;
    }
  }
  return {
    groups,
    projects,
    state: {
      ...(Object.keys(groupsState).length > 0 ? { groups: groupsState } : {}),
      ...(resumeAfter !== undefined ? { resumeAfter } : {}),
    },
    budget: options.governor.report(),
  };
}
