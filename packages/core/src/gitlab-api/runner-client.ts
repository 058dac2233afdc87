import {
  type GitLabApiConfig,
  GitLabApiError,
  type GitLabRunnerAdmin,
  type GitLabRunnerManagers,
  type GitLabRunnerSummary,
  GitLabTokenRefused,
} from ".";

/**
 * GitLab's runner API over plain fetch: no gitbeaker, so that a function which only deletes runner
 * managers (the API Lambda, on a heartbeat) does not load the tag-lookup client at init.
 * `@hearth/core/gitlab-api/client` re-exports it.
 */

/** `https://example.com/gitlab/` → `https://example.com/gitlab/api/v4`: a path prefix is kept. */
export function gitlabApiBase(url: string): string {
  return `${url.replace(/\/+$/, "")}/api/v4`;
}

export interface Call {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Below `/api/v4`, with its query. */
  path: string;
  /** Sent as a form (`application/x-www-form-urlencoded`), as GitLab's runner endpoints document. */
  form?: Record<string, string>;
  /** Sent as JSON. */
  json?: unknown;
  /** `PRIVATE-TOKEN`: a personal, group or project access token. */
  privateToken?: string;
}

export interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
  /** `DELETE /api/v4/runners/managers` without its query: what errors name. */
  where: string;
}

/**
 * One GitLab API call. Tokens travel in headers or bodies only, never in the URL, and every error
 * says the method, path and status, with GitLab's message scrubbed of the tokens the call carried.
 */
export async function gitlabCall(
  base: string,
  timeoutMs: number,
  call: Call,
  secrets: string[],
): Promise<Answer> {
  const url = `${base}${call.path}`;
  const where = `${call.method} ${new URL(url).pathname}`;
  const headers: Record<string, string> = { accept: "application/json" };
  if (call.privateToken !== undefined) headers["private-token"] = call.privateToken;
  let body: string | undefined;
  if (call.form !== undefined) {
    headers["content-type"] = "application/x-www-form-urlencoded";
    body = new URLSearchParams(call.form).toString();
  } else if (call.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(call.json);
  }
  let response: Response;
  let text: string;
  try {
    response = await fetch(url, {
      method: call.method,
      headers,
      body,
      // A redirect would carry the token to wherever it points: it is reported, not followed.
      redirect: "manual",
      signal: AbortSignal.timeout(timeoutMs),
    });
    text = await response.text();
  } catch (error) {
    const cause =
      error instanceof Error
        ? error.name === "TimeoutError"
          ? `no answer in ${timeoutMs} ms`
          : ((error.cause as { code?: string } | undefined)?.code ?? error.message)
        : String(error);
    throw new GitLabApiError(`${where}: ${scrub(cause, secrets)}`, 0);
  }
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy's error page): the text is kept for the message.
  }
  return { status: response.status, body: parsed, headers: response.headers, where };
}

/** Replaces every secret in a text, so that GitLab echoing one back cannot put it in an error. */
function scrub(text: string, secrets: string[]): string {
  let clean = text;
  for (const secret of secrets) if (secret) clean = clean.split(secret).join("[redacted]");
  return clean;
}

/** GitLab's own words for a failed call (`message`, `error_description` or `error`), shortened. */
function gitlabMessage(answer: Answer, secrets: string[]): string {
  const body = answer.body as { message?: unknown; error?: unknown; error_description?: unknown } | null;
  const said =
    typeof body === "string"
      ? body
      : body && typeof body === "object"
        ? (body.error_description ?? body.message ?? body.error)
        : undefined;
  if (said === undefined || said === null || said === "") return "";
  const text = typeof said === "string" ? said : JSON.stringify(said);
  return `: ${scrub(text, secrets).replace(/\s+/g, " ").slice(0, 200)}`;
}

export function failed(answer: Answer, secrets: string[]): GitLabApiError {
  const redirected =
    answer.status >= 300 && answer.status < 400
      ? ` (a redirect to ${answer.headers.get("location") ?? "elsewhere"}: give the GitLab URL it leads to)`
      : "";
  return new GitLabApiError(
    `${answer.where} answered ${answer.status}${redirected || gitlabMessage(answer, secrets)}`,
    answer.status,
  );
}

/**
 * The runner-token half of GitLab's runner API: deleting an instance's manager when the instance
 * leaves, and the pool runner's id for the status. Plain fetch: these endpoints take the runner's
 * own token in the body, which gitbeaker's clients do not model.
 */
export function createGitLabRunnerManagers(config: {
  url: string;
  timeoutMs?: number;
}): GitLabRunnerManagers {
  const base = gitlabApiBase(config.url);
  const timeoutMs = config.timeoutMs ?? 5_000;
  const refused = (answer: Answer) =>
    new GitLabTokenRefused(
      `${answer.where} answered ${answer.status}: GitLab does not accept the pool's runner token (glrt-…); it is not valid, or its runner was deleted`,
    );
  return {
    async deleteManager(runnerToken, systemId) {
      const secrets = [runnerToken];
      const answer = await gitlabCall(
        base,
        timeoutMs,
        { method: "DELETE", path: "/runners/managers", form: { token: runnerToken, system_id: systemId } },
        secrets,
      );
      if (answer.status === 204) return "deleted";
      if (answer.status === 404) return "already-gone";
      if (answer.status === 403 || answer.status === 401) throw refused(answer);
      throw failed(answer, secrets);
    },
    async runnerId(runnerToken) {
      const secrets = [runnerToken];
      // No system_id: with one, verify registers a manager for it.
      const answer = await gitlabCall(
        base,
        timeoutMs,
        { method: "POST", path: "/runners/verify", form: { token: runnerToken } },
        secrets,
      );
      if (answer.status === 403 || answer.status === 401) throw refused(answer);
      if (answer.status !== 200) throw failed(answer, secrets);
      const id = (answer.body as { id?: unknown } | null)?.id;
      if (typeof id !== "number" || !Number.isInteger(id)) {
        throw new GitLabApiError(`${answer.where} answered without a runner id`, answer.status);
      }
      return id;
    },
  };
}

