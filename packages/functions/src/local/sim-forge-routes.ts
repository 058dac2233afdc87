import type { ForgeJob } from "@hearth/core/simulation/forge";
import {
  githubDeliveryItem,
  githubHookDelivery,
  type SimulatedDeliveries,
} from "@hearth/core/simulation/forge/deliveries";
import type { FaultyForge, SimulatedListingFaults } from "@hearth/core/simulation/forge/faults";
import { simpleUser } from "@hearth/core/simulation/forge/github-shapes";
import type { SimulatedForgeJobs } from "@hearth/core/simulation/forge/jobs";
import type {
  CreateRunnerBody,
  GitHubAnswer,
  GitLabRunnerType,
  SimGitHubScope,
  SimulatedForgeRunners,
} from "@hearth/core/simulation/forge/runners";
import type { Context, Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { bearerMatches, readBody } from "../http";

/**
 * The simulated forges' runner APIs, as local mode serves them over HTTP:
 *
 * - GitHub's REST API for self-hosted runners at `/sim/github` (Octokit's `baseUrl`), for
 *   repositories and organizations: generate-jitconfig, list (by name), get, delete.
 * - GitLab's runner API at `/sim/gitlab/api/v4`: `POST /runners/verify`, `DELETE /runners/managers`,
 *   `GET /runners/:id/managers`, `POST /user/runners`, `GET /runners/:id` and `PUT /runners/:id`
 *   (its `maximum_timeout`).
 * - Retries (`simulation/forge/jobs.ts` has the rules): GitHub's
 *   `POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs` and GitLab's
 *   `POST /projects/:id/jobs/:job_id/retry`, when the simulation tracks its jobs.
 *
 * - Polling (`simulation/forge/jobs.ts` and `deliveries.ts` keep the state): GitHub's App webhook
 *   deliveries (`GET /app/hook/deliveries`, cursor pages; `GET …/deliveries/{id}` with its payload;
 *   `POST …/deliveries/{id}/attempts`, a redelivery sent after the 202), the App's installation
 *   (`GET /repos/{owner}/{repo}/installation`, `POST /app/installations/{id}/access_tokens`), a
 *   repository's runs by status and a run's jobs
 *   (`filter=latest`); GitLab's pending and running jobs of a project (keyset pages, `Link`
 *   `rel="next"`) and a group's projects.
 *
 * Each answers in its forge's shapes, errors included (GitHub: `{message, documentation_url, status}`;
 * GitLab: `{message}`). Bodies have the webhooks' limit (1 MiB). Authentication is each forge's: GitHub
 * wants a token in `Authorization` (the status token when one is set, any other token when not);
 * GitLab's runner-facing routes are authenticated by the runner's own token in the request, as
 * gitlab-runner calls them, and its user-facing ones by the status token like the other `/sim` routes.
 */

export interface SimForgeRouteOptions {
  /** The status token: when set, the simulated forges' user-facing APIs need it. */
  token: string | undefined;
  /** Called after a change, before the answer: local mode writes the state to `--data` first. */
  written?: () => void;
  /**
   * The forges' jobs and runs, for retries; `retried` gets the jobs a retry or re-run created, after
   * the answer is decided, to describe them to the simulation and send their webhooks.
   */
  jobs?: { forge: SimulatedForgeJobs; retried(jobs: ForgeJob[]): void };
  /** The forges' webhook deliveries, for GitHub's deliveries API and redeliveries. */
  deliveries?: SimulatedDeliveries;
  /** The simulated GitHub App: a JWT it signed authenticates the `/app/…` routes, as on GitHub. */
  app?: { verifies(token: string): boolean };
  /** Faults injected into the runner listings (`PUT /sim/forge/faults`). */
  faults?: SimulatedListingFaults;
  /** The forges' clock (local mode's): rate headers' reset times are on it. */
  now?: () => number;
}

/**
 * A runner listing's injected fault, answered in the forge's own way: a 500, or a 429 with the
 * forge's rate headers and `Retry-After`. A truncated page is the caller's to make (`truncated`).
 */
function faultAnswer(
  c: Context,
  forge: FaultyForge,
  options: SimForgeRouteOptions,
): { response: Response } | { truncated: boolean } {
  const kind = options.faults?.take(forge);
  const resetAt = String(Math.ceil((options.now ?? Date.now)() / 1000) + 60);
  if (kind === "500") {
    return {
      response:
        forge === "github"
          ? githubError(c, 500, "Server Error")
          : gitlabError(c, 500, "500 Internal Server Error"),
    };
  }
  if (kind === "429") {
    c.header("retry-after", "60");
    if (forge === "github") {
      c.header("x-ratelimit-remaining", "0");
      c.header("x-ratelimit-reset", resetAt);
      return {
        response: githubError(c, 429, "You have exceeded a secondary rate limit. Please wait a few minutes."),
      };
    }
    c.header("ratelimit-remaining", "0");
    c.header("ratelimit-reset", resetAt);
    return { response: gitlabError(c, 429, "Retry later") };
  }
  return { truncated: kind === "truncated" };
}

const GITHUB = "/sim/github";
const GITLAB = "/sim/gitlab/api/v4";

/** GitLab routes a runner calls with its own token, which the `/sim` status-token check must let by. */
export function authenticatedByRunnerToken(method: string, path: string): boolean {
  return (
    (method === "POST" && path === `${GITLAB}/runners/verify`) ||
    (method === "DELETE" && path === `${GITLAB}/runners/managers`)
  );
}

/** Routes that do their own authentication, in their forge's way, instead of `/sim`'s. */
export function authenticatesItself(method: string, path: string): boolean {
  return path === GITHUB || path.startsWith(`${GITHUB}/`) || authenticatedByRunnerToken(method, path);
}

// GitHub

const githubDocs = "https://docs.github.com/rest/actions/self-hosted-runners";

function githubError(c: Context, status: ContentfulStatusCode, message: string, errors?: string[]) {
  return c.json(
    { message, documentation_url: githubDocs, status: String(status), ...(errors ? { errors } : {}) },
    status,
  );
}

/** GitHub's rules for account and repository names; anything else is a path GitHub has not. */
const account = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;
const repositoryName = /^[A-Za-z0-9._-]{1,100}$/;

function scopeOf(c: Context): SimGitHubScope | undefined {
  const { owner, repo, org } = c.req.param() as Record<string, string | undefined>;
  if (org !== undefined) return account.test(org) ? { organization: org } : undefined;
  if (owner === undefined || repo === undefined) return undefined;
  if (!account.test(owner) || !repositoryName.test(repo) || repo === "." || repo === "..") return undefined;
  return { repository: `${owner}/${repo}` };
}

const runnerIdOf = (c: Context): number | undefined => {
  const raw = c.req.param("runner_id") ?? "";
  return /^\d{1,15}$/.test(raw) ? Number(raw) : undefined;
};

function answerGitHub<T>(c: Context, answer: GitHubAnswer<T>, status: ContentfulStatusCode = 200) {
  if (!answer.ok) return githubError(c, answer.status, answer.message, answer.errors);
  return c.json(answer.value as object, status);
}

/** Routes GitHub answers for the App itself (its JWT): `/app/…`, and where it is installed. */
const appRoute = (path: string): boolean =>
  path.startsWith(`${GITHUB}/app/`) ||
  /^\/sim\/github\/(?:repos\/[^/]+\/[^/]+|orgs\/[^/]+)\/installation$/.test(path);

function githubRoutes(app: Hono, forge: SimulatedForgeRunners, options: SimForgeRouteOptions): void {
  app.use(`${GITHUB}/*`, async (c, next) => {
    // GitHub takes `token <t>` and `Bearer <t>`; Hearth's client sends the first.
    const given = /^(?:token|bearer) +(\S+)\s*$/i.exec(c.req.header("authorization") ?? "")?.[1];
    if (!given) return githubError(c, 401, "Requires authentication");
    const asApp = appRoute(c.req.path) && options.app?.verifies(given) === true;
    if (!asApp && !bearerMatches(`Bearer ${given}`, options.token))
      return githubError(c, 401, "Bad credentials");
    await next();
  });

  for (const base of [
    `${GITHUB}/repos/:owner/:repo/actions/runners`,
    `${GITHUB}/orgs/:org/actions/runners`,
  ]) {
    app.post(`${base}/generate-jitconfig`, async (c) => {
      const scope = scopeOf(c);
      if (!scope) return githubError(c, 404, "Not Found");
      const read = await readBody(c.req.raw);
      if (!read.ok) return githubError(c, read.status, read.message);
      let body: unknown;
      try {
        body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(read.body));
      } catch {
        return githubError(c, 400, "Problems parsing JSON");
      }
      const invalid = jitBodyProblem(body);
      if (invalid) return githubError(c, 422, "Invalid request.", [invalid]);
      const answer = forge.github.generateJitConfig(
        scope,
        body as Parameters<typeof forge.github.generateJitConfig>[1],
      );
      if (answer.ok) options.written?.();
      return answerGitHub(c, answer, 201);
    });
    app.get(base, (c) => {
      const scope = scopeOf(c);
      if (!scope) return githubError(c, 404, "Not Found");
      const number = (name: string) => {
        const raw = c.req.query(name);
        return raw !== undefined && /^\d{1,9}$/.test(raw) ? Number(raw) : undefined;
      };
      const name = c.req.query("name");
      // A listing (the sweep's), not a lookup by name (a mint's), takes the injected faults.
      const fault = name === undefined ? faultAnswer(c, "github", options) : { truncated: false };
      if ("response" in fault) return fault.response;
      const listed = forge.github.listRunners(scope, {
        ...(name !== undefined ? { name } : {}),
        ...(number("per_page") !== undefined ? { perPage: number("per_page") } : {}),
        ...(number("page") !== undefined ? { page: number("page") } : {}),
      });
      // Truncated: the page loses its last runner while `total_count` still counts it.
      if (fault.truncated) listed.runners.pop();
      return c.json(listed);
    });
    app.get(`${base}/:runner_id`, (c) => {
      const scope = scopeOf(c);
      const runnerId = runnerIdOf(c);
      if (!scope || runnerId === undefined) return githubError(c, 404, "Not Found");
      return answerGitHub(c, forge.github.getRunner(scope, runnerId));
    });
    app.delete(`${base}/:runner_id`, (c) => {
      const scope = scopeOf(c);
      const runnerId = runnerIdOf(c);
      if (!scope || runnerId === undefined) return githubError(c, 404, "Not Found");
      const answer = forge.github.deleteRunner(scope, runnerId);
      if (!answer.ok) return githubError(c, answer.status, answer.message, answer.errors);
      options.written?.();
      return c.body(null, 204);
    });
  }
  app.post(`${GITHUB}/repos/:owner/:repo/actions/runs/:run_id/rerun-failed-jobs`, (c) => {
    const scope = scopeOf(c);
    const runId = c.req.param("run_id");
    if (!scope || !("repository" in scope) || !/^\d{1,20}$/.test(runId) || !options.jobs) {
      return githubError(c, 404, "Not Found");
    }
    const answer = options.jobs.forge.rerunFailedJobs(scope.repository, runId);
    if (!answer.ok) {
      return c.json(
        { message: answer.message, documentation_url: rerunDocs, status: String(answer.status) },
        answer.status,
      );
    }
    options.jobs.retried(answer.value);
    return c.json({}, 201);
  });
  pollingRoutes(app, options);
  app.all(`${GITHUB}/*`, (c) => githubError(c, 404, "Not Found"));
}

