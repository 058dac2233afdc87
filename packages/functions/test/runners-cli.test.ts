import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FakeGitLabRunners, startFakeGitLabRunners } from "../../core/test/support/fake-gitlab-runners";
import { childEnv, run } from "./support/child";

/**
 * `npm run runners` as a user runs it: a child process against a fake GitLab (over HTTP, below a
 * path prefix, as a self-managed GitLab at https://example.com/gitlab) and a fake `sst` placed first
 * on PATH, which records its arguments and standard input and keeps the stage's secrets in a file.
 */

const main = fileURLToPath(new URL("../src/runners/main.ts", import.meta.url));
const apiToken = "glpat-runner-creator-7f3a9c";

/** The fake SST CLI: `secret list` and `secret set` as SST answers them, every call logged. */
const fakeSst = `#!/usr/bin/env node
const fs = require("node:fs");
const path = require("node:path");
const dir = process.env.FAKE_SST_DIR;
const args = process.argv.slice(2);
const stage = args[args.indexOf("--stage") + 1];
const statePath = path.join(dir, "secrets.json");
const secrets = fs.existsSync(statePath) ? JSON.parse(fs.readFileSync(statePath, "utf8")) : {};
const stdin = args[1] === "set" ? fs.readFileSync(0, "utf8") : "";
fs.appendFileSync(path.join(dir, "calls.jsonl"), JSON.stringify({ args, stdin }) + "\\n");
if (process.env.FAKE_SST_FAIL === args[1]) {
  process.stderr.write("✕  Could not " + args[1] + " secrets: AccessDenied\\n");
  process.exit(1);
}
const own = secrets[stage] ?? {};
if (args[1] === "list") {
  if (Object.keys(own).length === 0) {
    process.stderr.write("✕  No secrets found\\n");
    process.exit(1);
  }
  process.stdout.write("# hearth/" + stage + "\\n");
  for (const [key, value] of Object.entries(own)) process.stdout.write(key + "=" + value + "\\n");
  process.exit(0);
}
if (args[1] === "set") {
  const name = args[2];
  const value = args[3] !== undefined && args[3] !== "--stage" ? args[3] : stdin;
  secrets[stage] = { ...own, [name]: value };
  fs.writeFileSync(statePath, JSON.stringify(secrets));
  process.stdout.write('✓  Set "' + name + '" for stage "' + stage + '". Run "sst deploy" to update.\\n');
  process.exit(0);
}
process.exit(2);
`;

interface SstCall {
  args: string[];
  stdin: string;
}

let sstDir: string;
let configDir: string;
let gitlab: FakeGitLabRunners;

const config = {
  pools: [
    {
      name: "x86_64",
      labels: ["nix", "x86_64-linux"],
      architecture: "x86_64",
      instanceTypes: ["c6a.xlarge"],
      untagged: true,
      gitlab: { project: "acme/ci/widgets" },
    },
    {
      name: "aarch64",
      labels: ["nix", "aarch64-linux"],
      architecture: "arm64",
      instanceTypes: ["c7g.xlarge"],
      maxJobMinutes: 90,
      gitlab: { group: "acme/ci" },
    },
    // No GitLab scope: its token is set by hand, or it serves GitHub only.
    { name: "gpu-large", labels: ["gpu"], architecture: "x86_64", instanceTypes: ["g5.xlarge"] },
  ],
};

beforeAll(() => {
  sstDir = mkdtempSync(join(tmpdir(), "hearth-fake-sst-"));
  writeFileSync(join(sstDir, "sst"), fakeSst);
  chmodSync(join(sstDir, "sst"), 0o755);
  configDir = mkdtempSync(join(tmpdir(), "hearth-runners-config-"));
  writeFileSync(join(configDir, "hearth.config.json"), JSON.stringify(config));
});
afterAll(() => {
  rmSync(sstDir, { recursive: true, force: true });
  rmSync(configDir, { recursive: true, force: true });
});

beforeEach(async () => {
  gitlab = await startFakeGitLabRunners({
    prefix: "/gitlab",
    users: {
      [apiToken]: { scopes: ["create_runner", "manage_runner", "read_api"] },
      "glpat-create-only": { scopes: ["create_runner", "read_api"] },
      "glpat-read-only": { scopes: ["read_api"] },
    },
    projects: [{ id: 42, path_with_namespace: "acme/ci/widgets" }],
    groups: [{ id: 7, full_path: "acme/ci" }],
  });
  for (const file of ["calls.jsonl", "secrets.json"]) rmSync(join(sstDir, file), { force: true });
});
afterEach(() => gitlab.close());

