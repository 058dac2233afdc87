import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  GitHubApiError,
  GitHubAuthError,
  GitHubRateLimited,
  type RunnerScope,
  runnerIdentity,
} from "../src/github-api";
import { createGitHubClient, type GitHubClientConfig } from "../src/github-api/client";
import { MintingBudget, runnersFor } from "../src/github-api/runners";
import { FakeGitHub } from "./support/fake-github";

const repo: RunnerScope = { repository: "acme/widgets" };
const org: RunnerScope = { organization: "acme", runnerGroupId: 7 };
const request = { name: "hearth-i-0abc-0", labels: ["nix", "self-hosted", "x64"] };

let github: FakeGitHub;
let clock: number;
const now = () => clock;

function appClient(overrides: Partial<GitHubClientConfig> = {}) {
  return createGitHubClient({
    credentials: { kind: "app", appId: github.appId, privateKey: github.privateKey },
    baseUrl: github.baseUrl,
    retryAfterBaseMs: 1,
    writeSpacingMs: 0,
    now,
    ...overrides,
  });
}

const runners = (scope: RunnerScope, client = appClient(), budget = new MintingBudget({ now })) =>
  runnersFor(client, scope, budget);

const calls = (template: string) => github.requests.filter((call) => call.template === template);

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the call to fail");
}

beforeEach(async () => {
  clock = Date.parse("2026-12-01T08:00:00Z");
  // GitHub Enterprise Server's layout: every path must keep the /api/v3 prefix.
  github = await new FakeGitHub({ pathPrefix: "/api/v3", now }).start();
  github.install("acme");
});

afterEach(async () => {
  await github.stop();
  expect(github.violations).toEqual([]);
});

describe("the fake GitHub", () => {
  it("refuses calls GitHub's description does not have, and bodies without required fields", async () => {
    const undescribed = await fetch(`${github.baseUrl}/repos/acme/widgets/actions/runner`, {
      method: "POST",
    });
    const missing = await fetch(`${github.baseUrl}/repos/acme/widgets/actions/runners/generate-jitconfig`, {
      method: "POST",
      body: JSON.stringify({ name: "x", labels: ["a"] }),
    });
    const outside = await fetch(`${github.baseUrl.replace("/api/v3", "")}/repos/acme/widgets/installation`);
    expect([undescribed.status, missing.status, outside.status]).toEqual([599, 599, 599]);
    expect(github.violations).toEqual([
      expect.stringContaining("no operation"),
      expect.stringContaining("must have required property 'runner_group_id'"),
      expect.stringContaining("not under the base URL"),
    ]);
    github.violations.length = 0;
  });
});

describe("runnerIdentity", () => {
  it("names a slot's runner and gives it the pool's labels, self-hosted and the architecture", () => {
    expect(
      runnerIdentity({ instanceId: "i-0abc", slot: 1, pool: { labels: ["nix"], architecture: "x86_64" } }),
    ).toEqual({
      name: "hearth-i-0abc-1",
      labels: ["nix", "self-hosted", "x64"],
    });
    expect(
      runnerIdentity({
        instanceId: "i-9",
        slot: 0,
        pool: { labels: ["nix", "arm64"], architecture: "arm64" },
      }).labels,
    ).toEqual(["nix", "arm64", "self-hosted"]);
  });

  it("refuses an instance id or slot that would make a bad name", () => {
    const pool = { labels: ["nix"], architecture: "x86_64" } as const;
    expect(() => runnerIdentity({ instanceId: "i-0/../x", slot: 0, pool })).toThrow(/instance id/);
    expect(() => runnerIdentity({ instanceId: "i-0", slot: -1, pool })).toThrow(/slot/);
    expect(() => runnerIdentity({ instanceId: "i-0", slot: 1.5, pool })).toThrow(/slot/);
  });
});