/** A bounded integer query parameter, its default when absent, or undefined when malformed. */
function queryInteger(c: Context, name: string, fallback: number, max: number): number | undefined {
  const raw = c.req.query(name);
  if (raw === undefined) return fallback;
  if (!/^\d{1,9}$/.test(raw)) return undefined;
  return Math.min(Math.max(Number(raw), 1), max);
}

/** One page of a list, and GitHub's `Link` header for the next one (`page` numbers). */
function githubPage<T>(c: Context, items: T[]): { page: T[] } | undefined {
  const perPage = queryInteger(c, "per_page", 30, 100);
  const page = queryInteger(c, "page", 1, 1_000_000);
  if (perPage === undefined || page === undefined) return undefined;
  const start = (page - 1) * perPage;
  if (start + perPage < items.length) {
    const next = new URL(c.req.url);
    next.searchParams.set("page", String(page + 1));
    next.searchParams.set("per_page", String(perPage));
    c.header("link", `<${next}>; rel="next"`);
  }
  return { page: items.slice(start, start + perPage) };
}

function pollingRoutes(app: Hono, options: SimForgeRouteOptions): void {
  const { deliveries } = options;
  app.get(`${GITHUB}/app/hook/deliveries`, (c) => {
    if (!deliveries) return githubError(c, 404, "Not Found");
    const perPage = queryInteger(c, "per_page", 30, 100);
    const rawCursor = c.req.query("cursor");
    if (perPage === undefined || (rawCursor !== undefined && !/^\d{1,15}$/.test(rawCursor)))
      return githubError(c, 422, "Invalid request.", ["per_page or cursor is invalid"]);
    const listed = deliveries.list("github", {
      perPage,
      ...(rawCursor !== undefined ? { cursor: Number(rawCursor) } : {}),
    });
    if (listed.next !== undefined) {
      const next = new URL(c.req.url);
      next.searchParams.set("cursor", String(listed.next));
      next.searchParams.set("per_page", String(perPage));
      c.header("link", `<${next}>; rel="next"`);
    }
    return c.json(listed.page.map(githubDeliveryItem));
  });
  app.get(`${GITHUB}/app/hook/deliveries/:delivery_id`, (c) => {
    const raw = c.req.param("delivery_id");
    const id = /^\d{1,15}$/.test(raw) ? Number(raw) : undefined;
    const record = id === undefined ? undefined : deliveries?.get(id);
    if (record?.source !== "github") return githubError(c, 404, "Not Found");
    return c.json(githubHookDelivery(record));
  });
  app.post(`${GITHUB}/app/hook/deliveries/:delivery_id/attempts`, (c) => {
    const raw = c.req.param("delivery_id");
    const id = /^\d{1,15}$/.test(raw) ? Number(raw) : undefined;
    const record = id === undefined ? undefined : deliveries?.get(id);
    if (!deliveries || !record || record.source !== "github") return githubError(c, 404, "Not Found");
    // GitHub accepts the attempt and delivers it after answering.
    setTimeout(() => void deliveries.redeliver(record.id), 0);
    return c.json({}, 202);
  });
  // The App is installed on every repository of the simulated GitHub, as installation 1.
  const installation = (login: string) => ({
    id: 1,
    app_id: 1,
    app_slug: "hearth",
    target_id: 1,
    target_type: "Organization",
    single_file_name: null,
    repository_selection: "all",
    access_tokens_url: "https://api.github.com/app/installations/1/access_tokens",
    html_url: `https://github.com/organizations/${login}/settings/installations/1`,
    repositories_url: "https://api.github.com/installation/repositories",
    events: ["workflow_job", "workflow_run"],
    account: simpleUser(login),
    permissions: { actions: "read", administration: "write" },
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-01-01T00:00:00Z",
    suspended_by: null,
    suspended_at: null,
  });
  app.get(`${GITHUB}/repos/:owner/:repo/installation`, (c) => {
    if (!scopeOf(c)) return githubError(c, 404, "Not Found");
    return c.json(installation(c.req.param("owner")));
  });
  app.get(`${GITHUB}/orgs/:org/installation`, (c) => {
    if (!scopeOf(c)) return githubError(c, 404, "Not Found");
    return c.json(installation(c.req.param("org")));
  });
  app.post(`${GITHUB}/app/installations/:installation_id/access_tokens`, (c) => {
    if (c.req.param("installation_id") !== "1") return githubError(c, 404, "Not Found");
    // The simulated GitHub checks tokens against the status token alone: the installation's is that.
    return c.json(
      {
        token: options.token ?? "ghs_local",
        expires_at: new Date(Date.now() + 3_600_000).toISOString().replace(/\.\d{3}Z$/, "Z"),
        permissions: { actions: "read", administration: "write" },
        repository_selection: "all",
      },
      201,
    );
  });
  app.get(`${GITHUB}/repos/:owner/:repo/actions/runs`, (c) => {
    const scope = scopeOf(c);
    if (!scope || !("repository" in scope) || !options.jobs) return githubError(c, 404, "Not Found");
    const status = c.req.query("status");
    if (status !== undefined && status !== "queued" && status !== "in_progress" && status !== "completed")
      return githubError(c, 422, "Invalid request.", [`status ${status} is not one the simulation lists`]);
    const runs = options.jobs.forge.githubRuns(scope.repository, status);
    const paged = githubPage(c, runs);
    if (!paged) return githubError(c, 422, "Invalid request.", ["per_page or page is invalid"]);
    return c.json({ total_count: runs.length, workflow_runs: paged.page });
  });
  app.get(`${GITHUB}/repos/:owner/:repo/actions/jobs/:job_id`, (c) => {
    const scope = scopeOf(c);
    const jobId = c.req.param("job_id");
    if (!scope || !("repository" in scope) || !/^\d{1,20}$/.test(jobId) || !options.jobs)
      return githubError(c, 404, "Not Found");
    const job = options.jobs.forge.githubJob(scope.repository, jobId);
    return job ? c.json(job) : githubError(c, 404, "Not Found");
  });
  app.get(`${GITHUB}/repos/:owner/:repo/actions/runs/:run_id/jobs`, (c) => {
    const scope = scopeOf(c);
    const runId = c.req.param("run_id");
    if (!scope || !("repository" in scope) || !/^\d{1,20}$/.test(runId) || !options.jobs)
      return githubError(c, 404, "Not Found");
    const filter = c.req.query("filter") ?? "latest";
    if (filter !== "latest")
      return githubError(c, 422, "Invalid request.", ["the simulation lists only filter=latest"]);
    const jobs = options.jobs.forge.githubRunJobs(scope.repository, runId);
    if (!jobs) return githubError(c, 404, "Not Found");
    const paged = githubPage(c, jobs);
    if (!paged) return githubError(c, 422, "Invalid request.", ["per_page or page is invalid"]);
    return c.json({ total_count: jobs.length, jobs: paged.page });
  });
}

