import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeClock } from "@hearth/core/clock";
import { GitHubApiError, type RunnerScope, runnerIdentity } from "@hearth/core/github-api";
import { createGitHubClient } from "@hearth/core/github-api/client";
import { MintingBudget, runnersFor } from "@hearth/core/github-api/runners";
import { afterEach, describe, expect, it } from "vitest";
import { describedOperation, requestBodyProblem, responseProblem } from "../../core/test/support/fake-github";
import type { LocalHearth } from "../src/local/server";
import { startTestHearth } from "./support/local";

/**
 * Local mode's simulated forges over HTTP: GitHub's runner API driven by Hearth's own GitHub client and
 * held to GitHub's OpenAPI description, GitLab's runner API driven as GitLab's documentation shows it,
 * the status token, the body limit, and `--data`.
 */

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

const repo: RunnerScope = { repository: "acme/app" };
const org: RunnerScope = { organization: "acme", runnerGroupId: 1 };
const pool = { labels: ["nix", "x86_64-linux"], architecture: "x86_64" as const };

const githubClient = (url: string, token = "ghp_local") =>
  createGitHubClient({
    credentials: { kind: "personal-access-token", token, forLocalModeOnly: true },
    baseUrl: `${url}/sim/github`,
    writeSpacingMs: 0,
    retryAfterBaseMs: 1,
    serverErrorRetries: 0,
  });

const forgeOf = (local: LocalHearth) => {
  const forge = local.simulation?.forge;
  if (!forge) throw new Error("local mode runs no simulation");
  return forge;
};

