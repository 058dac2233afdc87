import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A stateful stand-in for the GitLab REST API's job and group listings, at the HTTP boundary, in the
 * shapes GitLab's documentation gives:
 *
 * - `GET /projects/:id/jobs` (https://docs.gitlab.com/api/jobs/#list-project-jobs), by id or URL-
 *   encoded path, filtered by `scope[]`; with `pagination=keyset`, newest first, the next page named
 *   by an opaque `cursor` in `Link: <…>; rel="next"` (https://docs.gitlab.com/api/rest/#keyset-based-pagination);
 *   without it, offset pages with `x-next-page`.
 * - `GET /groups/:id/projects` (https://docs.gitlab.com/api/groups/#list-projects), with
 *   `include_subgroups`, offset pages with `Link` and `x-next-page`.
 * - `RateLimit-Limit/Observed/Remaining/Reset` on every answer, counted per token in a fixed window;
 *   over the limit, 429 with `Retry-After` (https://docs.gitlab.com/administration/settings/user_and_ip_rate_limits/#response-headers).
 * - Injected failures: a status, a 429, or a 200 whose body is cut short.
 */

export interface FakeGitLabJob {
  id: number;
  projectId: number;
  pipelineId: number;
  name: string;
  stage: string;
  status: "created" | "pending" | "running" | "success" | "failed" | "canceled" | "manual";
  tags: string[];
  createdAt: number;
  startedAt: number | null;
  runner: { id: number; description: string } | null;
}

export interface FakeGitLabProject {
  id: number;
  path_with_namespace: string;
  /** Group paths it belongs to, its own and its parents'. */
  groups: string[];
}

interface Injection {
  count: number;
  matches: (path: string) => boolean;
  answer: "cut" | { status: number; retryAfterSeconds?: number };
}

export interface FakeGitLabJobsOptions {
  prefix?: string;
  token?: string;
  /** Calls per token per window. */
  rateLimit?: number;
  windowSeconds?: number;
  now?: () => number;
}

export interface FakeGitLabJobs {
  url: string;
  token: string;
  projects: FakeGitLabProject[];
  jobs: FakeGitLabJob[];
  requests: Array<{ path: string; query: URLSearchParams; status: number }>;
  addProject(path: string, groups?: string[]): FakeGitLabProject;
  addJob(project: FakeGitLabProject, job: Partial<Omit<FakeGitLabJob, "id" | "projectId">>): FakeGitLabJob;
  /** The next `count` matching calls (path below `/api/v4`) answer so instead. */
  inject(count: number, answer: Injection["answer"], matches?: Injection["matches"]): void;
  close(): Promise<void>;
}

export async function startFakeGitLabJobs(options: FakeGitLabJobsOptions = {}): Promise<FakeGitLabJobs> {
  const prefix = options.prefix ?? "";
  const token = options.token ?? "glpat-poll-test";
  const rateLimit = options.rateLimit ?? 2000;
  const windowMs = (options.windowSeconds ?? 60) * 1000;
  const now = options.now ?? Date.now;
  const injections: Injection[] = [];
  let window = { count: 0, resetAt: 0 };
  let nextProjectId = 40;
  let nextJobId = 9000;
  let origin = "";

  const fake: Omit<FakeGitLabJobs, "url" | "close"> = {
    token,
    projects: [],
    jobs: [],
    requests: [],
    addProject(path, groups = []) {
      const project = { id: nextProjectId++, path_with_namespace: path, groups };
      fake.projects.push(project);
      return project;
    },
    addJob(project, job) {
      const created: FakeGitLabJob = {
        pipelineId: 500,
        name: "build",
        stage: "test",
        status: "pending",
        tags: ["nix", "x86_64-linux"],
        createdAt: now(),
        startedAt: null,
        runner: null,
        ...job,
        id: nextJobId++,
        projectId: project.id,
      };
      fake.jobs.push(created);
      return created;
    },
    inject(count, answer, matches = () => true) {
      injections.push({ count, answer, matches });
    },
  };

  const projectOf = (key: string) =>
    fake.projects.find((project) => String(project.id) === key || project.path_with_namespace === key);

  /** A job as `GET /projects/:id/jobs` lists it (the documented example's fields). */
  const jobShape = (job: FakeGitLabJob) => {
    const project = fake.projects.find((item) => item.id === job.projectId);
    const started = job.startedAt === null ? null : new Date(job.startedAt).toISOString();
    return {
      commit: { id: "0ff3ae198f8601a285adcf5c0fff204ee6fba5fd", short_id: "0ff3ae19", title: "Test the CI" },
      coverage: null,
      archived: false,
      allow_failure: false,
      created_at: new Date(job.createdAt).toISOString(),
      started_at: started,
      finished_at: null,
      erased_at: null,
      duration: null,
      queued_duration:
        job.status === "pending"
          ? (now() - job.createdAt) / 1000
          : started
            ? (job.startedAt ?? 0) / 1000 - job.createdAt / 1000
            : null,
      artifacts_expire_at: null,
      tag_list: job.tags,
      id: job.id,
      name: job.name,
      pipeline: {
        id: job.pipelineId,
        project_id: job.projectId,
        ref: "main",
        sha: "0ff3ae19",
        status: job.status,
      },
      ref: "main",
      artifacts: [],
      runner: job.runner && {
        ...job.runner,
        active: true,
        paused: false,
        is_shared: false,
        name: null,
        online: true,
        status: "online",
      },
      runner_manager: null,
      stage: job.stage,
      status: job.status,
      failure_reason: job.status === "failed" ? "script_failure" : undefined,
      tag: false,
      web_url: `${origin}${prefix}/${project?.path_with_namespace}/-/jobs/${job.id}`,
      project: { ci_job_token_scope_enabled: false },
      user: { id: 1, username: "root", name: "Administrator" },
    };
  };

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? "/", "http://fake");
    const apiBase = `${prefix}/api/v4`;
    const path = url.pathname.startsWith(apiBase) ? url.pathname.slice(apiBase.length) : url.pathname;
    const recorded = { path, query: url.searchParams, status: 0 };
    fake.requests.push(recorded);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      recorded.status = status;
      response.writeHead(status, { "content-type": "application/json", ...headers });
      response.end(typeof body === "string" ? body : JSON.stringify(body));
    };
    if (request.headers["private-token"] !== token) return send(401, { message: "401 Unauthorized" });

    if (now() >= window.resetAt) window = { count: 0, resetAt: now() + windowMs };
    window.count += 1;
    const rate = {
      "ratelimit-limit": String(rateLimit),
      "ratelimit-observed": String(window.count),
      "ratelimit-remaining": String(Math.max(0, rateLimit - window.count)),
      "ratelimit-reset": String(Math.ceil(window.resetAt / 1000)),
      "ratelimit-resettime": new Date(window.resetAt).toUTCString(),
    };
    if (window.count > rateLimit) {
      return send(429, "Retry later", {
        ...rate,
        "retry-after": String(Math.ceil((window.resetAt - now()) / 1000)),
        "content-type": "text/plain",
      });
    }
    const injection = injections.find((item) => item.count > 0 && item.matches(path));
    let cut = false;
    if (injection) {
      injection.count--;
      if (injection.answer === "cut") cut = true;
      else {
        const { status, retryAfterSeconds } = injection.answer;
        return send(
          status,
          { message: `${status}` },
          {
            ...rate,
            ...(retryAfterSeconds !== undefined ? { "retry-after": String(retryAfterSeconds) } : {}),
          },
        );
      }
    }
    const perPage = Math.min(100, Number(url.searchParams.get("per_page") ?? 20));
    const answer = (items: unknown[], links: Record<string, string>) => {
      const body = JSON.stringify(items);
      // A page cut short: the connection ended mid-body.
      send(200, cut ? body.slice(0, Math.max(1, Math.floor(body.length / 2))) : body, { ...rate, ...links });
    };
    const offsetPage = <T>(items: T[]): { items: T[]; links: Record<string, string> } => {
      const page = Math.max(1, Number(url.searchParams.get("page") ?? 1));
      const more = page * perPage < items.length;
      const next = new URLSearchParams(url.searchParams);
      next.set("page", String(page + 1));
      return {
        items: items.slice((page - 1) * perPage, page * perPage),
        links: more
          ? { link: `<${origin}${url.pathname}?${next}>; rel="next"`, "x-next-page": String(page + 1) }
          : { "x-next-page": "" },
      };
    };

    let match = /^\/projects\/([^/]+)\/jobs$/.exec(path);
    if (match?.[1] && request.method === "GET") {
      const project = projectOf(decodeURIComponent(match[1]));
      if (!project) return send(404, { message: "404 Project Not Found" });
      const scopes = url.searchParams.getAll("scope[]");
      const listed = fake.jobs
        .filter((job) => job.projectId === project.id && (scopes.length === 0 || scopes.includes(job.status)))
        .sort((a, b) => b.id - a.id);
      if (url.searchParams.get("pagination") !== "keyset") {
        const { items, links } = offsetPage(listed);
        return answer(items.map(jobShape), links);
      }
      const cursor = url.searchParams.get("cursor");
      const below = cursor
        ? Number((JSON.parse(Buffer.from(cursor, "base64").toString("utf8")) as { id: string }).id)
        : Number.POSITIVE_INFINITY;
      const page = listed.filter((job) => job.id < below).slice(0, perPage);
      const last = page.at(-1);
      const more = last !== undefined && listed.some((job) => job.id < last.id);
      const next = new URLSearchParams(url.searchParams);
      if (last)
        next.set("cursor", Buffer.from(JSON.stringify({ id: String(last.id), _kd: "n" })).toString("base64"));
      return answer(
        page.map(jobShape),
        more ? { link: `<${origin}${url.pathname}?${next}>; rel="next"` } : {},
      );
    }
    match = /^\/groups\/([^/]+)\/projects$/.exec(path);
    if (match?.[1] && request.method === "GET") {
      const group = decodeURIComponent(match[1]);
      const subgroups = url.searchParams.get("include_subgroups") === "true";
      const listed = fake.projects
        .filter((project) =>
          subgroups
            ? project.groups.some((item) => item === group || item.startsWith(`${group}/`))
            : project.path_with_namespace.split("/").slice(0, -1).join("/") === group,
        )
        .sort((a, b) => a.id - b.id);
      const { items, links } = offsetPage(listed);
      return answer(
        items.map((project) => ({
          id: project.id,
          name: project.path_with_namespace.split("/").at(-1),
          path_with_namespace: project.path_with_namespace,
          web_url: `${origin}${prefix}/${project.path_with_namespace}`,
        })),
        links,
      );
    }
    return send(404, { error: "404 Not Found" });
  };

  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    ...fake,
    get url() {
      return `${origin}${prefix}`;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  } as FakeGitLabJobs;
}
