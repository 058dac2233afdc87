/**
 * GitHub's side of a runner's identity: where a runner registers, its name and labels, and the
 * errors the API client raises. Pure and dependency-free; the client itself (Octokit and its plugins)
 * is `github-api/client`, loaded only by the code that calls GitHub.
 */

/** Where a pool's runners register: a repository, or an organization's runner group. */
export type RunnerScope = { repository: string } | { organization: string; runnerGroupId: number };

/** `owner/name` or `org`, for messages and rate buckets. */
export const describeScope = (scope: RunnerScope): string =>
  "repository" in scope
    ? scope.repository
    : `org ${scope.organization} (runner group ${scope.runnerGroupId})`;

/** Every runner Hearth registers is named so, and only those may Hearth delete when a name collides. */
export const hearthRunnerPrefix = "hearth-";

export const isHearthRunnerName = (name: string): boolean => name.startsWith(hearthRunnerPrefix);

export interface RunnerIdentityInput {
  /** The EC2 instance id (`i-…`), or a simulated instance's id in local mode. */
  instanceId: string;
  /** The job slot on that instance, from 0. */
  slot: number;
  pool: { labels: readonly string[]; architecture: "x86_64" | "arm64" };
}

export interface RunnerIdentity {
  name: string;
  labels: string[];
}

/**
 * A slot's runner: `hearth-<instance>-<slot>`, with the pool's labels plus `self-hosted` and the
 * architecture as GitHub names it (`x64`, `arm64`), the labels a job's `runs-on` may ask for.
 */
export function runnerIdentity({ instanceId, slot, pool }: RunnerIdentityInput): RunnerIdentity {
  if (!/^[A-Za-z0-9][A-Za-z0-9-]{0,47}$/.test(instanceId)) {
    throw new Error(`instance id "${instanceId}" is not letters, digits and "-" (at most 48)`);
  }
  if (!Number.isInteger(slot) || slot < 0 || slot > 63) {
    throw new Error(`slot ${slot} is not a whole number from 0 to 63`);
  }
  const architecture = pool.architecture === "arm64" ? "arm64" : "x64";
  const labels = [...new Set([...pool.labels, "self-hosted", architecture])];
  return { name: `${hearthRunnerPrefix}${instanceId}-${slot}`, labels };
}

/**
 * The GitHub App cannot authenticate: its private key is expired, revoked or wrong, or the app is not
 * installed where a pool's runners register. Names the app id, never the key or a token. Calls that
 * need the app fail fast with this error until `retryAt`, so that a bad key is an alarm, not a loop.
 */
export class GitHubAuthError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly retryAt: Date,
  ) {
    super(message);
    this.name = "GitHubAuthError";
  }
}

/** GitHub refused a call for its rate limits, after Hearth's bounded retries; try after `retryAt`. */
export class GitHubRateLimited extends Error {
  constructor(
    message: string,
    readonly retryAt: Date,
  ) {
    super(message);
    this.name = "GitHubRateLimited";
  }
}

/** Any other failed call: the method, the path (no query) and GitHub's status and message. */
export class GitHubApiError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
    this.name = "GitHubApiError";
  }
}

export interface JitRunner {
  runnerId: number;
  /** The runner's whole registration; a secret, handed only to the instance that runs the slot. */
  encodedJitConfig: string;
}

export type RunnerDeletion = "deleted" | "already-gone" | "busy";
