import { GitLabApiError } from ".";
import { type Answer, gitlabApiBase, gitlabCall } from "./runner-client";

/**
 * GitLab's list endpoints that polling reads, one page per call so that the caller's rate governor
 * sees every call: a project's pending and running jobs (keyset pagination, newest first), and a
 * group's projects (with its subgroups'). A page's next page is the `Link` header's `rel="next"`,
 * followed only when it points below the same API base, so the token never goes elsewhere.
 */

/** `GET /projects/:id/jobs` of pending and running jobs (https://docs.gitlab.com/api/jobs/#list-project-jobs). */
export const projectJobsPath = (project: string): string =>
  `/projects/${encodeURIComponent(project)}/jobs?${new URLSearchParams([
    ["scope[]", "pending"],
    ["scope[]", "running"],
    ["pagination", "keyset"],
    ["per_page", "100"],
  ])}`;

/** `GET /groups/:id/projects` with subgroups', unarchived (https://docs.gitlab.com/api/groups/#list-projects). */
export const groupProjectsPath = (group: string): string =>
  `/groups/${encodeURIComponent(group)}/projects?${new URLSearchParams({
    include_subgroups: "true",
    archived: "false",
    simple: "true",
    order_by: "id",
    sort: "asc",
    per_page: "100",
  })}`;

export interface GitLabListPage {
  answer: Answer;
  /** The page's items, when it answered 200 with a JSON list. */
  items: unknown[] | undefined;
  /** The next page's path below the API base, if there is one. */
  next: string | undefined;
}

export interface GitLabLists {
  /** The first page of a listing (a path below `/api/v4`), or a page `next` named. */
  page(path: string): Promise<GitLabListPage>;
}

export function createGitLabLists(config: { url: string; token: string; timeoutMs?: number }): GitLabLists {
  const base = gitlabApiBase(config.url);
  const timeoutMs = config.timeoutMs ?? 10_000;
  const nextOf = (link: string | null): string | undefined => {
    for (const part of (link ?? "").split(",")) {
      const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
      if (!match?.[1]) continue;
      if (!match[1].startsWith(`${base}/`)) {
        throw new GitLabApiError(`a next page outside ${base} (${new URL(match[1]).origin})`, 0);
      }
      return match[1].slice(base.length);
    }
    return undefined;
  };
  return {
    async page(path) {
      const answer = await gitlabCall(base, timeoutMs, { method: "GET", path, privateToken: config.token }, [
        config.token,
      ]);
      const items = answer.status === 200 && Array.isArray(answer.body) ? answer.body : undefined;
      return { answer, items, next: items ? nextOf(answer.headers.get("link")) : undefined };
    },
  };
}
