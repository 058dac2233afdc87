import { createAppAuth } from "@octokit/auth-app";
import { Octokit } from "@octokit/core";
import { retry } from "@octokit/plugin-retry";
import { throttling } from "@octokit/plugin-throttling";
import Bottleneck from "bottleneck";
import { GitHubApiError, GitHubAuthError, GitHubRateLimited, type RunnerScope } from ".";

/**
 * The GitHub API client: Octokit with the throttling and retry plugins on every call, authenticated
 * as a GitHub App (installation tokens per runner scope, renewed before they expire) or, in local mode
 * and development only, with a personal access token. Its own module, so that the API Lambda, which
 * never calls GitHub, does not load Octokit at init.
 */

export type GitHubCredentials =
  | { kind: "app"; appId: string | number; privateKey: string }
  | {
      kind: "personal-access-token";
      token: string;
      /** A token is a person's; a deployed stage authenticates as its App. The caller says which. */
      forLocalModeOnly: true;
    };

export interface GitHubClientConfig {
  credentials: GitHubCredentials;
  /** `https://api.github.com`, or a GitHub Enterprise Server's `https://ghe.example/api/v3`. */
  baseUrl?: string;
  /** An installation token is renewed when less than this is left of its life (GitHub gives an hour). */
  renewBeforeExpirySeconds?: number;
  /** After the App fails to authenticate, calls fail fast this long instead of asking GitHub again. */
  authFailureCooldownSeconds?: number;
  /** Retries after a primary or secondary rate limit, each after the wait GitHub asks for. */
  rateLimitRetries?: number;
  /** Retries of a 5xx or network failure (plugin-retry), after 1, 4, 9… times `retryAfterBaseMs`. */
  serverErrorRetries?: number;
  /** The unit of every retry wait; 1000 (seconds) except in tests. */
  retryAfterBaseMs?: number;
  /** GitHub asks integrations to space mutating calls by a second; tests lower it. */
  writeSpacingMs?: number;
  now?: () => number;
}

/** A call as Octokit takes it: `"POST /repos/{owner}/{repo}/…"` and its parameters. */
export type GitHubRoute = `${"GET" | "POST" | "DELETE" | "PUT" | "PATCH"} /${string}`;

export interface GitHubResponse {
  status: number;
  headers: Record<string, string | number | undefined>;
  data: unknown;
}

export interface GitHubClient {
  readonly baseUrl: string;
  /** What the rate bucket of `scope` is counted under: its installation, or the token. */
  bucketOf(scope: RunnerScope): Promise<string>;
  /**
   * One call for `scope`, authenticated as the App's installation there (or with the token). A 401
   * renews the installation token once. Failures are `GitHubApiError`, `GitHubAuthError` or
   * `GitHubRateLimited`, whose messages carry no token, key or response body beyond GitHub's message.
   */
  request(
    scope: RunnerScope,
    route: GitHubRoute,
    parameters?: Record<string, unknown>,
  ): Promise<GitHubResponse>;
  /**
   * One call authenticated as the App itself (its JWT), for the App's own endpoints (`/app/…`, e.g.
   * its webhook's deliveries); counted in the App's rate bucket, `appBucket`. Absent when the client
   * holds a personal access token, which cannot act as the App.
   */
  requestAsApp?(route: GitHubRoute, parameters?: Record<string, unknown>): Promise<GitHubResponse>;
  readonly appBucket?: string;
}

const defaultBaseUrl = "https://api.github.com";

/** `GET /repos/{owner}/{repo}/…` with its parameters filled in, without the query: safe to show. */
function describeCall(route: string, parameters: Record<string, unknown>): string {
  const [method, path = ""] = route.split(" ");
  const filled = path.replace(/\{(\w+)\}/g, (_, key: string) =>
    encodeURIComponent(String(parameters[key] ?? key)),
  );
  return `${method} ${filled}`;
}

/** What Octokit throws for an HTTP failure (`@octokit/request-error`), told by its shape. */
interface RequestError {
  status: number;
  response?: { headers?: Record<string, string | number | undefined>; data?: unknown };
}

const isRequestError = (error: unknown): error is RequestError =>
  error instanceof Error &&
  typeof (error as Partial<RequestError>).status === "number" &&
  "response" in error;

/** GitHub's own message for a failed call, cut short; never the request, which holds the token. */
function githubMessage(error: RequestError): string {
  const data = error.response?.data as { message?: unknown; errors?: unknown } | undefined;
  // Validation failures say what failed in `errors`: strings, or objects with a `message`.
  const details = (Array.isArray(data?.errors) ? data.errors : [])
    .map((item: unknown) =>
      typeof item === "string" ? item : (item as { message?: unknown } | null)?.message,
    )
    .filter((item): item is string => typeof item === "string");
  const message = [typeof data?.message === "string" ? data.message : "", ...details]
    .filter(Boolean)
    .join(": ");
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}

