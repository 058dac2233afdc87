import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A stateful stand-in for GitLab's runner API at the HTTP boundary, answering in the shapes GitLab's
 * documentation gives (https://docs.gitlab.com/api/users/#create-a-runner-linked-to-a-user,
 * https://docs.gitlab.com/api/runners/, https://docs.gitlab.com/api/projects/,
 * https://docs.gitlab.com/api/groups/). It may sit below a path prefix, as a self-managed GitLab at
 * `https://example.com/gitlab` does.
 *
 * - User tokens (`PRIVATE-TOKEN`) carry scopes; an unknown one gets 401, one without `create_runner`
 *   gets 403 `insufficient_scope` from `POST /user/runners`, and only an administrator's lists
 *   instance runners or creates one.
 * - Runners are remembered with their `glrt-…` token, type, scope, tags and managers.
 * - `POST /runners/verify` with a `system_id` registers that manager, as gitlab-runner does at start;
 *   `DELETE /runners/managers` deletes one (204), or answers 404 when it is not there.
 * - `GET /runners/:id/managers` lists a runner's managers (https://docs.gitlab.com/api/runners/#list-all-runners-managers)
 *   with the status each was given (`managerStatus`, online by default); `managerFaults` makes the
 *   next listings answer 500, 429 or a page cut short (a 200 whose JSON is not whole).
 * - `GET /projects/:id/jobs/:job_id` answers the jobs put in `jobs` (by `<project id>/<job id>`), 404 else.
 * - `GET /runners/:id` shows a runner's details (its `maximum_timeout`); `PUT /runners/:id` changes
 *   it, with a token of the `manage_runner` or `api` scope, and at least 600 seconds as GitLab wants.
 */

export interface FakeUser {
  scopes: string[];
  admin?: boolean;
}

export interface FakeRunner {
  id: number;
  token: string;
  description: string;
  runner_type: "instance_type" | "group_type" | "project_type";
  project_id?: number;
  group_id?: number;
  tag_list: string[];
  run_untagged: boolean;
  /** Seconds; null: none (jobs run up to their project's timeout). */
  maximum_timeout: number | null;
  managers: Set<string>;
}

export interface FakeRequest {
  method: string;
  /** Below the API base (`/user/runners`), without the query. */
  path: string;
  query: Record<string, string>;
  /** The form or JSON body, parsed. */
  body: Record<string, unknown>;
  contentType: string | undefined;
  privateToken: string | undefined;
}

export interface FakeGitLabRunners {
  /** The GitLab URL to configure (`http://127.0.0.1:PORT/prefix`). */
  url: string;
  requests: FakeRequest[];
  runners: FakeRunner[];
  users: Map<string, FakeUser>;
  projects: Array<{ id: number; path_with_namespace: string }>;
  groups: Array<{ id: number; full_path: string }>;
  /** Answers every request with this status instead, while set. */
  failWith: number | undefined;
  /** A manager's status by system id (`online` when not given). */
  managerStatus: Map<string, "online" | "offline" | "stale" | "never_contacted">;
  /** What the next managers listings answer instead, in order. */
  managerFaults: Array<500 | 429 | "cut">;
  /** Jobs as `GET /projects/:id/jobs/:job_id` answers them, by `<project id>/<job id>`. */
  jobs: Map<string, Record<string, unknown>>;
  /** A runner as GitLab would hold it after a user created it elsewhere. */
  addRunner(
    runner: Omit<FakeRunner, "id" | "token" | "managers" | "maximum_timeout"> & {
      maximum_timeout?: number | null;
    },
  ): FakeRunner;
  close(): Promise<void>;
}

const forbidden = { message: "403 Forbidden" };

export async function startFakeGitLabRunners(
  options: {
    prefix?: string;
    users?: Record<string, FakeUser>;
    projects?: Array<{ id: number; path_with_namespace: string }>;
    groups?: Array<{ id: number; full_path: string }>;
  } = {},
): Promise<FakeGitLabRunners> {
  const prefix = options.prefix ?? "";
  const apiBase = `${prefix}/api/v4`;
  let nextId = 100;
  const fake: Omit<FakeGitLabRunners, "url" | "close"> = {
    requests: [],
    runners: [],
    users: new Map(Object.entries(options.users ?? {})),
    projects: options.projects ?? [],
    groups: options.groups ?? [],
    failWith: undefined,
    managerStatus: new Map(),
    managerFaults: [],
    jobs: new Map(),
    addRunner(runner) {
      const created: FakeRunner = {
        ...runner,
        maximum_timeout: runner.maximum_timeout ?? null,
        id: nextId++,
        token: `glrt-${randomBytes(15).toString("base64url")}`,
        managers: new Set(),
      };
      fake.runners.push(created);
      return created;
    },
  };

  const send = (
    response: ServerResponse,
    status: number,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    response.writeHead(status, {
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    });
    response.end(body === undefined ? undefined : JSON.stringify(body));
  };

  /** `GET /runners` list entries, as the docs show them. */
  const summary = (runner: FakeRunner) => ({
    active: true,
    paused: false,
    description: runner.description,
    id: runner.id,
    ip_address: null,
    is_shared: runner.runner_type === "instance_type",
    runner_type: runner.runner_type,
    name: null,
    online: runner.managers.size > 0,
    status: runner.managers.size > 0 ? "online" : "never_contacted",
  });

  /** GitLab filters lists by `type` and by `tag_list` (runners having every listed tag), paginated. */
  const listRunners = (response: ServerResponse, query: Record<string, string>, runners: FakeRunner[]) => {
    const tags = (query.tag_list ?? "").split(",").filter(Boolean);
    const matching = runners.filter(
      (runner) =>
        (!query.type || runner.runner_type === query.type) &&
        tags.every((tag) => runner.tag_list.includes(tag)),
    );
    const perPage = Number(query.per_page ?? 20);
    const page = Number(query.page ?? 1);
    const slice = matching.slice((page - 1) * perPage, page * perPage);
    const more = page * perPage < matching.length;
    send(response, 200, slice.map(summary), {
      "x-page": String(page),
      "x-per-page": String(perPage),
      "x-next-page": more ? String(page + 1) : "",
      "x-total": String(matching.length),
    });
  };

  const findProject = (id: string) =>
    fake.projects.find((project) => String(project.id) === id || project.path_with_namespace === id);
  const findGroup = (id: string) =>
    fake.groups.find((group) => String(group.id) === id || group.full_path === id);

  const handle = (request: IncomingMessage, response: ServerResponse, raw: string) => {
    const url = new URL(request.url ?? "/", "http://fake");
    const query = Object.fromEntries(url.searchParams);
    const contentType = request.headers["content-type"];
    let body: Record<string, unknown> = {};
    if (contentType?.startsWith("application/json") && raw) body = JSON.parse(raw);
    else if (contentType?.startsWith("application/x-www-form-urlencoded")) {
      body = Object.fromEntries(new URLSearchParams(raw));
    }
    const privateToken = request.headers["private-token"] as string | undefined;
    if (!url.pathname.startsWith(`${apiBase}/`)) {
      send(response, 404, { error: "404 Not Found" });
      return;
    }
    // Path segments stay URL-encoded (`group%2Fproject`), as GitLab's router reads them.
    const path = url.pathname.slice(apiBase.length);
    const method = request.method ?? "GET";
    fake.requests.push({ method, path, query, body, contentType, privateToken });
    if (fake.failWith !== undefined) {
      send(response, fake.failWith, { message: `${fake.failWith} Internal Server Error` });
      return;
    }

    // The runner-token endpoints: authenticated by the runner's token in the body.
    if (path === "/runners/verify" && method === "POST") {
      const runner = fake.runners.find((candidate) => candidate.token === body.token);
      if (!runner) return send(response, 403, forbidden);
      if (typeof body.system_id === "string" && body.system_id) runner.managers.add(body.system_id);
      return send(response, 200, { id: runner.id, token: runner.token, token_expires_at: null });
    }
    if (path === "/runners/managers" && method === "DELETE") {
      const runner = fake.runners.find((candidate) => candidate.token === body.token);
      if (!runner) return send(response, 403, forbidden);
      if (typeof body.system_id !== "string" || !body.system_id) {
        return send(response, 400, { error: "system_id is missing" });
      }
      if (!runner.managers.delete(body.system_id)) return send(response, 404, { message: "404 Not Found" });
      return send(response, 204);
    }

    // Everything else: a user's token.
    const user = privateToken === undefined ? undefined : fake.users.get(privateToken);
    if (!user) return send(response, 401, { message: "401 Unauthorized" });
    const readable = user.scopes.some((scope) => ["api", "read_api", "create_runner"].includes(scope));
    const route = (pattern: RegExp) => (method === "GET" ? pattern.exec(path) : null);
    const projectRoute = route(/^\/projects\/([^/]+)$/);
    const groupRoute = route(/^\/groups\/([^/]+)$/);
    const projectRunners = route(/^\/projects\/([^/]+)\/runners$/);
    const runnerRoute = /^\/runners\/(\d+)$/.exec(path);
    const maySee = (runner: FakeRunner) =>
      user.admin ||
      (runner.project_id !== undefined &&
        fake.projects.some((project) => project.id === runner.project_id)) ||
      (runner.group_id !== undefined && fake.groups.some((group) => group.id === runner.group_id));
    const groupRunners = route(/^\/groups\/([^/]+)\/runners$/);

    if (projectRoute) {
      const match = projectRoute;
      const project = readable ? findProject(decodeURIComponent(match[1] ?? "")) : undefined;
      if (!project) return send(response, 404, { message: "404 Project Not Found" });
      const name = project.path_with_namespace.split("/").at(-1);
      return send(response, 200, {
        id: project.id,
        name,
        path: name,
        path_with_namespace: project.path_with_namespace,
      });
    }
    if (groupRoute) {
      const match = groupRoute;
      const group = readable ? findGroup(decodeURIComponent(match[1] ?? "")) : undefined;
      if (!group) return send(response, 404, { message: "404 Group Not Found" });
      const name = group.full_path.split("/").at(-1);
      return send(response, 200, { id: group.id, name, path: name, full_path: group.full_path });
    }
    if (projectRunners) {
      const match = projectRunners;
      const project = findProject(decodeURIComponent(match[1] ?? ""));
      if (!project) return send(response, 404, { message: "404 Project Not Found" });
      return listRunners(
        response,
        query,
        fake.runners.filter((runner) => runner.project_id === project.id),
      );
    }
    if (groupRunners) {
      const match = groupRunners;
      const group = findGroup(decodeURIComponent(match[1] ?? ""));
      if (!group) return send(response, 404, { message: "404 Group Not Found" });
      return listRunners(
        response,
        query,
        fake.runners.filter((runner) => runner.group_id === group.id),
      );
    }
    if (runnerRoute && (method === "GET" || method === "PUT")) {
      const runner = fake.runners.find((candidate) => String(candidate.id) === runnerRoute[1]);
      if (!runner || !maySee(runner)) return send(response, 404, { message: "404 Runner Not Found" });
      if (method === "PUT") {
        if (!user.scopes.includes("manage_runner") && !user.scopes.includes("api")) {
          return send(response, 403, {
            error: "insufficient_scope",
            error_description: "The request requires higher privileges than provided by the access token.",
            scope: "manage_runner api",
          });
        }
        if (body.maximum_timeout !== undefined) {
          const seconds = Number(body.maximum_timeout);
          if (!Number.isInteger(seconds)) return send(response, 400, { error: "maximum_timeout is invalid" });
          if (seconds < 600) {
            return send(response, 400, { message: { maximum_timeout: ["needs to be at least 10 minutes"] } });
          }
          runner.maximum_timeout = seconds;
        }
      }
      return send(response, 200, {
        ...summary(runner),
        tag_list: runner.tag_list,
        run_untagged: runner.run_untagged,
        locked: false,
        maximum_timeout: runner.maximum_timeout,
        access_level: "not_protected",
      });
    }
    const managersRoute = route(/^\/runners\/(\d+)\/managers$/);
    if (managersRoute) {
      const runner = fake.runners.find((candidate) => String(candidate.id) === managersRoute[1]);
      if (!runner || !maySee(runner)) return send(response, 404, { message: "404 Runner Not Found" });
      const fault = fake.managerFaults.shift();
      if (fault === 500) return send(response, 500, { message: "500 Internal Server Error" });
      if (fault === 429) return send(response, 429, { message: "Retry later" }, { "retry-after": "60" });
      const managers = [...runner.managers].map((systemId, index) => ({
        id: index + 1,
        system_id: systemId,
        version: "17.6.0",
        revision: "aa9f3e2c",
        platform: "linux",
        architecture: "amd64",
        created_at: "2026-12-01T08:00:00.000Z",
        contacted_at: "2026-12-01T08:00:00.000Z",
        ip_address: "10.0.0.1",
        status: fake.managerStatus.get(systemId) ?? "online",
      }));
      if (fault === "cut") {
        response.writeHead(200, { "content-type": "application/json" });
        // Cut mid-list: GitLab's answer stopped before the list closed.
        response.end(managers.length ? JSON.stringify(managers).slice(0, -1) : "[");
        return;
      }
      return send(response, 200, managers);
    }
    const jobRoute = route(/^\/projects\/([^/]+)\/jobs\/(\d+)$/);
    if (jobRoute) {
      const job = fake.jobs.get(`${decodeURIComponent(jobRoute[1] ?? "")}/${jobRoute[2]}`);
      if (!job) return send(response, 404, { message: "404 Not found" });
      return send(response, 200, job);
    }
    if (path === "/runners/all" && method === "GET") {
      if (!user.admin) return send(response, 403, forbidden);
      return listRunners(response, query, fake.runners);
    }
    if (path === "/user/runners" && method === "POST") {
      if (!user.scopes.includes("create_runner") && !user.scopes.includes("api")) {
        return send(response, 403, {
          error: "insufficient_scope",
          error_description: "The request requires higher privileges than provided by the access token.",
          scope: "create_runner api",
        });
      }
      const type = body.runner_type;
      if (type !== "instance_type" && type !== "group_type" && type !== "project_type") {
        return send(response, 400, { error: "runner_type does not have a valid value" });
      }
      if (type === "instance_type" && !user.admin) return send(response, 403, forbidden);
      const projectId = body.project_id === undefined ? undefined : Number(body.project_id);
      const groupId = body.group_id === undefined ? undefined : Number(body.group_id);
      if (type === "project_type" && !fake.projects.some((project) => project.id === projectId)) {
        return send(response, 400, { message: { project_id: ["is missing, or no such project"] } });
      }
      if (type === "group_type" && !fake.groups.some((group) => group.id === groupId)) {
        return send(response, 400, { message: { group_id: ["is missing, or no such group"] } });
      }
      const tagList = Array.isArray(body.tag_list)
        ? body.tag_list.map(String)
        : String(body.tag_list ?? "")
            .split(",")
            .filter(Boolean);
      const runner = fake.addRunner({
        description: String(body.description ?? ""),
        runner_type: type,
        ...(type === "project_type" ? { project_id: projectId } : {}),
        ...(type === "group_type" ? { group_id: groupId } : {}),
        tag_list: tagList,
        run_untagged: body.run_untagged === true || body.run_untagged === "true",
        maximum_timeout: body.maximum_timeout === undefined ? null : Number(body.maximum_timeout),
      });
      return send(response, 201, { id: runner.id, token: runner.token, token_expires_at: null });
    }
    send(response, 404, { error: "404 Not Found" });
  };

  const server: Server = createServer((request, response) => {
    let raw = "";
    request.setEncoding("utf8");
    request.on("data", (chunk: string) => {
      raw += chunk;
    });
    request.on("end", () => {
      try {
        handle(request, response, raw);
      } catch (error) {
        send(response, 500, { message: String(error) });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(fake, {
    url: `http://127.0.0.1:${port}${prefix}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