/** The request body's types, as GitHub checks them before its own validation. */
function jitBodyProblem(body: unknown): string | undefined {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return "the body is not an object";
  const { name, labels, runner_group_id, work_folder } = body as Record<string, unknown>;
  if (typeof name !== "string") return "name is not a string";
  if (!Array.isArray(labels) || !labels.every((label) => typeof label === "string"))
    return "labels is not an array of strings";
  if (typeof runner_group_id !== "number" || !Number.isInteger(runner_group_id))
    return "runner_group_id is not an integer";
  if (work_folder !== undefined && typeof work_folder !== "string") return "work_folder is not a string";
  return undefined;
}

const rerunDocs = "https://docs.github.com/rest/actions/workflow-runs#re-run-failed-jobs-from-a-workflow-run";

// GitLab

const gitlabError = (c: Context, status: ContentfulStatusCode, message: string) =>
  c.json({ message }, status);

type Params = Record<string, string | string[] | unknown>;

/**
 * A GitLab request's parameters: from the query and from the body, form-encoded (as gitlab-runner and
 * `curl --form` send them, `key[]` for arrays) or JSON, as GitLab's API takes either.
 */
async function gitlabParams(
  c: Context,
): Promise<{ ok: true; params: Params } | { ok: false; response: Response }> {
  const params: Params = {};
  const add = (key: string, value: unknown) => {
    if (key.endsWith("[]")) {
      const name = key.slice(0, -2);
      params[name] = [...((Array.isArray(params[name]) ? params[name] : []) as unknown[]), value];
    } else params[key] = value;
  };
  for (const [key, value] of new URL(c.req.url).searchParams) add(key, value);
  const read = await readBody(c.req.raw);
  if (!read.ok) return { ok: false, response: gitlabError(c, read.status, `${read.status} ${read.message}`) };
  if (read.body.byteLength === 0) return { ok: true, params };
  const type = c.req.header("content-type") ?? "";
  try {
    if (/^application\/json/i.test(type)) {
      const body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(read.body)) as unknown;
      if (body === null || typeof body !== "object" || Array.isArray(body)) throw new Error("not an object");
      for (const [key, value] of Object.entries(body)) add(key, value);
    } else if (/^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type)) {
      const form = await new Response(read.body, { headers: { "content-type": type } }).formData();
      for (const [key, value] of form) if (typeof value === "string") add(key, value);
    } else {
      return { ok: false, response: gitlabError(c, 415, "415 Unsupported Media Type") };
    }
  } catch {
    return { ok: false, response: gitlabError(c, 400, "400 Bad request - the body cannot be parsed") };
  }
  return { ok: true, params };
}

