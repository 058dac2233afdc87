import type { Settings } from "@hearth/core/config";
import { type GitLabJobs, TagsUnavailable } from "@hearth/core/gitlab-api";
import { createGitLabJobs } from "@hearth/core/gitlab-api/client";
import type { Logger } from "../log";

/**
 * GitLab's API for tag lookups in local mode: the configured one (`GITLAB_URL`, `GITLAB_API_TOKEN`),
 * or, while simulating, the GitLab API this process plays (`/sim/gitlab`), which knows the tags of the
 * jobs the demo described and of no others. Any other job's tags cannot be known: it is routed as
 * untagged, and local mode says so once, not once per job.
 */
export function localGitLab(options: {
  settings: Settings;
  log: Logger;
  /** The simulated forge, when there is one: whether it described the job, and where it listens. */
  simulated?: { knows(jobId: string): boolean; url(): string };
}): GitLabJobs {
  const { settings, log, simulated } = options;
  if (settings.GITLAB_URL && settings.GITLAB_API_TOKEN) {
    return createGitLabJobs({ url: settings.GITLAB_URL, token: settings.GITLAB_API_TOKEN });
  }
  let said = false;
  const unavailable = (job: string) => {
    if (!said) {
      said = true;
      log.warn(
        "GitLab jobs' tags cannot be looked up: no GitLab API is configured (GITLAB_URL and GITLAB_API_TOKEN); " +
          "jobs whose tags are unknown go to the untagged pool. Said once.",
      );
    }
    return Promise.reject(new TagsUnavailable(job));
  };
  if (!simulated) return { tagList: (_project, job) => unavailable(job) };
  // The URL is known once the server listens; the client is made at the first call.
  let api: GitLabJobs | undefined;
  const client = () => {
    api ??= createGitLabJobs({
      url: `${simulated.url()}/sim/gitlab`,
      token: settings.STATUS_TOKEN ?? "local",
    });
    return api;
  };
  return {
    tagList(project, job) {
      if (!simulated.knows(job)) return unavailable(job);
      return client().tagList(project, job);
    },
    // The simulated GitLab retries the jobs it ran, with GitLab's rules (sim-forge-routes.ts).
    retryJob: (project, job) => (client().retryJob as NonNullable<GitLabJobs["retryJob"]>)(project, job),
  };
}
