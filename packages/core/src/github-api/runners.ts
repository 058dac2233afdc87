import {
  describeScope,
  GitHubApiError,
  GitHubRateLimited,
  isHearthRunnerName,
  type JitRunner,
  type RunnerDeletion,
  type RunnerScope,
} from ".";
import type { GitHubClient, GitHubResponse, GitHubRoute } from "./client";
import { rerunFailedJobs } from "./reruns";

/**
 * Registering and removing a pool's just-in-time runners, for a repository or an organization's
 * runner group. Minting is counted in a bucket of its own, per installation (or token and scope):
 * GitHub limits runner registration apart from other calls, and a burst of slots must not spend the
 * budget that removal and lookups need.
 */

export interface MintingBudgetOptions {
  /** JIT configs minted per bucket within `windowSeconds` before Hearth stops asking. */
  mintsPerWindow?: number;
  windowSeconds?: number;
  now?: () => number;
}

export interface BucketState {
  /** Mints counted in the current window. */
  minted: number;
  /** GitHub's `x-ratelimit-*` headers of the last mint's answer, when it sent them. */
  limit?: number;
  remaining?: number;
  resetAt?: Date;
  resource?: string;
  /** No mint before this: a secondary rate limit, or the bucket is spent. */
  blockedUntil?: Date;
}

export class MintingBudget {
  private readonly buckets = new Map<
    string,
    { mints: number[]; headers: Omit<BucketState, "minted">; blockedUntil?: number }
  >();
  private readonly mintsPerWindow: number;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(options: MintingBudgetOptions = {}) {
    this.mintsPerWindow = options.mintsPerWindow ?? 500;
    this.windowMs = (options.windowSeconds ?? 3600) * 1000;
    this.now = options.now ?? Date.now;
  }

  private bucket(key: string) {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { mints: [], headers: {} };
      this.buckets.set(key, bucket);
    }
    const since = this.now() - this.windowMs;
    bucket.mints = bucket.mints.filter((at) => at > since);
    return bucket;
  }

  state(key: string): BucketState {
    const bucket = this.bucket(key);
    const blockedUntil = this.blockedUntil(key);
    return { minted: bucket.mints.length, ...bucket.headers, ...(blockedUntil ? { blockedUntil } : {}) };
  }

  /** When the next mint may go out, or undefined when it may go now. */
  blockedUntil(key: string): Date | undefined {
    const bucket = this.bucket(key);
    const now = this.now();
    const until = [bucket.blockedUntil ?? 0];
    if (bucket.headers.remaining === 0 && bucket.headers.resetAt)
      until.push(bucket.headers.resetAt.getTime());
    const oldest = bucket.mints[0];
    if (bucket.mints.length >= this.mintsPerWindow && oldest !== undefined)
      until.push(oldest + this.windowMs);
    const latest = Math.max(...until);
    return latest > now ? new Date(latest) : undefined;
  }

  /** Throws `GitHubRateLimited` when the bucket allows no mint now. */
  take(key: string, scope: string): void {
    const until = this.blockedUntil(key);
    if (until) {
      throw new GitHubRateLimited(
        `minting runners for ${scope}: Hearth's budget is spent until ${until.toISOString()}`,
        until,
      );
    }
    this.bucket(key).mints.push(this.now());
  }

  /** What GitHub said about the bucket in its answer's headers. */
  observe(key: string, headers: GitHubResponse["headers"]): void {
    const number = (name: string) => {
      const value = Number(headers[name]);
      return headers[name] !== undefined && Number.isFinite(value) ? value : undefined;
    };
    const reset = number("x-ratelimit-reset");
    const resource = headers["x-ratelimit-resource"];
    this.bucket(key).headers = {
      ...(number("x-ratelimit-limit") !== undefined ? { limit: number("x-ratelimit-limit") } : {}),
      ...(number("x-ratelimit-remaining") !== undefined
        ? { remaining: number("x-ratelimit-remaining") }
        : {}),
      ...(reset !== undefined ? { resetAt: new Date(reset * 1000) } : {}),
      ...(typeof resource === "string" ? { resource } : {}),
    };
  }

  /** GitHub said to wait (a secondary limit the client's retries did not outlast). */
  backOff(key: string, until: Date): void {
    const bucket = this.bucket(key);
    bucket.blockedUntil = Math.max(bucket.blockedUntil ?? 0, until.getTime());
  }
}