const text = (value: unknown): string | undefined =>
  typeof value === "string" ? value : typeof value === "number" ? String(value) : undefined;

/** GitLab's booleans: JSON's, or `true`/`false` (and `1`/`0`) in a form. */
function flag(value: unknown): boolean | undefined | "invalid" {
  if (value === undefined) return undefined;
  if (typeof value === "boolean") return value;
  if (value === "true" || value === "1") return true;
  if (value === "false" || value === "0") return false;
  return "invalid";
}

function integer(value: unknown): number | undefined | "invalid" {
  if (value === undefined) return undefined;
  if (typeof value === "number" && Number.isInteger(value)) return value;
  if (typeof value === "string" && /^\d{1,15}$/.test(value)) return Number(value);
  return "invalid";
}

/** `tag_list`: an array, or a comma-separated string, as GitLab takes it. */
function tagList(value: unknown): string[] | undefined | "invalid" {
  if (value === undefined) return undefined;
  const items = typeof value === "string" ? value.split(",") : value;
  if (!Array.isArray(items) || !items.every((item) => typeof item === "string")) return "invalid";
  return items.map((item) => item.trim()).filter(Boolean);
}

function gitlabRoutes(app: Hono, forge: SimulatedForgeRunners, options: SimForgeRouteOptions): void {
  const missing = (c: Context, name: string) => gitlabError(c, 400, `400 Bad request - ${name} is missing`);

  app.post(`${GITLAB}/runners/verify`, async (c) => {
    const read = await gitlabParams(c);
    if (!read.ok) return read.response;
    const token = text(read.params.token);
    if (!token) return missing(c, "token");
    const systemId = text(read.params.system_id);
    const answer = forge.gitlab.verify(token, systemId);
    if (!answer.ok) return gitlabError(c, answer.status, answer.message);
    if (systemId !== undefined) options.written?.();
    return c.json(answer.value, 200);
  });

  app.delete(`${GITLAB}/runners/managers`, async (c) => {
    const read = await gitlabParams(c);
    if (!read.ok) return read.response;
    const token = text(read.params.token);
    const systemId = text(read.params.system_id);
    if (!token) return missing(c, "token");
    if (!systemId) return missing(c, "system_id");
    const result = forge.gitlab.deleteManager(token, systemId);
    if (result === "forbidden") return gitlabError(c, 403, "403 Forbidden");
    if (result === "already-gone") return gitlabError(c, 404, "404 Not Found");
    options.written?.();
    return c.body(null, 204);
  });

  // Offset pages with GitLab's headers (`x-total`, `x-next-page`, `Link`).
  app.get(`${GITLAB}/runners/:id/managers`, (c) => {
    const raw = c.req.param("id");
    const managers = /^\d{1,15}$/.test(raw) ? forge.gitlab.managers(Number(raw)) : undefined;
    if (!managers) return gitlabError(c, 404, "404 Runner Not Found");
    const perPage = queryInteger(c, "per_page", 20, 100);
    const page = queryInteger(c, "page", 1, 1_000_000);
    if (perPage === undefined || page === undefined)
      return gitlabError(c, 400, "400 Bad request - per_page or page is invalid");
    const fault = faultAnswer(c, "gitlab", options);
    if ("response" in fault) return fault.response;
    const start = (page - 1) * perPage;
    const items = managers.slice(start, start + perPage);
    c.header("x-total", String(managers.length));
    c.header("x-total-pages", String(Math.max(1, Math.ceil(managers.length / perPage))));
    c.header("x-page", String(page));
    c.header("x-per-page", String(perPage));
    if (start + perPage < managers.length) {
      const next = new URL(c.req.url);
      next.searchParams.set("page", String(page + 1));
      next.searchParams.set("per_page", String(perPage));
      c.header("x-next-page", String(page + 1));
      c.header("link", `<${next}>; rel="next"`);
    } else c.header("x-next-page", "");
    // Truncated: the page loses its last manager while `x-total` still counts it.
    if (fault.truncated) items.pop();
    return c.json(items);
  });

  // A runner's details, and its maximum_timeout changed (`npm run runners` keeps it at the pool's limit).
  const runnerId = (raw: string) => (/^\d{1,15}$/.test(raw) ? Number(raw) : undefined);
  app.get(`${GITLAB}/runners/:id{\\d+}`, (c) => {
    const id = runnerId(c.req.param("id"));
    const answer = id === undefined ? undefined : forge.gitlab.details(id);
    if (!answer?.ok) return gitlabError(c, 404, "404 Runner Not Found");
    return c.json(answer.value);
  });
  app.put(`${GITLAB}/runners/:id{\\d+}`, async (c) => {
    const read = await gitlabParams(c);
    if (!read.ok) return read.response;
    const id = runnerId(c.req.param("id"));
    const timeout = integer(read.params.maximum_timeout);
    if (timeout === "invalid") return gitlabError(c, 400, "400 Bad request - maximum_timeout is invalid");
    const answer = id === undefined ? undefined : forge.gitlab.update(id, { maximum_timeout: timeout });
    if (!answer) return gitlabError(c, 404, "404 Runner Not Found");
    if (!answer.ok) return gitlabError(c, answer.status, answer.message);
    options.written?.();
    return c.json(answer.value);
  });

  app.post(`${GITLAB}/projects/:id/jobs/:job_id/retry`, (c) => {
    const projectId = c.req.param("id");
    const jobId = c.req.param("job_id");
    if (!options.jobs || !/^\d{1,20}$/.test(jobId)) return gitlabError(c, 404, "404 Job Not Found");
    const answer = options.jobs.forge.retryGitLab(projectId, jobId);
    if (!answer.ok) return gitlabError(c, answer.status, answer.message);
    const job = answer.value;
    options.jobs.retried([job]);
    // GitLab's job entity (the fields clients read).
    return c.json(
      {
        id: Number(job.id),
        name: job.name,
        stage: "test",
        status: "pending",
        ref: "main",
        tag_list: job.labels,
        retried: false,
        pipeline: { id: Number(job.pipelineId), project_id: Number(job.projectId), status: "running" },
        web_url: `https://gitlab.example.com/${job.project}/-/jobs/${job.id}`,
      },
      201,
    );
  });

  // Polling: a project's pending and running jobs, newest first, in keyset pages (`cursor`: the last
  // id seen), and a group's projects (by path: the projects the forge has jobs of under it).
  app.get(`${GITLAB}/projects/:id/jobs`, (c) => {
    if (!options.jobs) return gitlabError(c, 404, "404 Project Not Found");
    const project = c.req.param("id");
    const scopes = new URL(c.req.url).searchParams.getAll("scope[]");
    const known = ["created", "pending", "running", "failed", "success", "canceled", "skipped", "manual"];
    if (scopes.some((scope) => !known.includes(scope)))
      return gitlabError(c, 400, "400 Bad request - scope does not have a valid value");
    const perPage = queryInteger(c, "per_page", 20, 100);
    const rawCursor = c.req.query("cursor");
    if (perPage === undefined || (rawCursor !== undefined && !/^\d{1,20}$/.test(rawCursor)))
      return gitlabError(c, 400, "400 Bad request - per_page or cursor is invalid");
    const all = options.jobs.forge
      .gitlabJobs(project, scopes)
      .filter((job) => rawCursor === undefined || job.id < Number(rawCursor));
    const page = all.slice(0, perPage);
    if (all.length > perPage) {
      const next = new URL(c.req.url);
      next.searchParams.set("cursor", String(page.at(-1)?.id));
      c.header("link", `<${next}>; rel="next"`);
    }
    return c.json(page);
  });
  app.get(`${GITLAB}/groups/:id/projects`, (c) => {
    const group = c.req.param("id");
    if (!options.jobs?.forge.knowsGitLabGroup(group)) return gitlabError(c, 404, "404 Group Not Found");
    const projects = options.jobs.forge.gitlabProjectsOf(group);
    const perPage = queryInteger(c, "per_page", 20, 100);
    const page = queryInteger(c, "page", 1, 1_000_000);
    if (perPage === undefined || page === undefined)
      return gitlabError(c, 400, "400 Bad request - per_page or page is invalid");
    const start = (page - 1) * perPage;
    if (start + perPage < projects.length) {
      const next = new URL(c.req.url);
      next.searchParams.set("page", String(page + 1));
      c.header("link", `<${next}>; rel="next"`);
    }
    return c.json(projects.slice(start, start + perPage));
  });

  app.post(`${GITLAB}/user/runners`, async (c) => {
    const read = await gitlabParams(c);
    if (!read.ok) return read.response;
    const { params } = read;
    const runnerType = text(params.runner_type);
    if (!runnerType) return missing(c, "runner_type");
    const fields = {
      group_id: integer(params.group_id),
      project_id: integer(params.project_id),
      maximum_timeout: integer(params.maximum_timeout),
      paused: flag(params.paused),
      locked: flag(params.locked),
      run_untagged: flag(params.run_untagged),
      tag_list: tagList(params.tag_list),
    };
    const invalid = Object.entries(fields).find(([, value]) => value === "invalid")?.[0];
    if (invalid) return gitlabError(c, 400, `400 Bad request - ${invalid} is invalid`);
    const accessLevel = text(params.access_level);
    if (accessLevel !== undefined && accessLevel !== "not_protected" && accessLevel !== "ref_protected") {
      return gitlabError(c, 400, "400 Bad request - access_level does not have a valid value");
    }
    const body: CreateRunnerBody = { runner_type: runnerType as GitLabRunnerType };
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined) (body as unknown as Record<string, unknown>)[key] = value;
    }
    const description = text(params.description);
    if (description !== undefined) body.description = description;
    const note = text(params.maintenance_note);
    if (note !== undefined) body.maintenance_note = note;
    if (accessLevel !== undefined) body.access_level = accessLevel;
    const answer = forge.gitlab.createRunner(body);
    if (!answer.ok) return gitlabError(c, answer.status, answer.message);
    options.written?.();
    return c.json(answer.value, 201);
  });
}

/** Mounts both simulated forges' runner APIs on local mode's app. */
export function simForgeRoutes(app: Hono, forge: SimulatedForgeRunners, options: SimForgeRouteOptions): void {
  githubRoutes(app, forge, options);
  gitlabRoutes(app, forge, options);
}
