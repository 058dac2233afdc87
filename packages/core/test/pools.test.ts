import { describe, expect, it } from "vitest";
import { describeConfigIssues } from "../src/config/keys";
import {
  defaultPools,
  type PoolConfig,
  type PoolConfigInput,
  poolConfigSchema,
  poolsConfigSchema,
  type RoutableJob,
  routeJob,
} from "../src/pools";

const pool = (input: Partial<PoolConfigInput> & Pick<PoolConfigInput, "name" | "labels">): PoolConfig =>
  poolConfigSchema.parse({ architecture: "x86_64", instanceTypes: ["c6a.xlarge"], ...input });

const github = (...labels: string[]): RoutableJob => ({ source: "github", labels, labelsKnown: true });
const gitlab = (...labels: string[]): RoutableJob => ({ source: "gitlab", labels, labelsKnown: true });

describe("pool config", () => {
  it("fills the documented defaults", () => {
    const config = pool({ name: "x", labels: ["nix"] });
    expect(config.slotsPerInstance).toBe(2);
    expect(config.maxInstances).toBe(50);
    expect(config.warm).toEqual({ warmPoolSize: 50, minReady: 0, market: "spot" });
    expect(config.burst).toEqual({ spotShare: 1, onDemandFallback: true });
    expect([config.retryInterrupted, config.retryOnDemand]).toEqual([2, true]);
    expect(config.boot).toEqual({ coldSeconds: 75, warmSeconds: 25 });
    expect(config.untagged).toBe(false);
    expect(config.ami).toBeUndefined();
    // GitHub's own default job timeout.
    expect(config.maxJobMinutes).toBe(360);
    expect(pool({ name: "x", labels: ["nix"], maxJobMinutes: 10 }).maxJobMinutes).toBe(10);
  });

  it("keeps nested values it is given and defaults the rest", () => {
    const config = pool({ name: "x", labels: ["nix"], warm: { minReady: 2 }, boot: { coldSeconds: 60 } });
    expect(config.warm).toEqual({ warmPoolSize: 50, minReady: 2, market: "spot" });
    expect(config.boot).toEqual({ coldSeconds: 60, warmSeconds: 25 });
  });

  it("stores labels as the ledger stores job labels", () => {
    expect(pool({ name: "x", labels: [" Nix", "X86_64-Linux", "nix"] }).labels).toEqual([
      "nix",
      "x86_64-linux",
    ]);
  });

  it.each([
    ["an unknown architecture", { architecture: "riscv64" }],
    ["no labels", { labels: [] }],
    ["the implied self-hosted label", { labels: ["self-hosted", "nix"] }],
    ["no instance type", { instanceTypes: [] }],
    ["a malformed instance type", { instanceTypes: ["big one"] }],
    ["a spot share above 1", { burst: { spotShare: 1.5 } }],
    ["a negative boot time", { boot: { coldSeconds: -1 } }],
    ["zero slots", { slotsPerInstance: 0 }],
    ["a job limit under GitLab's 10 minutes", { maxJobMinutes: 9 }],
    ["a job limit over 5 days", { maxJobMinutes: 7201 }],
    ["a fractional job limit", { maxJobMinutes: 30.5 }],
    ["a name AWS would reject", { name: "x86 64!" }],
  ])("rejects %s", (_, override) => {
    const result = poolConfigSchema.safeParse({
      name: "x",
      labels: ["nix"],
      architecture: "x86_64",
      instanceTypes: ["c6a.xlarge"],
      ...override,
    });
    expect(result.success).toBe(false);
  });

  it("takes the names of existing Auto Scaling groups, for single-host mode", () => {
    const named = poolConfigSchema.parse({
      ...defaultPools[0],
      autoScalingGroups: { warm: "ci-x86-warm", burst: "ci-x86-spot" },
    });
    expect(named.autoScalingGroups).toEqual({ warm: "ci-x86-warm", burst: "ci-x86-spot" });
    expect(defaultPools[0]?.autoScalingGroups).toBeUndefined();
    expect(
      poolConfigSchema.safeParse({ ...defaultPools[0], autoScalingGroups: { warm: "bad name", burst: "x" } })
        .success,
    ).toBe(false);
  });

  it("takes one default pool and refuses two", () => {
    const base = { architecture: "x86_64", instanceTypes: ["c6a.xlarge"] } as const;
    const one = poolsConfigSchema.parse([
      { ...base, name: "a", labels: ["nix"] },
      { ...base, name: "b", labels: ["nix"], default: true },
    ]);
    expect(one.map((each) => each.default)).toEqual([false, true]);
    const two = poolsConfigSchema.safeParse([
      { ...base, name: "a", labels: ["nix"], default: true },
      { ...base, name: "b", labels: ["nix"], default: true },
    ]);
    expect(two.error?.issues.map((issue) => issue.message)).toEqual([
      'at most one pool may be the default, and "default": true is on a, b',
    ]);
  });

  it("rejects duplicate pool names and a second untagged pool", () => {
    const base = { architecture: "x86_64", instanceTypes: ["c6a.xlarge"] } as const;
    expect(
      poolsConfigSchema.safeParse([
        { ...base, name: "a", labels: ["nix"] },
        { ...base, name: "a", labels: ["other"] },
      ]).success,
    ).toBe(false);
    expect(
      poolsConfigSchema.safeParse([
        { ...base, name: "a", labels: ["nix"], untagged: true },
        { ...base, name: "b", labels: ["other"], untagged: true },
      ]).success,
    ).toBe(false);
    expect(poolsConfigSchema.safeParse([]).success).toBe(false);
  });

  it("defaults to the two pools of the bundled traces", () => {
    expect(
      defaultPools.map(({ name, labels, architecture, untagged }) => ({
        name,
        labels,
        architecture,
        untagged,
      })),
    ).toEqual([
      { name: "x86_64", labels: ["nix", "x86_64-linux"], architecture: "x86_64", untagged: true },
      { name: "aarch64", labels: ["aarch64-linux", "nix"], architecture: "arm64", untagged: false },
    ]);
  });
});