export interface JitConfigRequest {
  name: string;
  labels: readonly string[];
  /** The organization's runner group; the scope's by default. Repositories have none. */
  runnerGroupId?: number;
}

/** A runner as GitHub's runner listings give it (the fields Hearth reads). */
export interface ListedRunner {
  id: number;
  name: string;
  status: "online" | "offline";
  busy: boolean;
}

/** One page of a scope's runners, with the answer's headers (for the rate governor). */
export interface RunnerPage {
  runners: ListedRunner[];
  /** How many runners GitHub counts in the whole listing. */
  totalCount: number;
  /** Items a whole page holds: a shorter page before `totalCount` is reached was cut. */
  perPage: number;
  headers: GitHubResponse["headers"];
}

export interface ScopeRunners {
  /**
   * Registers a just-in-time runner and returns its id and config. A name that already exists is a
   * leftover of an earlier attempt: if it is Hearth's, it is deleted and the mint retried once (as
   * actions-runner-controller does); another's name is an error.
   */
  generateJitConfig(request: JitConfigRequest): Promise<JitRunner>;
  /** Deletes a runner by its recorded id: deleted, already gone, or busy with a job (retry later). */
  deleteRunner(runnerId: number): Promise<RunnerDeletion>;
  /**
   * A repository scope's run re-runs its failed jobs (`reruns.ts`): `not-completed` while the run has
   * not completed. Absent for an organization's scope, which names no repository.
   */
  rerunFailedJobs?(runId: string): Promise<"rerun" | "not-completed">;
  /** The rate bucket the scope's calls count in (its installation, or the token): the governors' key. */
  bucket?(): Promise<string>;
  /** One page (from 1) of the scope's runners, 100 a page (the sweep lists them). */
  listRunners?(page: number): Promise<RunnerPage>;
  /** One runner by id, fresh; undefined when GitHub has none by that id. */
  getRunner?(
    runnerId: number,
  ): Promise<{ runner: ListedRunner | undefined; headers: GitHubResponse["headers"] }>;
  /**
   * A repository scope's job by id (`GET /repos/{owner}/{repo}/actions/jobs/{job_id}`), as the API
   * gives it; undefined when GitHub has none by that id. Absent for an organization's scope.
   */
  getJob?(jobId: string): Promise<{ job: unknown; headers: GitHubResponse["headers"] } | undefined>;
}

const RUNNERS_PER_PAGE = 100;

/** A runner of a listing, or undefined when the item is not one Hearth can read. */
function listedRunner(item: unknown): ListedRunner | undefined {
  const runner = item as { id?: unknown; name?: unknown; status?: unknown; busy?: unknown } | null;
  if (
    typeof runner?.id !== "number" ||
    typeof runner.name !== "string" ||
    (runner.status !== "online" && runner.status !== "offline") ||
    typeof runner.busy !== "boolean"
  )
    return undefined;
  return { id: runner.id, name: runner.name, status: runner.status, busy: runner.busy };
}

const isNameConflict = (error: unknown): boolean =>
  error instanceof GitHubApiError &&
  (error.status === 422 || error.status === 409) &&
  /already exists/i.test(error.message);

