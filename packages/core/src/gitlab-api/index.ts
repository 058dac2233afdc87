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
  /** Per request, so that lookups do not pile up; a webhook waits at most `TAG_LOOKUP_BUDGET_MS`. */
  timeoutMs?: number;
}