describe("routeJob", () => {
  it("routes the bundled traces' label sets", () => {
    expect(routeJob(github("nix", "x86_64-linux"), defaultPools)).toEqual({ pool: "x86_64" });
    expect(routeJob(github("nix", "aarch64-linux"), defaultPools)).toEqual({ pool: "aarch64" });
  });

  it("matches GitHub labels case-insensitively, with self-hosted implied", () => {
    expect(routeJob(github("self-hosted", "NIX", "AArch64-Linux"), defaultPools)).toEqual({
      pool: "aarch64",
    });
    expect(routeJob(github("Self-Hosted", "x86_64-linux"), defaultPools)).toEqual({ pool: "x86_64" });
  });

  it("knows the labels GitHub gives every self-hosted runner: its OS and architecture", () => {
    expect(routeJob(github("self-hosted", "linux", "x64"), defaultPools)).toEqual({ pool: "x86_64" });
    expect(routeJob(github("self-hosted", "Linux", "ARM64", "nix"), defaultPools)).toEqual({
      pool: "aarch64",
    });
    expect(routeJob(github("self-hosted", "linux", "arm64", "x86_64-linux"), defaultPools)).toEqual({
      unroutable: "no pool has every label of [arm64, linux, x86_64-linux]",
    });
    expect(routeJob(github("self-hosted", "macos", "x64"), defaultPools)).toMatchObject({
      unroutable: expect.any(String),
    });
    // GitLab has no such defaults: a tag is only what the runner was registered with.
    expect(routeJob({ source: "gitlab", labels: ["linux"], labelsKnown: true }, defaultPools)).toMatchObject({
      unroutable: expect.any(String),
    });
  });

  it("routes a job asking only for self-hosted to the most generic pool", () => {
    const pools = [pool({ name: "big", labels: ["nix", "large"] }), pool({ name: "small", labels: ["nix"] })];
    expect(routeJob(github("self-hosted"), pools)).toEqual({ pool: "small" });
  });

  it("needs every job label on the pool", () => {
    const route = routeJob(github("nix", "x86_64-linux", "gpu"), defaultPools);
    expect(route).toEqual({ unroutable: "no pool has every label of [gpu, nix, x86_64-linux]" });
  });

  it.each(["ubuntu-latest", "ubuntu-24.04", "windows-2022", "macos-14", "macos-latest-xlarge", "windows"])(
    "does not take GitHub-hosted runner label %s, even if a pool carries it",
    (label) => {
      const pools = [...defaultPools, pool({ name: "odd", labels: [label] })];
      const route = routeJob(github(label), pools);
      expect(route).toEqual({ unroutable: `asks for the GitHub-hosted runner label "${label}"` });
    },
  );

  it("prefers the pool with the fewest extra labels, then the default, then the first listed", () => {
    const pools = [
      pool({ name: "zeta", labels: ["nix", "linux"] }),
      pool({ name: "alpha", labels: ["nix", "linux"] }),
      pool({ name: "wide", labels: ["nix", "linux", "kvm"] }),
    ];
    // Without a pool marked default the first one is the default: names do not decide.
    expect(routeJob(github("nix"), pools)).toEqual({ pool: "zeta" });
    expect(routeJob(github("kvm"), pools)).toEqual({ pool: "wide" });
    // The default (here `wide`) takes no tie it does not match as well as the others.
    expect(routeJob(github("nix"), [...pools].reverse())).toEqual({ pool: "alpha" });
  });

  it.each([
    ["GitHub [self-hosted]", github("self-hosted")],
    ["GitHub [self-hosted, linux]", github("self-hosted", "linux")],
    ["GitHub [self-hosted, nix]", github("self-hosted", "nix")],
    ["GitHub [self-hosted, Linux, nix]", github("self-hosted", "Linux", "nix")],
    ["GitLab [nix]", gitlab("nix")],
  ])("gives a job both default pools match equally (%s) to x86_64, the first", (_, job) => {
    expect(routeJob(job, defaultPools)).toEqual({ pool: "x86_64" });
  });

  it("gives ties to the pool the config marks as the default", () => {
    const pools = poolsConfigSchema.parse([
      ...defaultPools.map((each) => ({ ...each, default: false })),
      { ...defaultPools[1], name: "arm-big", instanceTypes: ["c7g.4xlarge"], default: false },
    ]);
    const marked = pools.map((each) => ({ ...each, default: each.name === "aarch64" }));
    for (const job of [github("self-hosted"), github("self-hosted", "nix"), gitlab("nix")]) {
      expect(routeJob(job, pools)).toEqual({ pool: "x86_64" });
      expect(routeJob(job, marked)).toEqual({ pool: "aarch64" });
    }
    // A job only one pool can run still goes there: the default decides ties, nothing else.
    expect(routeJob(github("x64"), marked)).toEqual({ pool: "x86_64" });
    expect(routeJob(gitlab("nix", "x86_64-linux"), marked)).toEqual({ pool: "x86_64" });
    // Untagged GitLab jobs go to the `untagged` pool, default or not.
    expect(routeJob(gitlab(), marked)).toEqual({ pool: "x86_64" });
  });

  it("routes GitLab jobs by tags, untagged ones to the untagged pool", () => {
    expect(routeJob(gitlab("nix", "aarch64-linux"), defaultPools)).toEqual({ pool: "aarch64" });
    expect(routeJob(gitlab(), defaultPools)).toEqual({ pool: "x86_64" });
    expect(routeJob(gitlab("docker"), defaultPools)).toEqual({
      unroutable: "no pool has every tag of [docker]",
    });
  });

  it("routes a GitLab job with unknown tags as untagged", () => {
    const unknown: RoutableJob = { source: "gitlab", labels: [], labelsKnown: false };
    expect(routeJob(unknown, defaultPools)).toEqual({ pool: "x86_64" });
    // Labels are meaningless while unknown, whatever they hold.
    expect(routeJob({ ...unknown, labels: ["aarch64-linux"] }, defaultPools)).toEqual({ pool: "x86_64" });
  });

  it("says why when no pool takes untagged jobs", () => {
    const pools = defaultPools.map((p) => ({ ...p, untagged: false }));
    expect(routeJob(gitlab(), pools)).toEqual({ unroutable: "untagged, and no pool takes untagged jobs" });
    expect(routeJob({ source: "gitlab", labels: [], labelsKnown: false }, pools)).toEqual({
      unroutable: "tags not known yet (routed as untagged), and no pool takes untagged jobs",
    });
  });
});