function headerSeconds(error: RequestError, name: string): number | undefined {
  const value = Number(error.response?.headers?.[name]);
  return Number.isFinite(value) ? value : undefined;
}

const isRateLimited = (error: RequestError): boolean =>
  (error.status === 403 || error.status === 429) &&
  (/rate limit/i.test(githubMessage(error)) ||
    headerSeconds(error, "retry-after") !== undefined ||
    error.response?.headers?.["x-ratelimit-remaining"] === "0");

/** Turns an Octokit failure into Hearth's own error, whose message names the call and nothing secret. */
export function toGitHubError(error: unknown, call: string, now: number): Error {
  if (!isRequestError(error)) {
    // A network failure after plugin-retry's retries; its message is Node's, which holds no header.
    const reason = error instanceof Error ? error.message : String(error);
    return new GitHubApiError(`${call} failed: ${reason.slice(0, 200)}`, undefined);
  }
  if (isRateLimited(error)) {
    const retryAfter = headerSeconds(error, "retry-after");
    const reset = headerSeconds(error, "x-ratelimit-reset");
    const retryAt =
      retryAfter !== undefined ? now + retryAfter * 1000 : reset !== undefined ? reset * 1000 : now + 60_000;
    return new GitHubRateLimited(
      `${call}: GitHub's rate limit (${error.status}), retry after ${new Date(retryAt).toISOString()}`,
      new Date(retryAt),
    );
  }
  return new GitHubApiError(`${call}: ${error.status} ${githubMessage(error)}`.trim(), error.status);
}

const scopeKey = (scope: RunnerScope): string =>
  "repository" in scope
    ? `repo:${scope.repository.toLowerCase()}`
    : `org:${scope.organization.toLowerCase()}`;

function scopeParameters(scope: RunnerScope): Record<string, string> {
  if ("organization" in scope) return { org: scope.organization };
  const [owner = "", repo = ""] = scope.repository.split("/");
  return { owner, repo };
}

