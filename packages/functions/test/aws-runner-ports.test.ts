import { GetParameterCommand } from "@aws-sdk/client-ssm";
import { GitHubAuthError } from "@hearth/core/github-api";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FakeAws, installFakeAws, mockedClients } from "../../core/test/support/auto-scaling-fake";
import { FakeGitHub } from "../../core/test/support/fake-github";
import type { Link, LinkName } from "../src/aws/links";
import { createAwsRuntime } from "../src/aws/runtime";
import type { GitLabRunnerManagers } from "../src/hearth";
import { allLinks, captureStdout } from "./support/aws";

/**
 * The Lambdas' ports to the forges' runner APIs: GitHub's through the App (from the linked secrets,
 * at the stage's GitHub API URL), GitLab's runner managers with each pool's runner token. GitHub is
 * the OpenAPI-checked fake, here laid out as a GitHub Enterprise Server (`/api/v3`).
 */

let github: FakeGitHub;
beforeEach(async () => {
  github = await new FakeGitHub({ pathPrefix: "/api/v3" }).start();
  github.install("acme");
});
afterEach(async () => {
  await github.stop();
  expect(github.violations).toEqual([]);
});

function runtimeWith(overrides: Partial<{ [N in LinkName]: Link<N> }>, options = {}) {
  const links = { ...allLinks("unused"), ...overrides };
  return createAwsRuntime({ read: (name) => links[name as LinkName], ...options });
}

const app = () => ({
  GithubAppId: { value: String(github.appId) },
  GithubAppPrivateKey: { value: github.privateKey },
  HearthConfig: { ...allLinks("unused").HearthConfig, githubApiUrl: github.baseUrl },
});

