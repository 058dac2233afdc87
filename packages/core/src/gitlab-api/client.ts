import { Jobs } from "@gitbeaker/rest";
import type { GitLabApiConfig, GitLabJobs } from ".";

/**
 * The GitLab API client for tag lookups (@gitbeaker/rest). Its own module, so that only the functions
 * that look tags up load it: the API Lambda, which never does, stays small.
 */
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
    async retryJob(projectId, jobId) {
      const job = await jobs.retry(projectId, Number(jobId));
      if (typeof job.id !== "number") throw new Error(`GitLab's retry of job ${jobId} named no new job`);
      return { id: String(job.id), status: typeof job.status === "string" ? job.status : null };
    },
  };
}

export {
  createGitLabRunnerAdmin,
  createGitLabRunnerManagers,
  gitlabApiBase,
} from "./runner-client";
