import { createHmac, randomUUID } from "node:crypto";
import type { Source } from "../../jobs/vocabulary";
import { signGitLabBody } from "../../sources/gitlab";

/**
 * A stand-in for GitLab and GitHub where there are none: local mode's simulated runners and the demo
 * use it to send the webhooks a forge would send, shaped and signed as the forges document them.
 */

export interface ForgeJob {
  source: Source;
  /** Numeric job id. */
  id: string;
  /** `owner/repo` or `group/project`. */
  project: string;
  /** GitLab's numeric project id. */
  projectId: string;
  pipelineId: string;
  name: string;
  labels: string[];
  /** GitHub's `run_attempt` (1 = first) or GitLab's `retries_count` (0 = first); the first when absent. */
  attempt?: number;
}

export interface ForgeSecrets {
  githubWebhookSecret: string;
  gitlabWebhookToken: string;
  gitlabSigningToken?: string | undefined;
}

export type GitHubAction = "queued" | "in_progress" | "completed";
export type GitLabStatus = "pending" | "running" | "success" | "failed" | "canceled";

export interface RunInfo {
  runnerName?: string;
  /** The runner's id on the forge (GitHub's runner, GitLab's runner of the pool); 1 when not given. */
  runnerId?: number;
  startedAt?: string;
  finishedAt?: string;
  conclusion?: "success" | "failure" | "cancelled";
  failureReason?: string;
  createdAt: string;
}

/** A `workflow_job` payload with the fields GitHub documents. */
export function workflowJobPayload(job: ForgeJob, action: GitHubAction, run: RunInfo) {
  const [owner, repo] = job.project.split("/");
  return {
    action,
    workflow_job: {
      id: Number(job.id),
      run_id: Number(job.pipelineId),
      run_attempt: job.attempt ?? 1,
      workflow_name: "CI",
      name: job.name,
      head_branch: "main",
      status: action,
      conclusion: action === "completed" ? (run.conclusion ?? "success") : null,
      created_at: run.createdAt,
      started_at: run.startedAt ?? run.createdAt,
      completed_at: action === "completed" ? (run.finishedAt ?? null) : null,
      labels: job.labels,
      runner_id: run.runnerName ? (run.runnerId ?? 1) : null,
      runner_name: run.runnerName ?? null,
      runner_group_id: run.runnerName ? 1 : null,
      runner_group_name: run.runnerName ? "Default" : null,
      html_url: `https://github.com/${job.project}/actions/runs/${job.pipelineId}/job/${job.id}`,
      steps: [],
    },
    repository: { id: 1, name: repo ?? job.project, full_name: job.project, owner: { login: owner ?? "" } },
    sender: { login: "hearth-demo", id: 1, type: "User" },
  };
}

/** A Job Hook payload with the fields GitLab documents. Like GitLab's, it carries no tags. */
export function jobHookPayload(job: ForgeJob, status: GitLabStatus, run: RunInfo) {
  const gitlabTime = (iso: string | undefined) => (iso ? `${iso.slice(0, 19).replace("T", " ")} UTC` : null);
  const started = status !== "pending";
  const queuedSeconds =
    run.startedAt && started
      ? Math.max(0, (Date.parse(run.startedAt) - Date.parse(run.createdAt)) / 1000)
      : 0;
  return {
    object_kind: "build",
    ref: "main",
    tag: false,
    build_id: Number(job.id),
    build_name: job.name,
    build_stage: "test",
    build_status: status,
    build_created_at: gitlabTime(run.createdAt),
    build_started_at: started ? gitlabTime(run.startedAt) : null,
    build_finished_at: ["success", "failed", "canceled"].includes(status) ? gitlabTime(run.finishedAt) : null,
    build_duration: null,
    build_queued_duration: queuedSeconds,
    build_allow_failure: false,
    build_failure_reason: status === "failed" ? (run.failureReason ?? "script_failure") : "unknown_failure",
    retries_count: job.attempt ?? 0,
    pipeline_id: Number(job.pipelineId),
    project_id: Number(job.projectId),
    project_name: job.project,
    project: {
      id: Number(job.projectId),
      name: job.project.split("/").pop(),
      web_url: `https://gitlab.example.com/${job.project}`,
      path_with_namespace: job.project,
    },
    runner: run.runnerName
      ? {
          id: run.runnerId ?? 1,
          description: run.runnerName,
          active: true,
          is_shared: false,
          runner_type: "group_type",
          tags: job.labels,
        }
      : null,
    environment: null,
  };
}

/**
 * A `workflow_run` payload with the fields GitHub documents (`@octokit/webhooks-examples`): what a
 * forge sends when a run attempt completes.
 */
export function workflowRunPayload(run: {
  repository: string;
  runId: string;
  attempt: number;
  conclusion: "success" | "failure" | "cancelled";
  createdAt: string;
  updatedAt: string;
}) {
  const [owner, repo] = run.repository.split("/");
  const base = `https://api.github.com/repos/${run.repository}/actions/runs/${run.runId}`;
  return {
    action: "completed",
    workflow_run: {
      id: Number(run.runId),
      name: "CI",
      run_number: Number(run.runId),
      run_attempt: run.attempt,
      event: "push",
      status: "completed",
      conclusion: run.conclusion,
      head_branch: "main",
      created_at: run.createdAt,
      updated_at: run.updatedAt,
      run_started_at: run.createdAt,
      html_url: `https://github.com/${run.repository}/actions/runs/${run.runId}`,
      jobs_url: `${base}/jobs`,
      rerun_url: `${base}/rerun`,
      previous_attempt_url: run.attempt > 1 ? `${base}/attempts/${run.attempt - 1}` : null,
    },
    repository: {
      id: 1,
      name: repo ?? run.repository,
      full_name: run.repository,
      owner: { login: owner ?? "" },
    },
    sender: { login: "hearth-demo", id: 1, type: "User" },
  };
}

export interface ForgeRequest {
  path: "/webhooks/github" | "/webhooks/gitlab";
  headers: Record<string, string>;
  body: string;
}

export function githubDelivery(
  payload: unknown,
  secrets: ForgeSecrets,
  event: "workflow_job" | "workflow_run" = "workflow_job",
): ForgeRequest {
  const body = JSON.stringify(payload);
  const signature = createHmac("sha256", secrets.githubWebhookSecret).update(body).digest("hex");
  return {
    path: "/webhooks/github",
    headers: {
      "content-type": "application/json",
      "user-agent": "GitHub-Hookshot/hearth-sim",
      "x-github-event": event,
      "x-github-delivery": randomUUID(),
      "x-hub-signature-256": `sha256=${signature}`,
    },
    body,
  };
}

export function gitlabDelivery(payload: unknown, secrets: ForgeSecrets, now: Date): ForgeRequest {
  const body = JSON.stringify(payload);
  const id = randomUUID();
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "GitLab/hearth-sim",
    "x-gitlab-event": "Job Hook",
    "x-gitlab-token": secrets.gitlabWebhookToken,
    "idempotency-key": id,
    "x-gitlab-event-uuid": randomUUID(),
  };
  if (secrets.gitlabSigningToken) {
    const timestamp = Math.floor(now.getTime() / 1000);
    headers["webhook-id"] = id;
    headers["webhook-timestamp"] = String(timestamp);
    headers["webhook-signature"] = signGitLabBody(id, timestamp, body, secrets.gitlabSigningToken);
  }
  return { path: "/webhooks/gitlab", headers, body };
}
