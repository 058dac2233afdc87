import { createHash } from "node:crypto";
import { gitlabRunnerTokenSecrets, resourcePrefix } from "../deploy";
import type { GitLabRunnerScope, PoolConfig } from "../pools";

/** What Hearth asks of the GitLab API. Tests fake it at the HTTP boundary, not here. */
export interface GitLabJobs {
  /** The tags a job asked for (`tag_list` of `GET /projects/:id/jobs/:job_id`). */
  tagList(projectId: string, jobId: string): Promise<string[]>;
  /**
   * `POST /projects/:id/jobs/:job_id/retry` (a token with the `api` scope): the new job. GitLab
   * answers 403 for a job that has not finished. Absent where the API cannot retry.
   */
  retryJob?(projectId: string, jobId: string): Promise<{ id: string; status: string | null }>;
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

/**
 * An instance's runner manager id: `s_` and the first 12 hex digits of sha256(instance id). It has
 * the shape gitlab-runner gives its own generated `system_id`s (`s_` + 12 hex), and is derived from
 * the instance rather than from the image's machine id, so that two instances launched from one image
 * are never one manager.
 */
export function gitlabSystemId(instanceId: string): string {
  return `s_${createHash("sha256").update(instanceId).digest("hex").slice(0, 12)}`;
}

/**
 * What the control plane does with a pool runner's managers, with the runner's own authentication
 * token (`glrt-…`, a secret: never in an error, a log or a result).
 */
export interface GitLabRunnerManagers {
  /** DELETE /api/v4/runners/managers (form: token, system_id): 204 deleted, 404 already gone. */
  deleteManager(runnerToken: string, systemId: string): Promise<"deleted" | "already-gone">;
  /**
   * POST /api/v4/runners/verify with the token only: the runner's id. Never with a `system_id`, which
   * would register a manager as gitlab-runner does when it starts.
   */
  runnerId(runnerToken: string): Promise<number>;
}

/** GitLab refused a token: one line that says which token, never the token itself. */
export class GitLabTokenRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GitLabTokenRefused";
  }
}

/** A GitLab API call failed: the method, the path and the status, never a token. */
export class GitLabApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "GitLabApiError";
  }
}

/** The runner types of `POST /user/runners`, by where the runner is registered. */
export type GitLabRunnerType = "instance_type" | "group_type" | "project_type";

/** What `npm run runners` creates for one pool: its runner and the stage secret that holds its token. */
export interface PoolRunnerSpec {
  pool: string;
  scope: GitLabRunnerScope;
  runnerType: GitLabRunnerType;
  /** `hearth-<stage>-<pool>`: how an existing runner of the pool is recognised. */
  description: string;
  /** The pool's labels, as the runner's tags. */
  tagList: string[];
  /** The pool that takes untagged jobs runs them. */
  runUntagged: boolean;
  /** `GitlabRunnerToken<Pool>`, as infra declares it. */
  secretName: string;
  /** The pool's `maxJobMinutes` in seconds: GitLab ends a job that runs longer (`job_execution_timeout`). */
  maximumTimeout: number;
}

export const gitlabRunnerType = (scope: GitLabRunnerScope): GitLabRunnerType =>
  "project" in scope ? "project_type" : "group" in scope ? "group_type" : "instance_type";

/** The runners to create for a stage: one per pool that says where (`gitlab`), in config order. */
export function poolRunnerSpecs(stage: string, pools: readonly PoolConfig[]): PoolRunnerSpec[] {
  const secrets = gitlabRunnerTokenSecrets(pools);
  return pools.flatMap((pool) =>
    pool.gitlab === undefined
      ? []
      : [
          {
            pool: pool.name,
            scope: pool.gitlab,
            runnerType: gitlabRunnerType(pool.gitlab),
            description: `${resourcePrefix(stage)}-${pool.name}`,
            tagList: [...pool.labels],
            runUntagged: pool.untagged,
            secretName: secrets.get(pool.name) as string,
            maximumTimeout: pool.maxJobMinutes * 60,
          },
        ],
  );
}

/** A runner as GitLab's runner lists give it (the fields Hearth reads). */
export interface GitLabRunnerSummary {
  id: number;
  description: string | null;
  runner_type?: string;
}

/**
 * What `npm run runners` asks of GitLab with a user's token (`create_runner` scope): where a pool's
 * runner goes, whether it exists, and creating it.
 */
export interface GitLabRunnerAdmin {
  /** The numeric id of the scope's project or group (`GET /projects/:id`, `GET /groups/:id`); none for the instance. */
  namespaceId(scope: GitLabRunnerScope): Promise<number | undefined>;
  /** The scope's runners of the spec's type and tags whose description is the spec's. */
  existingRunners(spec: PoolRunnerSpec, namespaceId: number | undefined): Promise<GitLabRunnerSummary[]>;
  /** `POST /user/runners`: the new runner's id and its authentication token (`glrt-…`, a secret). */
  createRunner(spec: PoolRunnerSpec, namespaceId: number | undefined): Promise<{ id: number; token: string }>;
  /** `GET /runners/:id`: the runner's `maximum_timeout` in seconds (null: none). */
  maximumTimeout(runnerId: number): Promise<number | null>;
  /** `PUT /runners/:id` with `maximum_timeout`. */
  setMaximumTimeout(runnerId: number, seconds: number): Promise<void>;
}