describe("the GitHub port", () => {
  it("is absent without the App, and says so when only half of it is set", async () => {
    expect(runtimeWith({}).github()).toBeUndefined();
    const { result, lines } = await captureStdout(async () =>
      runtimeWith({ GithubAppId: { value: "4242" } }).github(),
    );
    expect(result).toBeUndefined();
    expect(lines.join("\n")).toMatch(/half configured.*GithubAppPrivateKey/);
  });

  it("mints and deletes runners as the App, every call under the configured API URL", async () => {
    const runtime = runtimeWith(app());
    const port = runtime.github();
    expect(port).toBeDefined();
    // Once per container: the same port, whoever asks.
    expect(runtime.github()).toBe(port);
    const runners = port?.({ repository: "acme/widgets" });
    const minted = await runners?.generateJitConfig({
      name: "hearth-i-0abc-0",
      labels: ["nix", "self-hosted"],
    });
    expect(github.runnersOf("acme/widgets").map((r) => [r.id, r.name])).toEqual([
      [minted?.runnerId, "hearth-i-0abc-0"],
    ]);
    expect(minted?.encodedJitConfig).toBe(github.runnersOf("acme/widgets")[0]?.encodedJitConfig);
    // Another call for the same scope reuses the installation token.
    expect(await port?.({ repository: "acme/widgets" }).deleteRunner(minted?.runnerId ?? 0)).toBe("deleted");
    expect(github.issuedTokens()).toHaveLength(1);
    expect(github.requests.length).toBeGreaterThan(0);
    expect(github.requests.every((request) => request.path.startsWith("/api/v3/"))).toBe(true);
  });

  it("lists a scope's runners, reads one runner and one job, and names its rate bucket, as the sweep does", async () => {
    const port = runtimeWith(app()).github();
    const runners = port?.({ repository: "acme/widgets" });
    const minted = await runners?.generateJitConfig({ name: "hearth-i-0abc-1", labels: ["nix"] });
    const page = await runners?.listRunners?.(1);
    expect(page?.runners.map((runner) => [runner.id, runner.name, runner.status])).toEqual([
      [minted?.runnerId, "hearth-i-0abc-1", "offline"],
    ]);
    expect(page?.totalCount).toBe(1);
    expect((await runners?.getRunner?.(minted?.runnerId ?? 0))?.runner?.name).toBe("hearth-i-0abc-1");
    expect((await runners?.getRunner?.(424242))?.runner).toBeUndefined();
    expect(await runners?.getJob?.("424242")).toBeUndefined();
    expect(await runners?.bucket?.()).toMatch(/\S/);
  });

  it("fails with a clear error when the App's key is revoked, and counts it for the pool's alarm", async () => {
    github.revokeAppKey();
    const runtime = runtimeWith(app());
    const error = await runtime
      .github()?.({ repository: "acme/widgets" })
      .generateJitConfig({ name: "hearth-i-0abc-0", labels: ["nix"] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(GitHubAuthError);
    expect((error as Error).message).toMatch(/refused the App's JWT/);
    expect((error as Error).message).not.toContain("PRIVATE KEY");
    const { lines } = await captureStdout(async () => runtime.githubAuthFailed("x86_64"));
    const point = lines.map((line) => JSON.parse(line)).find((doc) => "GitHubAuthErrors" in doc);
    expect(point).toMatchObject({ GitHubAuthErrors: 1, pool: "x86_64", stage: "test", service: "hearth" });
  });

  it("counts each retry of an interrupted job for its pool (the Retries metric)", async () => {
    const runtime = runtimeWith(app());
    const { lines } = await captureStdout(async () => runtime.hearth.retries.retried?.("x86_64"));
    const point = lines.map((line) => JSON.parse(line)).find((doc) => "Retries" in doc);
    expect(point).toMatchObject({ Retries: 1, pool: "x86_64", stage: "test", service: "hearth" });
  });
});

describe("the GitLab runners port", () => {
  const fakeManagers = () => {
    const made: string[] = [];
    const deleted: Array<[string, string]> = [];
    const factory = (config: { url: string }): GitLabRunnerManagers => {
      made.push(config.url);
      return {
        async deleteManager(token, systemId) {
          deleted.push([token, systemId]);
          return "deleted";
        },
        runnerId: async () => 17,
      };
    };
    return { made, deleted, factory };
  };

  it("is absent when no pool has a runner token", () => {
    expect(
      runtimeWith({ GitlabRunnerTokens: { tokens: { x86_64: " ", aarch64: "" } } }).gitlabRunners(),
    ).toBeUndefined();
  });

  it("gives each pool's own token, and makes the client at the first call, for the stage's GitLab", async () => {
    const { made, deleted, factory } = fakeManagers();
    const runtime = runtimeWith(
      { GitlabRunnerTokens: { tokens: { x86_64: "glrt-x86", aarch64: "" } } },
      { gitlabRunnerManagers: factory },
    );
    const port = runtime.gitlabRunners();
    expect(port?.tokenOf("x86_64")).toBe("glrt-x86");
    expect(port?.tokenOf("aarch64")).toBeUndefined();
    expect(port?.tokenOf("gpu")).toBeUndefined();
    expect(made).toEqual([]);
    expect(await port?.managers.deleteManager("glrt-x86", "s_0123456789ab")).toBe("deleted");
    expect(await port?.managers.runnerId("glrt-x86")).toBe(17);
    expect(made).toEqual(["https://gitlab.example.com"]);
    expect(deleted).toEqual([["glrt-x86", "s_0123456789ab"]]);
  });
});

describe("the fleet's runner configs", () => {
  const clients = mockedClients();
  afterEach(() => vi.unstubAllEnvs());

  it("are bound to the instance's ARN in the stage's account and partition, and tagged with the stage", async () => {
    vi.stubEnv("AWS_REGION", "us-east-1");
    const aws = new FakeAws({ account: "210987654321" });
    installFakeAws(aws, clients);
    const links = allLinks("unused");
    const fleet = runtimeWith({ Fleet: { ...links.Fleet, account: "210987654321" } }).fleet();
    const instanceId = "i-0123456789abcdef0";
    const { parameter, calls } = await fleet.handRunnerConfig({
      instanceId,
      slot: 1,
      runnerId: 31,
      encodedJitConfig: "jit-secret",
    });
    expect(parameter).toBe(`/hearth/test/runners/${instanceId}/1-31`);
    expect(calls.join("\n")).not.toContain("jit-secret");
    expect(aws.parameters.get(parameter)?.tags).toEqual({
      "hearth:app": "hearth",
      "hearth:stage": "test",
      "hearth:instance-arn": `arn:aws:ec2:us-east-1:210987654321:instance/${instanceId}`,
    });
    const read = await aws
      .instanceSsm(instanceId)
      .send(new GetParameterCommand({ Name: parameter, WithDecryption: true }));
    expect(read.Parameter?.Value).toBe("jit-secret");
    expect(await fleet.withdrawRunnerConfig(parameter)).toEqual([`DeleteParameter(name=${parameter})`]);
    expect(aws.parameters.size).toBe(0);
  });
});