export function runnersFor(client: GitHubClient, scope: RunnerScope, budget: MintingBudget): ScopeRunners {
  const org = "organization" in scope;
  const base = org ? "/orgs/{org}/actions/runners" : "/repos/{owner}/{repo}/actions/runners";
  const route = (method: "GET" | "POST" | "DELETE", tail = ""): GitHubRoute => `${method} ${base}${tail}`;

  async function deleteRunner(runnerId: number): Promise<RunnerDeletion> {
    try {
      await client.request(scope, route("DELETE", "/{runner_id}"), { runner_id: runnerId });
      return "deleted";
    } catch (error) {
      if (error instanceof GitHubApiError && error.status === 404) return "already-gone";
      // GitHub answers 422 while the runner runs a job; it may be deleted after the job.
      if (error instanceof GitHubApiError && error.status === 422) return "busy";
      throw error;
    }
  }

  async function runnerIdByName(name: string): Promise<number | undefined> {
    const response = await client.request(scope, route("GET"), { name, per_page: 100 });
    const runners = (response.data as { runners?: { id: number; name: string }[] }).runners ?? [];
    return runners.find((runner) => runner.name === name)?.id;
  }

  async function mint(bucket: string, request: JitConfigRequest): Promise<GitHubResponse> {
    budget.take(bucket, describeScope(scope));
    try {
      const response = await client.request(scope, route("POST", "/generate-jitconfig"), {
        name: request.name,
        labels: [...request.labels],
        // Required by the API for repositories too, where 1 is the only group.
        runner_group_id: request.runnerGroupId ?? (org ? scope.runnerGroupId : 1),
      });
      budget.observe(bucket, response.headers);
      return response;
    } catch (error) {
      if (error instanceof GitHubRateLimited) budget.backOff(bucket, error.retryAt);
      throw error;
    }
  }

  return {
    deleteRunner,
    ...("repository" in scope
      ? {
          rerunFailedJobs: (runId: string) => rerunFailedJobs(client, scope.repository, runId),
          async getJob(jobId: string) {
            if (!/^\d{1,20}$/.test(jobId)) throw new Error(`${JSON.stringify(jobId)} is not a GitHub job id`);
            try {
              const response = await client.request(
                scope,
                "GET /repos/{owner}/{repo}/actions/jobs/{job_id}" as GitHubRoute,
                { job_id: jobId },
              );
              return { job: response.data, headers: response.headers };
            } catch (error) {
              if (error instanceof GitHubApiError && error.status === 404) return undefined;
              throw error;
            }
          },
        }
      : {}),
    bucket: () => client.bucketOf(scope),
    async listRunners(page) {
      const response = await client.request(scope, route("GET"), { per_page: RUNNERS_PER_PAGE, page });
      const data = response.data as { total_count?: unknown; runners?: unknown } | null;
      if (typeof data?.total_count !== "number" || !Array.isArray(data.runners)) {
        throw new GitHubApiError(
          `${describeScope(scope)}: the runners listing answered a page that is not one`,
          response.status,
        );
      }
      const runners = data.runners.map(listedRunner);
      if (runners.some((runner) => runner === undefined)) {
        throw new GitHubApiError(
          `${describeScope(scope)}: the runners listing holds a runner Hearth cannot read`,
          response.status,
        );
      }
      return {
        runners: runners as ListedRunner[],
        totalCount: data.total_count,
        perPage: RUNNERS_PER_PAGE,
        headers: response.headers,
      };
    },
    async getRunner(runnerId) {
      try {
        const response = await client.request(scope, route("GET", "/{runner_id}"), { runner_id: runnerId });
        const runner = listedRunner(response.data);
        if (!runner)
          throw new GitHubApiError(
            `${describeScope(scope)}: runner ${runnerId} is not one Hearth can read`,
            response.status,
          );
        return { runner, headers: response.headers };
      } catch (error) {
        if (error instanceof GitHubApiError && error.status === 404)
          return { runner: undefined, headers: {} };
        throw error;
      }
    },
    async generateJitConfig(request) {
      if (request.labels.length === 0) throw new Error(`runner ${request.name} needs at least one label`);
      const bucket = await client.bucketOf(scope);
      let response: GitHubResponse;
      try {
        response = await mint(bucket, request);
      } catch (error) {
        if (!isNameConflict(error)) throw error;
        const existing = await runnerIdByName(request.name);
        if (existing !== undefined) {
          if (!isHearthRunnerName(request.name)) {
            throw new GitHubApiError(
              `runner ${request.name} already exists in ${describeScope(scope)} and is not Hearth's`,
              422,
            );
          }
          const deletion = await deleteRunner(existing);
          if (deletion === "busy") {
            throw new GitHubApiError(
              `runner ${request.name} already exists in ${describeScope(scope)} and runs a job`,
              422,
            );
          }
        }
        response = await mint(bucket, request);
      }
      const data = response.data as { runner?: { id?: unknown }; encoded_jit_config?: unknown };
      const runnerId = data.runner?.id;
      const encodedJitConfig = data.encoded_jit_config;
      if (typeof runnerId !== "number" || typeof encodedJitConfig !== "string") {
        throw new GitHubApiError(
          `generate-jitconfig for ${request.name} answered without a runner id or config`,
          response.status,
        );
      }
      return { runnerId, encodedJitConfig };
    },
  };
}
