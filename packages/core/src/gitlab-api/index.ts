import { Jobs } from "@gitbeaker/rest";

/** What Hearth asks of the GitLab API. Tests fake it at the HTTP boundary, not here. */
export interface GitLabJobs {
  /** The tags a job asked for (`tag_list` of `GET /projects/:id/jobs/:job_id`). */
  tagList(projectId: string, jobId: string): Promise<string[]>;
}

/**
 * No API can say this job's tags (local mode without a GitLab API, for a job its simulated forge does
 * not know): the job is routed as untagged. The host says so once, not once per job.
 */
export class TagsUnavailable extends Error {
  constructor(jobId: string) {
    super(`no GitLab API can look up the tags of job ${jobId}`);
    this.name = "TagsUnavailable";
  }
}

export interface GitLabApiConfig {
  url: string;
  token: string;
  /** Per request; the lookup runs after the webhook has answered, but must not pile up. */
  timeoutMs?: number;
}

export function createGitLabJobs(config: GitLabApiConfig): GitLabJobs {
  const jobs = new Jobs({
    host: config.url.replace(/\/+$/, ""),
    token: config.token,
    queryTimeout: config.timeoutMs ?? 5_000,
    // Hearth paces itself; gitbeaker's client-side limiter would only add latency.
    rateLimits: {},
  });
  return {
    async tagList(projectId, jobId) {
      const job = await jobs.show(projectId, Number(jobId));
      const tags = job.tag_list;
      if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === "string")) {
        throw new Error(`GitLab job ${jobId} has no tag_list`);
      }
      // What the ledger can hold (an item is at most 400 KB): GitLab's own limits are far below this.
      if (tags.length > 100 || tags.some((tag) => tag.length > 256)) {
        throw new Error(`GitLab job ${jobId} has more or longer tags than Hearth accepts`);
      }
      return tags;
    },
  };
}