describe("GitHub App authentication", () => {
  it("mints a repository runner, looking the installation up once and caching its token", async () => {
    const scope = runners(repo);
    const first = await scope.generateJitConfig(request);
    const second = await scope.generateJitConfig({ ...request, name: "hearth-i-0abc-1" });
    const registered = github.runnersOf("acme/widgets");
    expect(registered.map((runner) => [runner.id, runner.name, runner.runnerGroupId])).toEqual([
      [first.runnerId, "hearth-i-0abc-0", 1],
      [second.runnerId, "hearth-i-0abc-1", 1],
    ]);
    expect(first.encodedJitConfig).toBe(registered[0]?.encodedJitConfig);
    expect(calls("/repos/{owner}/{repo}/installation")).toHaveLength(1);
    expect(calls("/app/installations/{installation_id}/access_tokens")).toHaveLength(1);
    expect(github.requests.every((call) => call.path.startsWith("/api/v3/"))).toBe(true);
  });

  it("registers organization runners in the scope's runner group", async () => {
    const { runnerId } = await runners(org).generateJitConfig(request);
    expect(github.runnersOf("acme")).toEqual([expect.objectContaining({ id: runnerId, runnerGroupId: 7 })]);
    expect(calls("/orgs/{org}/installation")).toHaveLength(1);
  });

  it("keeps the Enterprise Server base URL on retried calls and on installation-token requests", async () => {
    github.injectServerError(1, (_, template) => template.endsWith("/access_tokens"));
    github.injectServerError(1, (_, template) => template.endsWith("/generate-jitconfig"));
    await runners(repo).generateJitConfig(request);
    const tokenCalls = calls("/app/installations/{installation_id}/access_tokens");
    const mintCalls = calls("/repos/{owner}/{repo}/actions/runners/generate-jitconfig");
    expect(tokenCalls.map((call) => [call.path, call.status])).toEqual([
      ["/api/v3/app/installations/1000/access_tokens", 502],
      ["/api/v3/app/installations/1000/access_tokens", 201],
    ]);
    expect(mintCalls.map((call) => [call.path, call.status])).toEqual([
      ["/api/v3/repos/acme/widgets/actions/runners/generate-jitconfig", 502],
      ["/api/v3/repos/acme/widgets/actions/runners/generate-jitconfig", 201],
    ]);
  });

  it("renews an installation token before it expires, by the expiry GitHub gave", async () => {
    const scope = runners(repo, appClient({ renewBeforeExpirySeconds: 300 }));
    await scope.generateJitConfig(request);
    clock += 54 * 60_000; // 6 minutes left: still good
    await scope.deleteRunner(999);
    expect(github.issuedTokens()).toHaveLength(1);
    clock += 2 * 60_000; // 4 minutes left: renewed
    await scope.deleteRunner(999);
    expect(github.issuedTokens()).toHaveLength(2);
  });

  it("renews a revoked installation token once and carries on", async () => {
    const scope = runners(repo);
    await scope.generateJitConfig(request);
    github.revokeInstallationTokens();
    await scope.generateJitConfig({ ...request, name: "hearth-i-0abc-1" });
    expect(github.issuedTokens()).toHaveLength(2);
    expect(github.runnersOf("acme/widgets")).toHaveLength(2);
  });

  it("a revoked App key is a GitHubAuthError naming the app id, then fails fast without asking GitHub", async () => {
    const scope = runners(repo, appClient({ authFailureCooldownSeconds: 60 }));
    await scope.generateJitConfig(request);
    github.revokeAppKey();
    github.revokeInstallationTokens();
    const error = await failure(scope.generateJitConfig({ ...request, name: "hearth-i-0abc-1" }));
    expect(error).toBeInstanceOf(GitHubAuthError);
    expect(error.message).toContain(`GitHub App ${github.appId}`);
    expect(error.message).not.toContain("PRIVATE KEY");
    const asked = github.requests.length;
    const again = await failure(scope.deleteRunner(1));
    expect(again).toBeInstanceOf(GitHubAuthError);
    expect(github.requests.length).toBe(asked);
    clock += 61_000;
    expect(await failure(scope.deleteRunner(1))).toBeInstanceOf(GitHubAuthError);
    expect(github.requests.length).toBeGreaterThan(asked);
  });

  it("a key GitHub never accepted fails at the installation lookup with a GitHubAuthError", async () => {
    const other = new FakeGitHub();
    const client = appClient({
      credentials: { kind: "app", appId: github.appId, privateKey: other.privateKey },
    });
    const error = await failure(runners(repo, client).generateJitConfig(request));
    expect(error).toBeInstanceOf(GitHubAuthError);
    expect((error as GitHubAuthError).status).toBe(401);
    expect(error.message).toMatch(new RegExp(`GitHub App ${github.appId}: .*expired, revoked`));
  });

  it("an account without the App installed is a GitHubAuthError that says so", async () => {
    const error = await failure(runners({ repository: "elsewhere/widgets" }).generateJitConfig(request));
    expect(error).toBeInstanceOf(GitHubAuthError);
    expect(error.message).toBe(`GitHub App ${github.appId} is not installed on elsewhere/widgets`);
  });
});

