import { createHash } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { gitlabRunnerTokenSecrets } from "../src/deploy";
import { GitLabApiError, GitLabTokenRefused, gitlabSystemId, poolRunnerSpecs } from "../src/gitlab-api";
import { createGitLabRunnerAdmin, createGitLabRunnerManagers } from "../src/gitlab-api/client";
import { createPoolRunners } from "../src/gitlab-api/pool-runners";
import { poolsConfigSchema } from "../src/pools";
import { type FakeGitLabRunners, startFakeGitLabRunners } from "./support/fake-gitlab-runners";

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a failure");
}

describe("gitlabSystemId", () => {
  it("has gitlab-runner's own system_id shape: s_ and 12 hex digits", () => {
    expect(gitlabSystemId("i-0123456789abcdef0")).toMatch(/^s_[0-9a-f]{12}$/);
  });

  it("is the same for one instance, and differs between instances", () => {
    const ids = ["i-0123456789abcdef0", "i-0123456789abcdef1", "i-0aaaaaaaaaaaaaaaa", "i-1"];
    expect(gitlabSystemId(ids[0] as string)).toBe(gitlabSystemId(ids[0] as string));
    expect(new Set(ids.map(gitlabSystemId)).size).toBe(ids.length);
    // Derived from the instance id, not random: the same on every control-plane host.
    expect(gitlabSystemId("i-1")).toBe(`s_${createHash("sha256").update("i-1").digest("hex").slice(0, 12)}`);
  });
});

describe("poolRunnerSpecs", () => {
  it("gives each pool with a GitLab scope its runner: type, tags, untagged, description and secret", () => {
    const pools = poolsConfigSchema.parse([
      {
        name: "x86_64",
        labels: ["nix", "X86_64-Linux"],
        architecture: "x86_64",
        instanceTypes: ["c6a.xlarge"],
        untagged: true,
        gitlab: { project: "acme/ci/widgets" },
      },
      {
        name: "gpu-large",
        labels: ["gpu"],
        architecture: "x86_64",
        instanceTypes: ["g5.xlarge"],
        gitlab: { group: "acme" },
      },
      {
        name: "arm",
        labels: ["arm"],
        architecture: "arm64",
        instanceTypes: ["c7g.xlarge"],
        gitlab: { instance: true },
      },
      { name: "plain", labels: ["plain"], architecture: "x86_64", instanceTypes: ["c6a.xlarge"] },
    ]);
    expect(poolRunnerSpecs("prod", pools)).toEqual([
      {
        pool: "x86_64",
        scope: { project: "acme/ci/widgets" },
        runnerType: "project_type",
        description: "hearth-prod-x86_64",
        tagList: ["nix", "x86_64-linux"],
        runUntagged: true,
        secretName: "GitlabRunnerTokenX8664",
        maximumTimeout: 21_600,
      },
      {
        pool: "gpu-large",
        scope: { group: "acme" },
        runnerType: "group_type",
        description: "hearth-prod-gpu-large",
        tagList: ["gpu"],
        runUntagged: false,
        secretName: "GitlabRunnerTokenGpuLarge",
        maximumTimeout: 21_600,
      },
      {
        pool: "arm",
        scope: { instance: true },
        runnerType: "instance_type",
        description: "hearth-prod-arm",
        tagList: ["arm"],
        runUntagged: false,
        secretName: "GitlabRunnerTokenArm",
        maximumTimeout: 21_600,
      },
    ]);
    // The names infra declares (infra/secrets.ts builds them with the same function).
    expect(gitlabRunnerTokenSecrets(pools).get("plain")).toBe("GitlabRunnerTokenPlain");
  });
});