export function createGitHubClient(config: GitHubClientConfig): GitHubClient {
  const baseUrl = (config.baseUrl ?? defaultBaseUrl).replace(/\/+$/, "");
  const now = config.now ?? Date.now;
  const renewBeforeMs = (config.renewBeforeExpirySeconds ?? 300) * 1000;
  const cooldownMs = (config.authFailureCooldownSeconds ?? 60) * 1000;
  const rateLimitRetries = config.rateLimitRetries ?? 2;
  const retryAfterBaseMs = config.retryAfterBaseMs ?? 1000;

  const HearthOctokit = Octokit.plugin(throttling, retry);
  const octokit = new HearthOctokit({
    baseUrl,
    userAgent: "hearth-control-plane",
    // Octokit's default logs to the console; Hearth reports failures through its own errors.
    log: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    retry: { retries: config.serverErrorRetries ?? 3, retryAfterBaseValue: retryAfterBaseMs },
    throttle: {
      // Unique per client: plugin-throttling paces calls per id, and each client is one identity.
      id: `hearth-${Math.random().toString(36).slice(2)}`,
      retryAfterBaseValue: retryAfterBaseMs,
      write: new Bottleneck.Group({ maxConcurrent: 1, minTime: config.writeSpacingMs ?? 1000 }),
      onRateLimit: (_after: number, _options: unknown, _octokit: unknown, retryCount: number) =>
        retryCount < rateLimitRetries,
      onSecondaryRateLimit: (_after: number, _options: unknown, _octokit: unknown, retryCount: number) =>
        retryCount < rateLimitRetries,
    },
  });

  const call = async (route: string, parameters: Record<string, unknown>): Promise<GitHubResponse> => {
    try {
      const response = await octokit.request(route, parameters);
      return { status: response.status, headers: response.headers, data: response.data };
    } catch (error) {
      throw toGitHubError(error, describeCall(route, parameters), now());
    }
  };

  if (config.credentials.kind === "personal-access-token") {
    const { token } = config.credentials;
    return {
      baseUrl,
      bucketOf: async (scope) => `token:${scopeKey(scope)}`,
      async request(scope, route, parameters = {}) {
        try {
          return await call(route, {
            ...scopeParameters(scope),
            ...parameters,
            headers: { authorization: `token ${token}` },
          });
        } catch (error) {
          if (error instanceof GitHubApiError && error.status === 401) {
            throw new GitHubAuthError(`GitHub refused the personal access token (401)`, 401, new Date(now()));
          }
          throw error;
        }
      },
    };
  }

  const { appId, privateKey } = config.credentials;
  // Installation tokens are requested through the same Octokit: the plugins and the base URL apply.
  const appAuth = createAppAuth({ appId, privateKey, request: octokit.request });
  const installations = new Map<string, Promise<number>>();
  const tokens = new Map<number, Promise<{ token: string; expiresAt: number }>>();
  let blocked: GitHubAuthError | undefined;

  const authFailure = (what: string, status: number | undefined): GitHubAuthError => {
    const retryAt = new Date(now() + cooldownMs);
    blocked = new GitHubAuthError(
      `GitHub App ${appId}: ${what}; calls resume after ${retryAt.toISOString()}`,
      status,
      retryAt,
    );
    return blocked;
  };

  const checkBlocked = () => {
    if (blocked && now() < blocked.retryAt.getTime()) throw blocked;
    blocked = undefined;
  };

  async function jwt(): Promise<string> {
    try {
      return (await appAuth({ type: "app" })).token;
    } catch {
      // The signing library's message may quote the key it could not read.
      throw authFailure("the private key cannot sign a JWT", undefined);
    }
  }

  async function findInstallation(scope: RunnerScope): Promise<number> {
    const route =
      "repository" in scope ? "GET /repos/{owner}/{repo}/installation" : "GET /orgs/{org}/installation";
    const parameters = scopeParameters(scope);
    try {
      const response = await call(route, {
        ...parameters,
        headers: { authorization: `bearer ${await jwt()}` },
      });
      const id = (response.data as { id?: unknown }).id;
      if (typeof id !== "number")
        throw new GitHubApiError(`${describeCall(route, parameters)}: no installation id`, 200);
      return id;
    } catch (error) {
      if (error instanceof GitHubApiError && error.status === 401) {
        throw authFailure(
          "GitHub refused the App's JWT (401): the private key is expired, revoked or not this App's",
          401,
        );
      }
      if (error instanceof GitHubApiError && error.status === 404) {
        throw new GitHubAuthError(
          `GitHub App ${appId} is not installed on ${scopeKey(scope).replace(/^\w+:/, "")}`,
          404,
          new Date(now()),
        );
      }
      throw error;
    }
  }

  function installationOf(scope: RunnerScope): Promise<number> {
    const key = scopeKey(scope);
    let found = installations.get(key);
    if (!found) {
      found = findInstallation(scope);
      installations.set(key, found);
      found.catch(() => installations.delete(key));
    }
    return found;
  }

  async function mintToken(installationId: number): Promise<{ token: string; expiresAt: number }> {
    try {
      // `refresh`: auth-app's own cache keeps a token 59 minutes whatever its expiry; Hearth renews
      // by the expiry GitHub gives.
      const auth = await appAuth({ type: "installation", installationId, refresh: true });
      return { token: auth.token, expiresAt: Date.parse(auth.expiresAt) };
    } catch (error) {
      if (error instanceof GitHubAuthError) throw error;
      if (isRequestError(error) && error.status === 401) {
        throw authFailure(
          `GitHub refused an installation token for installation ${installationId} (401)`,
          401,
        );
      }
      throw toGitHubError(error, `POST /app/installations/${installationId}/access_tokens`, now());
    }
  }

  async function tokenFor(installationId: number, renew: boolean): Promise<string> {
    const cached = tokens.get(installationId);
    const fresh = cached && !renew ? await cached.catch(() => undefined) : undefined;
    if (fresh && fresh.expiresAt - now() >= renewBeforeMs) return fresh.token;
    const minting = mintToken(installationId);
    tokens.set(installationId, minting);
    minting.catch(() => tokens.delete(installationId));
    return (await minting).token;
  }

  return {
    baseUrl,
    appBucket: `app:${appId}`,
    async requestAsApp(route, parameters = {}) {
      checkBlocked();
      try {
        return await call(route, { ...parameters, headers: { authorization: `bearer ${await jwt()}` } });
      } catch (error) {
        if (error instanceof GitHubApiError && error.status === 401) {
          throw authFailure(
            "GitHub refused the App's JWT (401): the private key is expired, revoked or not this App's",
            401,
          );
        }
        throw error;
      }
    },
    bucketOf: async (scope) => `installation:${await installationOf(scope)}`,
    async request(scope, route, parameters = {}) {
      checkBlocked();
      const installationId = await installationOf(scope);
      const send = async (renew: boolean) =>
        call(route, {
          ...scopeParameters(scope),
          ...parameters,
          headers: { authorization: `token ${await tokenFor(installationId, renew)}` },
        });
      try {
        return await send(false);
      } catch (error) {
        // A token revoked or expired early: one fresh token, then the failure stands.
        if (!(error instanceof GitHubApiError && error.status === 401)) throw error;
        try {
          return await send(true);
        } catch (again) {
          if (again instanceof GitHubApiError && again.status === 401) {
            throw authFailure(
              `GitHub refused a fresh installation token for installation ${installationId} (401)`,
              401,
            );
          }
          throw again;
        }
      }
    },
  };
}