describe("pool config: where GitHub runners register", () => {
  const base = { name: "x", labels: ["nix"], architecture: "x86_64", instanceTypes: ["c6a.xlarge"] } as const;
  const issues = (github: unknown): string[] => {
    const result = poolConfigSchema.safeParse({ ...base, github });
    return result.success ? [] : describeConfigIssues(result.error);
  };

  it("takes a repository, or an organization whose runner group defaults to 1", () => {
    expect(poolConfigSchema.parse({ ...base, github: { repository: "acme/widgets.js" } }).github).toEqual({
      repository: "acme/widgets.js",
    });
    expect(poolConfigSchema.parse({ ...base, github: { organization: "acme" } }).github).toEqual({
      organization: "acme",
      runnerGroupId: 1,
    });
    const grouped = poolConfigSchema.parse({
      ...base,
      github: { organization: "acme-corp", runnerGroupId: 7 },
    });
    expect(grouped.github).toEqual({ organization: "acme-corp", runnerGroupId: 7 });
    // A parsed pool parses again to itself, as the simulator re-parses pools.
    expect(poolConfigSchema.parse(grouped).github).toEqual(grouped.github);
    expect(poolConfigSchema.parse(base).github).toBeUndefined();
  });

  it.each([
    [
      "both",
      { repository: "acme/widgets", organization: "acme" },
      "github: give exactly one of `repository` and `organization`",
    ],
    ["neither", {}, "github: give exactly one of `repository` and `organization`"],
    ["a repository without its owner", { repository: "widgets" }, "github.repository: `owner/name`"],
    [
      "an owner GitHub would refuse",
      { repository: "-acme/widgets" },
      "github.repository: the owner is not a GitHub account name",
    ],
    ["the repository `..`", { repository: "acme/.." }, "github.repository: not a repository name"],
    [
      "an organization with a slash",
      { organization: "acme/widgets" },
      "github.organization: a GitHub user or organization name",
    ],
    [
      "runner group 0",
      { organization: "acme", runnerGroupId: 0 },
      "github.runnerGroupId: Too small: expected number to be >=1",
    ],
    [
      "a runner group for a repository",
      { repository: "acme/widgets", runnerGroupId: 2 },
      "github.runnerGroupId: runner groups belong to organizations; a repository's runners have none",
    ],
    [
      "a misspelled key",
      { organisation: "acme" },
      'github.organisation: unknown key "organisation"; did you mean "organization"?',
    ],
  ])("refuses %s, saying why", (_, github, message) => {
    expect(issues(github)).toContain(message);
  });
});