describe("local mode's simulated GitHub, through Hearth's GitHub client", () => {
  it("mints, replaces a leftover of the same name, and deletes runners of a repository", async () => {
    ({ hearth } = await startTestHearth());
    const forge = forgeOf(hearth);
    const runners = runnersFor(githubClient(hearth.url), repo, new MintingBudget());
    const identity = runnerIdentity({ instanceId: "i-1", slot: 0, pool });

    const first = await runners.generateJitConfig(identity);
    expect(forge.github.runner(first.runnerId)).toMatchObject({
      scope: "acme/app",
      name: "hearth-i-1-0",
      labels: identity.labels,
      startedBy: null,
    });
    // The same name again (a leftover of an attempt that crashed): deleted, and the mint retried.
    const second = await runners.generateJitConfig(identity);
    expect(second.runnerId).not.toBe(first.runnerId);
    expect(second.encodedJitConfig).not.toBe(first.encodedJitConfig);
    expect(forge.github.runner(first.runnerId)).toBeUndefined();
    expect(forge.github.all(repo).map((runner) => runner.id)).toEqual([second.runnerId]);
    // The leftover's config is useless now; the new one starts the runner once.
    expect(
      forge.github.startRunner({ encodedJitConfig: first.encodedJitConfig, instanceId: "i-1", slot: 0 }),
    ).toMatchObject({ ok: false, reason: "runner-gone" });
    expect(
      forge.github.startRunner({ encodedJitConfig: second.encodedJitConfig, instanceId: "i-1", slot: 0 }),
    ).toMatchObject({ ok: true });

    expect(await runners.deleteRunner(second.runnerId)).toBe("deleted");
    expect(await runners.deleteRunner(second.runnerId)).toBe("already-gone");
    expect(forge.github.all()).toEqual([]);
  });

  it("says busy while a runner runs its job, and will not replace it", async () => {
    ({ hearth } = await startTestHearth());
    const forge = forgeOf(hearth);
    const runners = runnersFor(githubClient(hearth.url), org, new MintingBudget());
    const identity = runnerIdentity({ instanceId: "i-2", slot: 1, pool });
    const minted = await runners.generateJitConfig(identity);
    forge.github.startRunner({ encodedJitConfig: minted.encodedJitConfig, instanceId: "i-2", slot: 1 });
    forge.github.takeJob(minted.runnerId, { source: "github", id: "42" });

    expect(await runners.deleteRunner(minted.runnerId)).toBe("busy");
    await expect(runners.generateJitConfig(identity)).rejects.toThrow(/runs a job/);
    expect(forge.github.all(org)).toHaveLength(1);
    forge.github.finishJob(minted.runnerId);
    expect(await runners.deleteRunner(minted.runnerId)).toBe("already-gone");
  });

  it("leaves another's runner of the same name alone", async () => {
    ({ hearth } = await startTestHearth());
    const forge = forgeOf(hearth);
    forge.github.generateJitConfig(repo, { name: "build-box", labels: ["nix"], runner_group_id: 1 });
    const runners = runnersFor(githubClient(hearth.url), repo, new MintingBudget());
    const refused = runners.generateJitConfig({ name: "build-box", labels: ["nix"] });
    await expect(refused).rejects.toBeInstanceOf(GitHubApiError);
    await expect(refused).rejects.toThrow(/not Hearth's/);
    expect(forge.github.all(repo).map((runner) => runner.name)).toEqual(["build-box"]);
  });

  it("asks for a token, and for the status token when one is set", async () => {
    ({ hearth } = await startTestHearth({ statusToken: "sim-token" }));
    const list = `${hearth.url}/sim/github/repos/acme/app/actions/runners`;
    const none = await fetch(list);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ message: "Requires authentication", status: "401" });
    const wrong = await fetch(list, { headers: { authorization: "token other" } });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ message: "Bad credentials" });
    await expect(
      runnersFor(githubClient(hearth.url, "other"), repo, new MintingBudget()).deleteRunner(1),
    ).rejects.toThrow(/refused the personal access token/);
    const runners = runnersFor(githubClient(hearth.url, "sim-token"), repo, new MintingBudget());
    expect(await runners.generateJitConfig({ name: "hearth-i-1-0", labels: ["nix"] })).toMatchObject({
      runnerId: expect.any(Number),
    });
  });

  it("accepts any token when no status token is set, but not none", async () => {
    ({ hearth } = await startTestHearth());
    const list = `${hearth.url}/sim/github/orgs/acme/actions/runners`;
    expect((await fetch(list, { headers: { authorization: "Bearer anything" } })).status).toBe(200);
    expect((await fetch(list, { headers: { authorization: "token " } })).status).toBe(401);
    expect((await fetch(list)).status).toBe(401);
  });

  it("refuses a body over 1 MiB and keeps nothing of it", async () => {
    ({ hearth } = await startTestHearth());
    const body = `${JSON.stringify({ name: "hearth-i-1-0", labels: ["nix"], runner_group_id: 1 })}${" ".repeat(2 * 1024 * 1024)}`;
    const response = await fetch(
      `${hearth.url}/sim/github/repos/acme/app/actions/runners/generate-jitconfig`,
      {
        method: "POST",
        headers: { authorization: "token t", "content-type": "application/json" },
        body,
      },
    );
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ status: "413" });
    expect(forgeOf(hearth).github.all()).toEqual([]);
  });
});