const sstCalls = (): SstCall[] =>
  existsSync(join(sstDir, "calls.jsonl"))
    ? readFileSync(join(sstDir, "calls.jsonl"), "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as SstCall)
    : [];
const stageSecrets = (stage: string): Record<string, string> =>
  existsSync(join(sstDir, "secrets.json"))
    ? (JSON.parse(readFileSync(join(sstDir, "secrets.json"), "utf8"))[stage] ?? {})
    : {};

async function runners(args: string[], env: Record<string, string> = {}) {
  const child = run(main, ["--config", join(configDir, "hearth.config.json"), ...args], {
    env: childEnv({
      PATH: `${sstDir}${delimiter}${process.env.PATH ?? ""}`,
      FAKE_SST_DIR: sstDir,
      GITLAB_URL: gitlab.url,
      GITLAB_API_TOKEN: apiToken,
      ...env,
    }),
  });
  const code = await child.exited;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

describe("npm run runners", () => {
  it("creates each configured pool's runner and stores its token as the pool's stage secret, never printing it", async () => {
    const result = await runners(["--stage", "prod"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);

    // The runners, as GitLab holds them.
    expect(gitlab.runners).toHaveLength(2);
    const [x86, arm] = gitlab.runners;
    expect(x86).toMatchObject({
      runner_type: "project_type",
      project_id: 42,
      description: "hearth-prod-x86_64",
      tag_list: ["nix", "x86_64-linux"],
      run_untagged: true,
      // GitLab ends a job past the pool's maxJobMinutes (360 by default) itself.
      maximum_timeout: 21_600,
    });
    expect(arm).toMatchObject({
      maximum_timeout: 5_400,
      runner_type: "group_type",
      group_id: 7,
      description: "hearth-prod-aarch64",
      tag_list: ["aarch64-linux", "nix"],
      run_untagged: false,
    });
    // The paths were resolved URL-encoded below the self-managed GitLab's prefix, with the API token.
    const paths = gitlab.requests.map((request) => `${request.method} ${request.path}`);
    expect(paths).toContain("GET /projects/acme%2Fci%2Fwidgets");
    expect(paths).toContain("GET /groups/acme%2Fci");
    expect(paths.filter((path) => path === "POST /user/runners")).toHaveLength(2);
    expect(gitlab.requests.every((request) => request.privateToken === apiToken)).toBe(true);

    // Each token went to its pool's secret, the name infra declares, on stdin only.
    const sets = sstCalls().filter((call) => call.args[1] === "set");
    expect(sets.map((call) => call.args)).toEqual([
      ["secret", "set", "GitlabRunnerTokenX8664", "--stage", "prod"],
      ["secret", "set", "GitlabRunnerTokenAarch64", "--stage", "prod"],
    ]);
    expect(sets.map((call) => call.stdin)).toEqual([x86?.token, arm?.token]);
    expect(stageSecrets("prod")).toEqual({
      GitlabRunnerTokenX8664: x86?.token,
      GitlabRunnerTokenAarch64: arm?.token,
    });

    for (const token of [x86?.token, arm?.token, apiToken]) {
      expect(token).toBeTruthy();
      expect(result.stdout).not.toContain(token);
      for (const call of sstCalls()) expect(call.args.join(" ")).not.toContain(token);
    }
    expect(result.stdout).toContain(`x86_64: created runner ${x86?.id}`);
    expect(result.stdout).toContain("and set GitlabRunnerTokenAarch64");
  });

  it("skips a pool whose runner exists or whose secret is set", async () => {
    expect((await runners(["--stage", "prod"])).code).toBe(0);
    const first = gitlab.runners.map((runner) => runner.id);

    const again = await runners(["--stage", "prod"]);
    expect(again.code).toBe(0);
    expect(gitlab.runners.map((runner) => runner.id)).toEqual(first);
    expect(again.stdout).toMatch(
      /x86_64: skipped, its runner exists \(\d+, "hearth-prod-x86_64"\) and GitlabRunnerTokenX8664 is set/,
    );
    expect(sstCalls().filter((call) => call.args[1] === "set")).toHaveLength(2);

    // The secret alone (a token set by hand) counts as an existing runner too…
    gitlab.runners.splice(0);
    const bySecret = await runners(["--stage", "prod"]);
    expect(bySecret.stdout).toContain("x86_64: skipped, GitlabRunnerTokenX8664 is already set for the stage");
    expect(gitlab.runners).toHaveLength(0);
  }, 60_000);

  it("skips a runner whose token was never stored (it cannot be read back); --replace creates a new one", async () => {
    const old = gitlab.addRunner({
      description: "hearth-prod-x86_64",
      runner_type: "project_type",
      project_id: 42,
      tag_list: ["nix", "x86_64-linux"],
      run_untagged: true,
    });
    const byRunner = await runners(["--stage", "prod"]);
    expect(byRunner.stdout).toContain(
      `x86_64: skipped, a runner "hearth-prod-x86_64" exists (${old.id}) but GitlabRunnerTokenX8664 is not set`,
    );
    // The other pool had neither, so it got its runner.
    expect(byRunner.stdout).toContain("aarch64: created runner");

    const replaced = await runners(["--stage", "prod", "--replace"]);
    expect(replaced.code).toBe(0);
    const newest = gitlab.runners.filter((runner) => runner.description === "hearth-prod-x86_64").at(-1);
    expect(newest?.id).not.toBe(old.id);
    expect(stageSecrets("prod").GitlabRunnerTokenX8664).toBe(newest?.token);
    expect(replaced.stdout).toContain(`the previous runner ${old.id} stays registered`);
  }, 60_000);

  it("sets an existing runner's maximum_timeout to the pool's limit when it differs, once", async () => {
    expect((await runners(["--stage", "prod"])).code).toBe(0);
    const [x86, arm] = gitlab.runners;
    if (!x86 || !arm) throw new Error("no runners");
    // Created before the setting existed, or changed in GitLab since.
    x86.maximum_timeout = null;
    arm.maximum_timeout = 3_600;
    const dry = await runners(["--stage", "prod", "--dry-run"]);
    expect(dry.stdout).toContain(
      `x86_64: would set runner ${x86.id}'s maximum_timeout from none to 21600 s (maxJobMinutes 360)`,
    );
    expect(x86.maximum_timeout).toBeNull();

    const result = await runners(["--stage", "prod"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`x86_64: set runner ${x86.id}'s maximum_timeout from none to 21600 s`);
    expect(result.stdout).toContain(
      `aarch64: set runner ${arm.id}'s maximum_timeout from 3600 s to 5400 s (maxJobMinutes 90)`,
    );
    expect([x86.maximum_timeout, arm.maximum_timeout]).toEqual([21_600, 5_400]);
    const puts = gitlab.requests.filter((request) => request.method === "PUT");
    expect(puts.map((request) => [request.path, request.body])).toEqual([
      [`/runners/${x86.id}`, { maximum_timeout: 21_600 }],
      [`/runners/${arm.id}`, { maximum_timeout: 5_400 }],
    ]);
    // In step now: nothing more to change.
    const again = await runners(["--stage", "prod"]);
    expect(again.stdout).not.toContain("maximum_timeout");
    expect(gitlab.requests.filter((request) => request.method === "PUT")).toHaveLength(2);

    // A token that may create runners but not change them is told what it lacks, in one line.
    x86.maximum_timeout = 600;
    const refused = await runners(["--stage", "prod"], { GITLAB_API_TOKEN: "glpat-create-only" });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(
        `^runners: PUT /gitlab/api/v4/runners/${x86.id} answered 403: .*it needs the manage_runner \\(or api\\) scope.*\\n$`,
      ),
    );
    expect(x86.maximum_timeout).toBe(600);
  }, 60_000);

  it("changes nothing on a dry run", async () => {
    const result = await runners(["--stage", "prod", "--dry-run"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      'x86_64: would create a project_type runner "hearth-prod-x86_64" in project acme/ci/widgets (42), tags [nix, x86_64-linux], run_untagged true, maximum_timeout 21600 s, and set GitlabRunnerTokenX8664',
    );
    expect(result.stdout).toContain("aarch64: would create a group_type runner");
    expect(gitlab.runners).toHaveLength(0);
    expect(gitlab.requests.filter((request) => request.method !== "GET")).toEqual([]);
    expect(sstCalls().map((call) => call.args[1])).toEqual(["list"]);
    expect(stageSecrets("prod")).toEqual({});
  });

  it("says in one line that GitLab refused the API token, exits 1 and changes nothing", async () => {
    const badToken = "glpat-revoked-token-0000";
    const result = await runners(["--stage", "prod"], { GITLAB_API_TOKEN: badToken });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toBe(
      `runners: GET /gitlab/api/v4/projects/acme%2Fci%2Fwidgets answered 401: GitLab at ${gitlab.url} does not accept the API token (unknown, expired or revoked) (GITLAB_API_TOKEN)\n`,
    );
    expect(result.stderr).not.toContain(badToken);
    expect(gitlab.runners).toHaveLength(0);
    expect(sstCalls()).toEqual([]);
  });

  it("says when a token may not create runners, before creating any", async () => {
    const result = await runners(["--stage", "prod"], { GITLAB_API_TOKEN: "glpat-read-only" });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toContain("answered 403");
    expect(result.stderr).toContain("create_runner scope");
    expect(result.stderr).not.toContain("glpat-read-only");
    expect(gitlab.runners).toHaveLength(0);
  });

  it("asks for GITLAB_API_TOKEN when it is missing, and stops at an unknown project", async () => {
    const missing = await runners(["--stage", "prod"], { GITLAB_API_TOKEN: "" });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(
      /^runners: set GITLAB_API_TOKEN to a GitLab access token with the create_runner scope/,
    );
    expect(gitlab.requests).toEqual([]);

    gitlab.projects.splice(0);
    const unknown = await runners(["--stage", "prod"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      'runners: GET /gitlab/api/v4/projects/acme%2Fci%2Fwidgets answered 404: no project "acme/ci/widgets" that the API token can see\n',
    );
    expect(gitlab.runners).toHaveLength(0);
    expect(sstCalls()).toEqual([]);
  });

  it("stops before creating anything when the stage's secrets cannot be listed", async () => {
    const result = await runners(["--stage", "prod"], { FAKE_SST_FAIL: "list" });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      "runners: sst secret list --stage prod failed (exit 1): ✕  Could not list secrets: AccessDenied\n",
    );
    expect(gitlab.runners).toHaveLength(0);
  });

  it("says which runner was created when its secret cannot be stored, without the token", async () => {
    const result = await runners(["--stage", "prod"], { FAKE_SST_FAIL: "set" });
    expect(result.code).toBe(1);
    const [created] = gitlab.runners;
    expect(gitlab.runners).toHaveLength(1);
    expect(result.stderr).toBe(
      `runners: x86_64: created runner ${created?.id}, but could not set GitlabRunnerTokenX8664 (sst secret set GitlabRunnerTokenX8664 --stage prod failed (exit 1): ✕  Could not set secrets: AccessDenied); delete runner ${created?.id} in GitLab and run again\n`,
    );
    expect(result.stderr + result.stdout).not.toContain(created?.token);
  });
});

const cacheKeyMain = fileURLToPath(new URL("../src/runners/cache-key.ts", import.meta.url));

async function cacheKey(args: string[], env: Record<string, string> = {}) {
  const child = run(cacheKeyMain, args, {
    env: childEnv({ PATH: `${sstDir}${delimiter}${process.env.PATH ?? ""}`, FAKE_SST_DIR: sstDir, ...env }),
  });
  const code = await child.exited;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

describe("npm run cache-key", () => {
  it("stores a new signing key as the stage secret on stdin and prints only its public half", async () => {
    const result = await cacheKey(["--stage", "prod"]);
    expect(result.code).toBe(0);
    const secret = stageSecrets("prod").BinaryCacheSigningKey ?? "";
    expect(secret).toMatch(/^hearth-prod-1:[A-Za-z0-9+/]{86}==$/);
    expect(result.stdout).toMatch(/^hearth-prod-1:[A-Za-z0-9+/]{43}=\n$/);
    // The public half is the last 32 bytes of the secret one (Nix's layout: seed ‖ public key).
    const publicBytes = Buffer.from(result.stdout.trim().split(":")[1] ?? "", "base64");
    expect(
      Buffer.from(secret.split(":")[1] ?? "", "base64")
        .subarray(32)
        .equals(publicBytes),
    ).toBe(true);
    const sets = sstCalls().filter((call) => call.args[1] === "set");
    expect(sets).toEqual([
      { args: ["secret", "set", "BinaryCacheSigningKey", "--stage", "prod"], stdin: secret },
    ]);
    expect(result.stdout + result.stderr).not.toContain(secret.split(":")[1]);
  });

  it("refuses to replace a key without --replace, and replaces it with", async () => {
    expect((await cacheKey(["--stage", "prod"])).code).toBe(0);
    const first = stageSecrets("prod").BinaryCacheSigningKey;
    const again = await cacheKey(["--stage", "prod"]);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe("");
    expect(again.stderr).toMatch(
      /^cache-key: BinaryCacheSigningKey is already set for stage prod; --replace makes a new key/,
    );
    expect(stageSecrets("prod").BinaryCacheSigningKey).toBe(first);
    expect(sstCalls().filter((call) => call.args[1] === "set")).toHaveLength(1);

    const replaced = await cacheKey(["--stage", "prod", "--replace"]);
    expect(replaced.code).toBe(0);
    expect(stageSecrets("prod").BinaryCacheSigningKey).not.toBe(first);
    expect(replaced.stderr).toMatch(/^Replaced BinaryCacheSigningKey for stage prod/);
  });

  it("says what is wrong in one line and sets nothing", async () => {
    expect(await cacheKey([])).toMatchObject({
      code: 1,
      stderr: "cache-key: give the stage: npm run cache-key -- --stage NAME (--help for more)\n",
    });
    expect((await cacheKey(["--stage", "Prod!"])).stderr).toBe(
      'cache-key: stage "Prod!": use lower-case letters, digits and "-", starting with a letter, at most 24\n',
    );
    const failed = await cacheKey(["--stage", "prod"], { FAKE_SST_FAIL: "set" });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toBe(
      "cache-key: sst secret set BinaryCacheSigningKey --stage prod failed (exit 1): ✕  Could not set secrets: AccessDenied\n",
    );
    expect(stageSecrets("prod")).toEqual({});
  });
});