describe("pool config: where the GitLab runner is registered", () => {
  const base = { name: "x", labels: ["nix"], architecture: "x86_64", instanceTypes: ["c6a.xlarge"] } as const;
  const issues = (gitlab: unknown): string[] => {
    const result = poolConfigSchema.safeParse({ ...base, gitlab });
    return result.success ? [] : describeConfigIssues(result.error);
  };

  it("takes a project, a group or the instance, and parses again to itself", () => {
    for (const gitlab of [
      { project: "acme/widgets" },
      { project: "acme/ci/widgets.js" },
      { group: "acme" },
      { group: "acme/ci_runners" },
      { instance: true },
    ]) {
      const parsed = poolConfigSchema.parse({ ...base, gitlab });
      expect(parsed.gitlab).toEqual(gitlab);
      expect(poolConfigSchema.parse(parsed).gitlab).toEqual(gitlab);
    }
    expect(poolConfigSchema.parse(base).gitlab).toBeUndefined();
  });

  it.each([
    [
      "both a project and a group",
      { project: "acme/w", group: "acme" },
      "gitlab: give exactly one of `project`, `group` and `instance`",
    ],
    ["nothing", {}, "gitlab: give exactly one of `project`, `group` and `instance`"],
    [
      "a project without its group",
      { project: "widgets" },
      "gitlab.project: a project's full path, `group/project` (subgroups allowed)",
    ],
    [
      "a project path ending in .git",
      { project: "acme/widgets.git" },
      "gitlab.project: a project's full path, `group/project` (subgroups allowed)",
    ],
    [
      "a URL for a group",
      { group: "https://gitlab.com/acme" },
      "gitlab.group: a group's full path, `group` or `group/subgroup`",
    ],
    [
      "an empty segment",
      { group: "acme//ci" },
      "gitlab.group: a group's full path, `group` or `group/subgroup`",
    ],
    ["instance: false", { instance: false }, "gitlab.instance: `instance` takes only `true`"],
    [
      "a misspelled key",
      { projet: "acme/w" },
      'gitlab.projet: unknown key "projet"; did you mean "project"?',
    ],
  ])("refuses %s, saying why", (_, gitlab, message) => {
    expect(issues(gitlab)).toContain(message);
  });
});