describe("the simulated GitHub's answers", () => {
  it("fit GitHub's OpenAPI description, for every route, status and scope", async () => {
    ({ hearth } = await startTestHearth());
    const forge = forgeOf(hearth);
    const url = hearth.url;
    const problems: string[] = [];
    const seen = new Set<string>();
    /** One call, held to the description: the request (when meant to be valid) and the answer. */
    const call = async (
      method: string,
      path: string,
      options: { body?: unknown; raw?: string; invalidRequest?: boolean; token?: string | null } = {},
    ) => {
      const found = describedOperation(method, path.split("?")[0] ?? path);
      if (!found) throw new Error(`${method} ${path} is no operation of GitHub's API`);
      if (!options.invalidRequest) {
        const problem = requestBodyProblem(found.operation, options.body);
        if (problem) problems.push(`${method} ${path} request: ${problem}`);
      }
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (options.token !== null) headers.authorization = `token ${options.token ?? "ghp_local"}`;
      const response = await fetch(`${url}/sim/github${path}`, {
        method,
        headers,
        ...(options.raw !== undefined || options.body !== undefined
          ? { body: options.raw ?? JSON.stringify(options.body) }
          : {}),
      });
      const text = await response.text();
      const body = text === "" ? undefined : (JSON.parse(text) as unknown);
      const problem = responseProblem(found.operation, response.status, body);
      if (problem) problems.push(`${method} ${path} ${response.status}: ${problem}`);
      seen.add(`${method} ${found.operation.template} ${response.status}`);
      return { status: response.status, body: body as Record<string, unknown> };
    };

    for (const base of ["/repos/acme/app", "/orgs/acme"]) {
      const runners = `${base}/actions/runners`;
      const jit = { name: "hearth-i-1-0", labels: ["nix", "self-hosted", "x64"], runner_group_id: 1 };
      const minted = await call("POST", `${runners}/generate-jitconfig`, { body: jit });
      expect(minted.status).toBe(201);
      const id = (minted.body.runner as { id: number }).id;
      expect((await call("POST", `${runners}/generate-jitconfig`, { body: jit })).status).toBe(422);
      expect(
        (
          await call("POST", `${runners}/generate-jitconfig`, {
            body: { ...jit, name: "x", labels: [] },
            invalidRequest: true,
          })
        ).status,
      ).toBe(422);
      expect(
        (
          await call("POST", `${runners}/generate-jitconfig`, {
            body: { name: 5, labels: ["a"] },
            invalidRequest: true,
          })
        ).status,
      ).toBe(422);
      expect(
        (await call("POST", `${runners}/generate-jitconfig`, { raw: "{", invalidRequest: true })).status,
      ).toBe(400);
      expect((await call("GET", `${runners}?name=hearth-i-1-0&per_page=100`)).body).toMatchObject({
        total_count: 1,
      });
      expect((await call("GET", `${runners}?page=2`)).body).toMatchObject({ total_count: 1, runners: [] });
      expect((await call("GET", `${runners}/${id}`)).status).toBe(200);
      expect((await call("GET", `${runners}/99999`)).status).toBe(404);
      expect((await call("GET", runners, { token: null })).status).toBe(401);

      const config = minted.body.encoded_jit_config as string;
      forge.github.startRunner({ encodedJitConfig: config, instanceId: "i-1", slot: 0 });
      forge.github.takeJob(id, { source: "github", id: "1" });
      expect((await call("GET", `${runners}/${id}`)).body).toMatchObject({ status: "online", busy: true });
      expect((await call("DELETE", `${runners}/${id}`)).status).toBe(422);
      forge.github.finishJob(id);
      expect((await call("DELETE", `${runners}/${id}`)).status).toBe(404);

      const idle = await call("POST", `${runners}/generate-jitconfig`, {
        body: { ...jit, work_folder: "w" },
      });
      expect((await call("DELETE", `${runners}/${(idle.body.runner as { id: number }).id}`)).status).toBe(
        204,
      );
    }
    // A repository's runners have only the default group.
    expect(
      (
        await call("POST", "/repos/acme/app/actions/runners/generate-jitconfig", {
          body: { name: "a", labels: ["a"], runner_group_id: 2 },
        })
      ).status,
    ).toBe(404);
    expect(problems).toEqual([]);
    // Every status of every operation was seen, for both scopes.
    expect([...seen].sort()).toEqual(
      [
        "POST /{s}/actions/runners/generate-jitconfig 201",
        "POST /{s}/actions/runners/generate-jitconfig 422",
        "POST /{s}/actions/runners/generate-jitconfig 400",
        "GET /{s}/actions/runners 200",
        "GET /{s}/actions/runners 401",
        "GET /{s}/actions/runners/{runner_id} 200",
        "GET /{s}/actions/runners/{runner_id} 404",
        "DELETE /{s}/actions/runners/{runner_id} 204",
        "DELETE /{s}/actions/runners/{runner_id} 404",
        "DELETE /{s}/actions/runners/{runner_id} 422",
      ]
        .flatMap((line) => [line.replace("{s}", "repos/{owner}/{repo}"), line.replace("{s}", "orgs/{org}")])
        .concat("POST /repos/{owner}/{repo}/actions/runners/generate-jitconfig 404")
        .sort(),
    );
  });
});