export function createGitLabRunnerAdmin(config: GitLabApiConfig): GitLabRunnerAdmin {
  const base = gitlabApiBase(config.url);
  const timeoutMs = config.timeoutMs ?? 10_000;
  const token = config.token;
  const call = async (request: Omit<Call, "privateToken">, secrets: string[] = []) => {
    const all = [token, ...secrets];
    const answer = await gitlabCall(base, timeoutMs, { ...request, privateToken: token }, all);
    if (answer.status === 401) {
      throw new GitLabTokenRefused(
        `${answer.where} answered 401: GitLab at ${config.url} does not accept the API token (unknown, expired or revoked)`,
      );
    }
    return answer;
  };
  const expectOk = (answer: Answer) => {
    if (answer.status < 200 || answer.status >= 300) throw failed(answer, [token]);
    return answer;
  };
  /** Every page of a runner list, following GitLab's `x-next-page`. */
  const list = async (path: string): Promise<GitLabRunnerSummary[]> => {
    const runners: GitLabRunnerSummary[] = [];
    for (let page = 1; page <= 100; ) {
      const answer = expectOk(await call({ method: "GET", path: `${path}&per_page=100&page=${page}` }));
      if (!Array.isArray(answer.body))
        throw new GitLabApiError(`${answer.where} answered no list`, answer.status);
      runners.push(...(answer.body as GitLabRunnerSummary[]));
      const next = Number(answer.headers.get("x-next-page"));
      if (!next || next <= page) break;
      page = next;
    }
    return runners;
  };
  return {
    async namespaceId(scope) {
      if ("instance" in scope) return undefined;
      const [kind, path] =
        "project" in scope ? (["projects", scope.project] as const) : (["groups", scope.group] as const);
      const answer = await call({ method: "GET", path: `/${kind}/${encodeURIComponent(path)}` });
      if (answer.status === 404) {
        throw new GitLabApiError(
          `${answer.where} answered 404: no ${kind === "projects" ? "project" : "group"} "${path}" that the API token can see`,
          404,
        );
      }
      const id = (expectOk(answer).body as { id?: unknown } | null)?.id;
      if (typeof id !== "number")
        throw new GitLabApiError(`${answer.where} answered without an id`, answer.status);
      return id;
    },
    async existingRunners(spec, namespaceId) {
      // By type and description, not by tags: a pool's runner whose tags were edited in GitLab is
      // still the pool's runner, and a second one would only duplicate it.
      const query = `?type=${spec.runnerType}`;
      const path =
        spec.runnerType === "project_type"
          ? `/projects/${namespaceId}/runners${query}`
          : spec.runnerType === "group_type"
            ? `/groups/${namespaceId}/runners${query}`
            : // Instance runners are listed to administrators only, as only they may create one.
              `/runners/all${query}`;
      const runners = await list(path);
      return runners.filter((runner) => runner.description === spec.description);
    },
    async createRunner(spec, namespaceId) {
      const answer = await call({
        method: "POST",
        path: "/user/runners",
        json: {
          runner_type: spec.runnerType,
          ...(spec.runnerType === "project_type" ? { project_id: namespaceId } : {}),
          ...(spec.runnerType === "group_type" ? { group_id: namespaceId } : {}),
          description: spec.description,
          tag_list: spec.tagList,
          run_untagged: spec.runUntagged,
          maximum_timeout: spec.maximumTimeout,
        },
      });
      if (answer.status === 403) {
        throw new GitLabTokenRefused(
          `${answer.where} answered 403${gitlabMessage(answer, [token])}: the API token may not create this runner; it needs the create_runner scope, and Maintainer on the project, Owner on the group, or an administrator for an instance runner`,
        );
      }
      expectOk(answer);
      const created = answer.body as { id?: unknown; token?: unknown } | null;
      if (typeof created?.id !== "number" || typeof created.token !== "string" || !created.token) {
        throw new GitLabApiError(`${answer.where} answered without a runner id and token`, answer.status);
      }
      return { id: created.id, token: created.token };
    },
    async maximumTimeout(runnerId) {
      const answer = expectOk(await call({ method: "GET", path: `/runners/${runnerId}` }));
      const timeout = (answer.body as { maximum_timeout?: unknown } | null)?.maximum_timeout;
      if (timeout === null || timeout === undefined) return null;
      if (typeof timeout !== "number") {
        throw new GitLabApiError(
          `${answer.where} answered a maximum_timeout that is not a number`,
          answer.status,
        );
      }
      return timeout;
    },
    async setMaximumTimeout(runnerId, seconds) {
      const answer = await call({
        method: "PUT",
        path: `/runners/${runnerId}`,
        json: { maximum_timeout: seconds },
      });
      if (answer.status === 403) {
        throw new GitLabTokenRefused(
          `${answer.where} answered 403${gitlabMessage(answer, [token])}: the API token may not change runner ${runnerId}; it needs the manage_runner (or api) scope, and the role that may create it`,
        );
      }
      expectOk(answer);
    },
  };
}