describe("personal access token (local mode)", () => {
  it("mints with the token, and a refused token is a GitHubAuthError", async () => {
    github.personalAccessTokens.set("ghp_localmodetoken", ["acme"]);
    const credentials = {
      kind: "personal-access-token",
      token: "ghp_localmodetoken",
      forLocalModeOnly: true,
    } as const;
    const client = appClient({ credentials });
    const { runnerId } = await runners(repo, client).generateJitConfig(request);
    expect(github.runnersOf("acme/widgets").map((runner) => runner.id)).toEqual([runnerId]);
    const refused = appClient({ credentials: { ...credentials, token: "ghp_wrong" } });
    const error = await failure(runners(repo, refused).deleteRunner(runnerId));
    expect(error).toBeInstanceOf(GitHubAuthError);
    expect(error.message).not.toContain("ghp_wrong");
    // @ts-expect-error a token must be declared local-mode only
    createGitHubClient({ credentials: { kind: "personal-access-token", token: "ghp_x" } });
  });
});

describe("generate-jitconfig name conflicts", () => {
  it("deletes Hearth's leftover runner of the same name and mints again, once", async () => {
    const leftover = github.addRunner("acme/widgets", request.name);
    const { runnerId } = await runners(repo).generateJitConfig(request);
    expect(github.runnersOf("acme/widgets").map((runner) => runner.id)).toEqual([runnerId]);
    expect(runnerId).not.toBe(leftover.id);
    expect(calls("/repos/{owner}/{repo}/actions/runners")).toEqual([
      expect.objectContaining({ query: `?name=${request.name}&per_page=100` }),
    ]);
  });

  it("leaves a runner that is not Hearth's alone", async () => {
    github.addRunner("acme/widgets", "build-box");
    const error = await failure(runners(repo).generateJitConfig({ ...request, name: "build-box" }));
    expect(error).toBeInstanceOf(GitHubApiError);
    expect(error.message).toMatch(/build-box already exists .* not Hearth's/);
    expect(github.runnersOf("acme/widgets").map((runner) => runner.name)).toEqual(["build-box"]);
  });

  it("does not delete a same-named runner that is running a job", async () => {
    github.addRunner("acme/widgets", request.name, { busy: true });
    const error = await failure(runners(repo).generateJitConfig(request));
    expect(error.message).toMatch(/runs a job/);
    expect(github.runnersOf("acme/widgets")).toHaveLength(1);
  });
});

describe("deleteRunner", () => {
  it("tells deleted, already gone and busy apart", async () => {
    const scope = runners(org);
    const idle = await scope.generateJitConfig(request);
    const busy = await scope.generateJitConfig({ ...request, name: "hearth-i-0abc-1" });
    github.markBusy("acme", busy.runnerId);
    expect(await scope.deleteRunner(idle.runnerId)).toBe("deleted");
    expect(await scope.deleteRunner(idle.runnerId)).toBe("already-gone");
    expect(await scope.deleteRunner(busy.runnerId)).toBe("busy");
    expect(github.runnersOf("acme").map((runner) => runner.id)).toEqual([busy.runnerId]);
  });
});

describe("rate limits and the minting budget", () => {
  it("waits out a secondary rate limit and retries", async () => {
    github.injectSecondaryRateLimit(1, 2, (_, template) => template.endsWith("/generate-jitconfig"));
    await runners(repo).generateJitConfig(request);
    expect(
      calls("/repos/{owner}/{repo}/actions/runners/generate-jitconfig").map((call) => call.status),
    ).toEqual([403, 201]);
  });

  it("gives up after its bounded retries and backs the bucket off until retry-after", async () => {
    github.injectSecondaryRateLimit(10, 120, (_, template) => template.endsWith("/generate-jitconfig"));
    const budget = new MintingBudget({ now });
    const scope = runners(repo, appClient({ rateLimitRetries: 2 }), budget);
    const error = await failure(scope.generateJitConfig(request));
    expect(error).toBeInstanceOf(GitHubRateLimited);
    expect((error as GitHubRateLimited).retryAt.getTime()).toBe(clock + 120_000);
    expect(calls("/repos/{owner}/{repo}/actions/runners/generate-jitconfig")).toHaveLength(3);
    // The next mint does not go to GitHub while the bucket backs off.
    expect(await failure(scope.generateJitConfig(request))).toBeInstanceOf(GitHubRateLimited);
    expect(calls("/repos/{owner}/{repo}/actions/runners/generate-jitconfig")).toHaveLength(3);
    expect(budget.state("installation:1000").blockedUntil?.getTime()).toBe(clock + 120_000);
  });

  it("counts mints per installation and reads GitHub's x-ratelimit headers", async () => {
    const budget = new MintingBudget({ now, mintsPerWindow: 2, windowSeconds: 60 });
    const client = appClient();
    await runnersFor(client, repo, budget).generateJitConfig(request);
    // The organization is the same installation: the same bucket.
    await runnersFor(client, org, budget).generateJitConfig(request);
    const spent = await failure(
      runnersFor(client, repo, budget).generateJitConfig({ ...request, name: "hearth-x-2" }),
    );
    expect(spent).toBeInstanceOf(GitHubRateLimited);
    expect(spent.message).toMatch(/budget is spent/);
    expect(calls("/repos/{owner}/{repo}/actions/runners/generate-jitconfig")).toHaveLength(1);
    expect(budget.state("installation:1000")).toMatchObject({ minted: 2, limit: 5000, resource: "core" });
    expect(budget.state("installation:1000").remaining).toBeLessThan(5000);
    clock += 61_000;
    await runnersFor(client, repo, budget).generateJitConfig({ ...request, name: "hearth-x-2" });
  });

  it("stops minting while GitHub says the bucket is empty", () => {
    const budget = new MintingBudget({ now });
    budget.observe("b", { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(clock / 1000 + 30) });
    expect(() => budget.take("b", "acme/widgets")).toThrow(GitHubRateLimited);
    clock += 31_000;
    expect(() => budget.take("b", "acme/widgets")).not.toThrow();
  });
});

describe("secrets", () => {
  it("no failing call's error holds a token, the App key or a JIT config", async () => {
    github.personalAccessTokens.set("ghp_secretpersonaltoken", ["acme"]);
    const secrets = () => [
      ...github.issuedTokens(),
      ...github.runnersOf("acme/widgets").map((runner) => runner.encodedJitConfig),
      "ghp_secretpersonaltoken",
      ...github.privateKey.split("\n").filter((line) => line.length > 20),
    ];
    const messages: string[] = [];
    const record = async (promise: Promise<unknown>) => {
      const error = await failure(promise);
      messages.push(error.message, String(error.stack), JSON.stringify(error));
    };
    const scope = runners(repo);
    const minted = await scope.generateJitConfig(request);
    github.addRunner("acme/widgets", "someone-elses");
    await record(scope.generateJitConfig({ ...request, name: "someone-elses" }));
    github.injectSecondaryRateLimit(5, 1);
    await record(runners(repo, appClient({ rateLimitRetries: 0 })).deleteRunner(minted.runnerId));
    github.injectServerError(5);
    await record(runners(repo, appClient({ serverErrorRetries: 1 })).deleteRunner(minted.runnerId));
    const pat = appClient({
      credentials: {
        kind: "personal-access-token",
        token: "ghp_secretpersonaltoken",
        forLocalModeOnly: true,
      },
    });
    await record(runners({ repository: "other/repo" }, pat).generateJitConfig(request));
    github.revokeAppKey();
    github.revokeInstallationTokens();
    await record(scope.generateJitConfig({ ...request, name: "hearth-i-0abc-1" }));
    expect(messages.length).toBe(15);
    for (const secret of secrets()) {
      for (const message of messages) expect(message).not.toContain(secret);
    }
  });
});