describe("local mode's simulated GitLab runner API", () => {
  const api = (local: LocalHearth) => `${local.url}/sim/gitlab/api/v4`;

  it("gives each pool a runner, and registers, lists and deletes managers as GitLab's API does", async () => {
    ({ hearth } = await startTestHearth());
    const forge = forgeOf(hearth);
    const token = forge.gitlab.tokenOf("x86_64");
    expect(token).toMatch(/^glrt-/);
    expect(forge.gitlab.tokenOf("aarch64")).not.toBe(token);
    const base = api(hearth);

    // Without system_id, verify only says whose token it is.
    const verified = await fetch(`${base}/runners/verify`, {
      method: "POST",
      body: new URLSearchParams({ token: token ?? "" }),
    });
    expect(verified.status).toBe(200);
    const { id } = (await verified.json()) as { id: number };
    expect(forge.gitlab.runner(id)).toMatchObject({ pool: "x86_64", managers: [] });

    // gitlab-runner sends system_id when it starts (multipart, as curl --form sends it); JSON works too.
    const form = new FormData();
    form.set("token", token ?? "");
    form.set("system_id", "s_0123456789ab");
    const registered = await fetch(`${base}/runners/verify`, { method: "POST", body: form });
    expect(registered.status).toBe(200);
    expect(await registered.json()).toEqual({ id, token, token_expires_at: null });
    const json = await fetch(`${base}/runners/verify`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token, system_id: "s_ba9876543210" }),
    });
    expect(json.status).toBe(200);

    const listed = await fetch(`${base}/runners/${id}/managers`);
    expect(listed.status).toBe(200);
    const managers = (await listed.json()) as Array<Record<string, unknown>>;
    expect(managers.map((manager) => manager.system_id)).toEqual(["s_0123456789ab", "s_ba9876543210"]);
    expect(Object.keys(managers[0] ?? {}).sort()).toEqual(
      [
        "architecture",
        "contacted_at",
        "created_at",
        "id",
        "ip_address",
        "platform",
        "revision",
        "status",
        "system_id",
        "version",
      ].sort(),
    );

    const remove = (body: string | URLSearchParams, headers: Record<string, string> = {}) =>
      fetch(`${base}/runners/managers`, { method: "DELETE", headers, body });
    const removed = await remove(new URLSearchParams({ token: token ?? "", system_id: "s_0123456789ab" }));
    expect(removed.status).toBe(204);
    expect(await removed.text()).toBe("");
    const again = await remove(new URLSearchParams({ token: token ?? "", system_id: "s_0123456789ab" }));
    expect(again.status).toBe(404);
    expect(await again.json()).toEqual({ message: "404 Not Found" });
    expect(
      (
        await remove(JSON.stringify({ token, system_id: "s_ba9876543210" }), {
          "content-type": "application/json",
        })
      ).status,
    ).toBe(204);
    expect(forge.gitlab.runner(id)?.managers).toEqual([]);
  });

  it("refuses unknown tokens and missing parameters in GitLab's shapes, and changes nothing", async () => {
    ({ hearth } = await startTestHearth());
    const forge = forgeOf(hearth);
    const base = api(hearth);
    const before = JSON.stringify(forge.snapshot());
    const forbidden = await fetch(`${base}/runners/verify`, {
      method: "POST",
      body: new URLSearchParams({ token: "glrt-guessed", system_id: "s_0123456789ab" }),
    });
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toEqual({ message: "403 Forbidden" });
    const missing = await fetch(`${base}/runners/verify`, { method: "POST", body: new URLSearchParams() });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toEqual({ message: "400 Bad request - token is missing" });
    const noSystem = await fetch(`${base}/runners/managers`, {
      method: "DELETE",
      body: new URLSearchParams({ token: forge.gitlab.tokenOf("x86_64") ?? "" }),
    });
    expect(noSystem.status).toBe(400);
    expect(
      (
        await fetch(`${base}/runners/managers`, {
          method: "DELETE",
          body: new URLSearchParams({ token: "glrt-guessed", system_id: "s_0123456789ab" }),
        })
      ).status,
    ).toBe(403);
    const unknown = await fetch(`${base}/runners/999/managers`);
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ message: "404 Runner Not Found" });
    const tooLarge = await fetch(`${base}/runners/verify`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `token=${"a".repeat(2 * 1024 * 1024)}`,
    });
    expect(tooLarge.status).toBe(413);
    expect(JSON.stringify(forge.snapshot())).toBe(before);
  });

  it("creates a runner with POST /user/runners, whose token then verifies", async () => {
    ({ hearth } = await startTestHearth());
    const base = api(hearth);
    const created = await fetch(`${base}/user/runners`, {
      method: "POST",
      headers: { "private-token": "glpat-any" },
      body: new URLSearchParams({
        runner_type: "group_type",
        group_id: "3",
        description: "hearth x86_64",
        tag_list: "nix,x86_64-linux",
        run_untagged: "false",
      }),
    });
    expect(created.status).toBe(201);
    const runner = (await created.json()) as { id: number; token: string; token_expires_at: null };
    expect(runner).toEqual({
      id: expect.any(Number),
      token: expect.stringMatching(/^glrt-/),
      token_expires_at: null,
    });
    expect(forgeOf(hearth).gitlab.runner(runner.id)).toMatchObject({
      tagList: ["nix", "x86_64-linux"],
      runUntagged: false,
      runnerType: "group_type",
      pool: null,
    });
    const verified = await fetch(`${base}/runners/verify`, {
      method: "POST",
      body: new URLSearchParams({ token: runner.token }),
    });
    expect(await verified.json()).toMatchObject({ id: runner.id });

    for (const body of [
      new URLSearchParams({ runner_type: "group_type" }),
      new URLSearchParams({ runner_type: "cluster_type" }),
      new URLSearchParams({ runner_type: "instance_type", run_untagged: "maybe" }),
      new URLSearchParams(),
    ]) {
      const refused = await fetch(`${base}/user/runners`, { method: "POST", body });
      expect(refused.status).toBe(400);
      expect(Object.keys((await refused.json()) as object)).toEqual(["message"]);
    }
    // JSON, with tag_list as an array.
    const fromJson = await fetch(`${base}/user/runners`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ runner_type: "project_type", project_id: 9, tag_list: ["a", "b"] }),
    });
    expect(fromJson.status).toBe(201);
  });

  it("shows a runner's maximum_timeout and changes it with PUT /runners/:id, as npm run runners does", async () => {
    ({ hearth } = await startTestHearth());
    const base = api(hearth);
    const created = await fetch(`${base}/user/runners`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        runner_type: "instance_type",
        description: "hearth-local-x",
        maximum_timeout: 3600,
      }),
    });
    const { id } = (await created.json()) as { id: number };
    const details = async () =>
      (await (await fetch(`${base}/runners/${id}`)).json()) as Record<string, unknown>;
    expect(await details()).toMatchObject({ id, description: "hearth-local-x", maximum_timeout: 3600 });
    const put = (body: unknown) =>
      fetch(`${base}/runners/${id}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const changed = await put({ maximum_timeout: 21_600 });
    expect(changed.status).toBe(200);
    expect(await changed.json()).toMatchObject({ id, maximum_timeout: 21_600 });
    expect(forgeOf(hearth).gitlab.runner(id)?.maximumTimeout).toBe(21_600);
    // GitLab's floor of 10 minutes; a refusal changes nothing.
    const tooShort = await put({ maximum_timeout: 300 });
    expect(tooShort.status).toBe(400);
    expect(await tooShort.json()).toEqual({
      message: "400 Bad request - maximum_timeout needs to be at least 10 minutes",
    });
    expect((await put({ maximum_timeout: "soon" })).status).toBe(400);
    expect(forgeOf(hearth).gitlab.runner(id)?.maximumTimeout).toBe(21_600);
    expect((await fetch(`${base}/runners/99999`)).status).toBe(404);
    expect(
      (
        await put({}).then(() =>
          fetch(`${base}/runners/99999`, {
            method: "PUT",
            headers: { "content-type": "application/json" },
            body: "{}",
          }),
        )
      ).status,
    ).toBe(404);
  });

  it("lets a runner's own token by the status token check, and nothing else", async () => {
    ({ hearth } = await startTestHearth({ statusToken: "sim-token" }));
    const base = api(hearth);
    const token = forgeOf(hearth).gitlab.tokenOf("x86_64") ?? "";
    const verify = await fetch(`${base}/runners/verify`, {
      method: "POST",
      body: new URLSearchParams({ token, system_id: "s_0123456789ab" }),
    });
    expect(verify.status).toBe(200);
    const id = ((await verify.json()) as { id: number }).id;
    expect((await fetch(`${base}/runners/${id}/managers`)).status).toBe(401);
    expect(
      (await fetch(`${base}/runners/${id}/managers`, { headers: { "private-token": "sim-token" } })).status,
    ).toBe(200);
    const create = (headers: Record<string, string>) =>
      fetch(`${base}/user/runners`, {
        method: "POST",
        headers,
        body: new URLSearchParams({ runner_type: "instance_type" }),
      });
    expect((await create({})).status).toBe(401);
    expect((await create({ "private-token": "sim-token" })).status).toBe(201);
    expect(
      (
        await fetch(`${base}/runners/managers`, {
          method: "DELETE",
          body: new URLSearchParams({ token, system_id: "s_0123456789ab" }),
        })
      ).status,
    ).toBe(204);
  });
});

describe("the simulated forges with --data", () => {
  it("keep their runners, configs, tokens and managers across a restart, written before they answer", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hearth-forge-"));
    try {
      const clock = new FakeClock();
      ({ hearth } = await startTestHearth({ dataDir, clock }));
      const runners = runnersFor(githubClient(hearth.url), repo, new MintingBudget());
      const used = await runners.generateJitConfig(runnerIdentity({ instanceId: "i-1", slot: 0, pool }));
      const fresh = await runners.generateJitConfig(runnerIdentity({ instanceId: "i-1", slot: 1, pool }));
      const forge = forgeOf(hearth);
      forge.github.startRunner({ encodedJitConfig: used.encodedJitConfig, instanceId: "i-1", slot: 0 });
      const token = forge.gitlab.tokenOf("x86_64") ?? "";
      const verify = await fetch(`${hearth.url}/sim/gitlab/api/v4/runners/verify`, {
        method: "POST",
        body: new URLSearchParams({ token, system_id: "s_0123456789ab" }),
      });
      const gitlabRunnerId = ((await verify.json()) as { id: number }).id;

      // On disk already, before any debounce: a SIGKILL now would lose nothing the API answered.
      const onDisk = readFileSync(join(dataDir, "simulation.json"), "utf8");
      const saved = JSON.parse(onDisk) as { forge: { github: { runners: Array<{ id: number }> } } };
      expect(saved.forge.github.runners.map((runner) => runner.id)).toEqual([used.runnerId, fresh.runnerId]);
      expect(onDisk).toContain("s_0123456789ab");
      // JIT configs are secrets: only their digests are kept.
      expect(onDisk).not.toContain(used.encodedJitConfig);
      expect(onDisk).not.toContain(fresh.encodedJitConfig);
      // It holds GitLab's runner tokens (and the simulated fleet's handed configs): the owner's only.
      expect(statSync(join(dataDir, "simulation.json")).mode & 0o777).toBe(0o600);
      await hearth.close();

      ({ hearth } = await startTestHearth({ dataDir, clock }));
      const restored = forgeOf(hearth);
      expect(restored.github.runner(used.runnerId)?.startedBy).toEqual({ instanceId: "i-1", slot: 0 });
      expect(
        restored.github.startRunner({ encodedJitConfig: used.encodedJitConfig, instanceId: "i-1", slot: 0 }),
      ).toMatchObject({ ok: false, reason: "config-used" });
      expect(
        restored.github.startRunner({ encodedJitConfig: fresh.encodedJitConfig, instanceId: "i-1", slot: 1 }),
      ).toMatchObject({ ok: true });
      expect(restored.gitlab.tokenOf("x86_64")).toBe(token);
      expect(restored.gitlab.managers(gitlabRunnerId)?.map((manager) => manager.system_id)).toEqual([
        "s_0123456789ab",
      ]);
      // The GitHub API answers from the restored state, and new ids do not reuse old ones.
      const again = runnersFor(githubClient(hearth.url), repo, new MintingBudget());
      expect(await again.deleteRunner(fresh.runnerId)).toBe("deleted");
      const next = await again.generateJitConfig(runnerIdentity({ instanceId: "i-2", slot: 0, pool }));
      expect(next.runnerId).toBeGreaterThan(fresh.runnerId);
    } finally {
      await hearth?.close();
      hearth = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