describe("createGitLabRunnerManagers", () => {
  let gitlab: FakeGitLabRunners;
  beforeEach(async () => {
    // A self-managed GitLab below a path, as at https://example.com/gitlab.
    gitlab = await startFakeGitLabRunners({ prefix: "/gitlab" });
  });
  afterEach(() => gitlab.close());

  it("deletes a registered manager, and calls a manager already gone fine", async () => {
    const runner = gitlab.addRunner({
      description: "hearth-prod-x86_64",
      runner_type: "project_type",
      tag_list: ["nix"],
      run_untagged: false,
    });
    const systemId = gitlabSystemId("i-0123456789abcdef0");
    runner.managers.add(systemId);
    const managers = createGitLabRunnerManagers({ url: `${gitlab.url}/` });

    expect(await managers.deleteManager(runner.token, systemId)).toBe("deleted");
    expect(runner.managers.has(systemId)).toBe(false);
    expect(await managers.deleteManager(runner.token, systemId)).toBe("already-gone");

    const request = gitlab.requests[0];
    expect(request).toMatchObject({
      method: "DELETE",
      path: "/runners/managers",
      contentType: "application/x-www-form-urlencoded",
      body: { token: runner.token, system_id: systemId },
      query: {},
    });
  });

  it("reads the runner's id with the token only, so that no manager is registered", async () => {
    const runner = gitlab.addRunner({
      description: "hearth-prod-x86_64",
      runner_type: "group_type",
      tag_list: [],
      run_untagged: true,
    });
    const managers = createGitLabRunnerManagers({ url: gitlab.url });
    expect(await managers.runnerId(runner.token)).toBe(runner.id);
    expect(gitlab.requests).toHaveLength(1);
    expect(gitlab.requests[0]).toMatchObject({ method: "POST", path: "/runners/verify", query: {} });
    expect(gitlab.requests[0]?.body).toEqual({ token: runner.token });
    expect(runner.managers.size).toBe(0);
  });

  it("says clearly that a runner token is not valid, without the token", async () => {
    const token = "glrt-not-a-token-of-this-gitlab";
    const managers = createGitLabRunnerManagers({ url: gitlab.url });
    const deleting = await failure(managers.deleteManager(token, "s_0123456789ab"));
    const verifying = await failure(managers.runnerId(token));
    for (const error of [deleting, verifying]) {
      expect(error).toBeInstanceOf(GitLabTokenRefused);
      expect(error.message).toMatch(/answered 403: GitLab does not accept the pool's runner token/);
      expect(error.message).not.toContain(token);
      expect(error.stack ?? "").not.toContain(token);
    }
    expect(deleting.message).toContain("DELETE /gitlab/api/v4/runners/managers");
  });

  it("names the method, path and status of any other failure, never the token", async () => {
    const runner = gitlab.addRunner({
      description: "d",
      runner_type: "instance_type",
      tag_list: [],
      run_untagged: true,
    });
    gitlab.failWith = 500;
    const managers = createGitLabRunnerManagers({ url: gitlab.url });
    const deleting = await failure(managers.deleteManager(runner.token, "s_0123456789ab"));
    expect(deleting).toBeInstanceOf(GitLabApiError);
    expect(deleting.message).toBe(
      "DELETE /gitlab/api/v4/runners/managers answered 500: 500 Internal Server Error",
    );
    const verifying = await failure(managers.runnerId(runner.token));
    expect(verifying.message).toMatch(/^POST \/gitlab\/api\/v4\/runners\/verify answered 500/);
    for (const error of [deleting, verifying]) expect(error.message).not.toContain(runner.token);
  });

  it("reports a redirect instead of following it with the token", async () => {
    const { createServer } = await import("node:http");
    let hits = 0;
    const redirecting = createServer((_, response) => {
      hits++;
      response.writeHead(301, { location: "https://gitlab.example.com/api/v4/runners/verify" }).end();
    });
    await new Promise<void>((resolve) => redirecting.listen(0, "127.0.0.1", resolve));
    const { port } = redirecting.address() as import("node:net").AddressInfo;
    try {
      const managers = createGitLabRunnerManagers({ url: `http://127.0.0.1:${port}` });
      const error = await failure(managers.runnerId("glrt-secret-value"));
      expect(error.message).toBe(
        "POST /api/v4/runners/verify answered 301 (a redirect to https://gitlab.example.com/api/v4/runners/verify: give the GitLab URL it leads to)",
      );
      expect(hits).toBe(1);
    } finally {
      redirecting.closeAllConnections();
      redirecting.close();
    }
  });

  it("gives up on a GitLab that does not answer within the timeout", async () => {
    const { createServer } = await import("node:http");
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as import("node:net").AddressInfo;
    try {
      const managers = createGitLabRunnerManagers({ url: `http://127.0.0.1:${port}`, timeoutMs: 100 });
      const error = await failure(managers.runnerId("glrt-secret-value"));
      expect(error.message).toBe("POST /api/v4/runners/verify: no answer in 100 ms");
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });
});

describe("createGitLabRunnerAdmin", () => {
  let gitlab: FakeGitLabRunners;
  const apiToken = "glpat-creator-token-0123";
  beforeEach(async () => {
    gitlab = await startFakeGitLabRunners({
      prefix: "/gitlab",
      users: { [apiToken]: { scopes: ["create_runner", "read_api"] } },
      projects: [{ id: 42, path_with_namespace: "acme/ci/widgets" }],
      groups: [{ id: 7, full_path: "acme/ci" }],
    });
  });
  afterEach(() => gitlab.close());

  const pools = poolsConfigSchema.parse([
    {
      name: "x86_64",
      labels: ["nix", "x86_64-linux"],
      architecture: "x86_64",
      instanceTypes: ["c6a.xlarge"],
      untagged: true,
      gitlab: { project: "acme/ci/widgets" },
    },
    {
      name: "gpu",
      labels: ["gpu"],
      architecture: "x86_64",
      instanceTypes: ["g5.xlarge"],
      gitlab: { group: "acme/ci" },
    },
  ]);
  const [projectSpec, groupSpec] = poolRunnerSpecs("prod", pools);

  it("resolves paths URL-encoded, creates project and group runners, then finds them by description", async () => {
    const admin = createGitLabRunnerAdmin({ url: gitlab.url, token: apiToken });
    if (!projectSpec || !groupSpec) throw new Error("two specs");
    expect(await admin.namespaceId(projectSpec.scope)).toBe(42);
    expect(await admin.namespaceId(groupSpec.scope)).toBe(7);
    expect(gitlab.requests.map((request) => request.path)).toEqual([
      "/projects/acme%2Fci%2Fwidgets",
      "/groups/acme%2Fci",
    ]);

    expect(await admin.existingRunners(projectSpec, 42)).toEqual([]);
    const created = await admin.createRunner(projectSpec, 42);
    expect(created.token).toMatch(/^glrt-/);
    const post = gitlab.requests.at(-1);
    expect(post).toMatchObject({ method: "POST", path: "/user/runners", privateToken: apiToken });
    expect(post?.body).toEqual({
      runner_type: "project_type",
      project_id: 42,
      description: "hearth-prod-x86_64",
      tag_list: ["nix", "x86_64-linux"],
      run_untagged: true,
      maximum_timeout: 21_600,
    });
    await admin.createRunner(groupSpec, 7);
    expect(gitlab.requests.at(-1)?.body).toMatchObject({
      runner_type: "group_type",
      group_id: 7,
      run_untagged: false,
    });

    expect(await admin.existingRunners(projectSpec, 42)).toMatchObject([
      { id: created.id, description: "hearth-prod-x86_64" },
    ]);
    const list = gitlab.requests.at(-1);
    expect(list).toMatchObject({
      path: "/projects/42/runners",
      query: { type: "project_type", per_page: "100", page: "1" },
    });
    expect((await admin.existingRunners(groupSpec, 7)).map((runner) => runner.description)).toEqual([
      "hearth-prod-gpu",
    ]);
  });

  it("finds the pool's runner by description on every page of its scope's list, whatever its tags now", async () => {
    if (!projectSpec) throw new Error("a spec");
    gitlab.projects.push({ id: 43, path_with_namespace: "acme/other" });
    for (let index = 0; index < 130; index++) {
      gitlab.addRunner({
        description: index === 120 ? projectSpec.description : `other-${index}`,
        runner_type: "project_type",
        project_id: 42,
        // Someone edited its tags in GitLab: it is still the pool's runner.
        tag_list: index === 120 ? ["edited"] : projectSpec.tagList,
        run_untagged: false,
      });
    }
    // Another project's runner of the same description is not this scope's.
    gitlab.addRunner({
      description: projectSpec.description,
      runner_type: "project_type",
      project_id: 43,
      tag_list: projectSpec.tagList,
      run_untagged: false,
    });
    const admin = createGitLabRunnerAdmin({ url: gitlab.url, token: apiToken });
    const found = await admin.existingRunners(projectSpec, 42);
    expect(found.map((runner) => runner.id)).toEqual([gitlab.runners[120]?.id]);
    expect(gitlab.requests.map((request) => request.query.page)).toEqual(["1", "2"]);
  });

  it("says which path is unknown, and that a token is refused, never printing the token", async () => {
    if (!projectSpec) throw new Error("a spec");
    const admin = createGitLabRunnerAdmin({ url: gitlab.url, token: apiToken });
    const missing = await failure(admin.namespaceId({ project: "acme/nothing" }));
    expect(missing.message).toBe(
      'GET /gitlab/api/v4/projects/acme%2Fnothing answered 404: no project "acme/nothing" that the API token can see',
    );
    const badToken = "glpat-revoked-0000";
    const refused = await failure(
      createGitLabRunnerAdmin({ url: gitlab.url, token: badToken }).namespaceId(projectSpec.scope),
    );
    expect(refused).toBeInstanceOf(GitLabTokenRefused);
    expect(refused.message).toContain("does not accept the API token");
    expect(refused.message).not.toContain(badToken);

    gitlab.users.set("glpat-read-only", { scopes: ["read_api"] });
    const readOnly = await failure(
      createGitLabRunnerAdmin({ url: gitlab.url, token: "glpat-read-only" }).createRunner(projectSpec, 42),
    );
    expect(readOnly).toBeInstanceOf(GitLabTokenRefused);
    expect(readOnly.message).toMatch(
      /^POST \/gitlab\/api\/v4\/user\/runners answered 403: The request requires higher privileges/,
    );
    expect(readOnly.message).toContain("create_runner scope");
    expect(readOnly.message).not.toContain("glpat-read-only");
    expect(gitlab.runners).toHaveLength(0);
  });
});

describe("createPoolRunners", () => {
  const apiToken = "glpat-creator-token-0123";
  let gitlab: FakeGitLabRunners;
  beforeEach(async () => {
    gitlab = await startFakeGitLabRunners({
      users: { [apiToken]: { scopes: ["create_runner"] } },
      projects: [{ id: 42, path_with_namespace: "acme/widgets" }],
      groups: [],
    });
  });
  afterEach(() => gitlab.close());

  const pools = poolsConfigSchema.parse([
    {
      name: "a",
      labels: ["a"],
      architecture: "x86_64",
      instanceTypes: ["c6a.xlarge"],
      gitlab: { project: "acme/widgets" },
    },
    {
      name: "b",
      labels: ["b"],
      architecture: "x86_64",
      instanceTypes: ["c6a.xlarge"],
      gitlab: { group: "acme/gone" },
    },
  ]);
  const memorySecrets = () => {
    const values = new Map<string, string>();
    return {
      values,
      names: async () => new Set(values.keys()),
      set: async (name: string, value: string) => void values.set(name, value),
    };
  };

  it("looks every pool up before creating any runner, so a bad path changes nothing", async () => {
    const secrets = memorySecrets();
    const lines: string[] = [];
    const error = await failure(
      createPoolRunners({
        specs: poolRunnerSpecs("prod", pools),
        admin: createGitLabRunnerAdmin({ url: gitlab.url, token: apiToken }),
        secrets,
        dryRun: false,
        replace: false,
        report: (line) => lines.push(line),
      }),
    );
    expect(error.message).toBe(
      'GET /api/v4/groups/acme%2Fgone answered 404: no group "acme/gone" that the API token can see',
    );
    expect(gitlab.runners).toEqual([]);
    expect(secrets.values.size).toBe(0);
    expect(lines).toEqual([]);
  });

  it("creates what is missing and reports it without the token", async () => {
    gitlab.groups.push({ id: 9, full_path: "acme/gone" });
    const secrets = memorySecrets();
    const lines: string[] = [];
    const outcomes = await createPoolRunners({
      specs: poolRunnerSpecs("prod", pools),
      admin: createGitLabRunnerAdmin({ url: gitlab.url, token: apiToken }),
      secrets,
      dryRun: false,
      replace: false,
      report: (line) => lines.push(line),
    });
    expect(outcomes.map((outcome) => outcome.action)).toEqual(["created", "created"]);
    expect(secrets.values.get("GitlabRunnerTokenA")).toBe(gitlab.runners[0]?.token);
    expect(secrets.values.get("GitlabRunnerTokenB")).toBe(gitlab.runners[1]?.token);
    for (const runner of gitlab.runners) {
      for (const line of lines) expect(line).not.toContain(runner.token);
      expect(JSON.stringify(outcomes)).not.toContain(runner.token);
    }
  });
});
