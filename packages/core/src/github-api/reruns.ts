import { GitHubApiError } from ".";
import type { GitHubClient } from "./client";

/**
 * `POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs`: re-runs every failed job of
 * a run (and the jobs that depend on them) as the run's next attempt; 201 with an empty object
 * (https://docs.github.com/en/rest/actions/workflow-runs#re-run-failed-jobs-from-a-workflow-run).
 * GitHub answers 403 while the run has not completed ("This workflow is already running"): that is
 * `not-completed`, to try again when the run's `workflow_run` `completed` arrives. Needs the App's
 * `actions: write` permission on the repository.
 */
export async function rerunFailedJobs(
  client: GitHubClient,
  repository: string,
  runId: string,
): Promise<"rerun" | "not-completed"> {
  try {
    await client.request(
      { repository },
      "POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs",
      {
        run_id: Number(runId),
      },
    );
    return "rerun";
  } catch (error) {
    if (error instanceof GitHubApiError && error.status === 403) return "not-completed";
    throw error;
  }
}
