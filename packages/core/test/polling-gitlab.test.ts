import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createGitLabLists } from "../src/gitlab-api/job-lists";
import { type GitLabPollOptions, pollGitLab } from "../src/polling/gitlab";
import { RateGovernor } from "../src/polling/governor";
import { jobEventFromJobHook } from "../src/sources/gitlab";
import { type FakeGitLabJobs, startFakeGitLabJobs } from "./support/fake-gitlab-jobs";

/**
 * GitLab polling against a stateful fake of GitLab's job and group listings: pending and running
 * jobs of the configured projects and groups, with keyset pagination, read as the Job Hook's events;
 * a failed, cut or rate-limited page makes the project unknown, never empty.
 */

let gitlab: FakeGitLabJobs;
let clock: number;
const now = () => clock;

const governor = () => new RateGovernor({ assumedLimit: 2000, windowSeconds: 60, burst: 1000, now });

const poll = (overrides: Partial<GitLabPollOptions> = {}) =>
  pollGitLab({
    lists: createGitLabLists({ url: gitlab.url, token: gitlab.token }),
    gitlabUrl: gitlab.url,
    governor: governor(),
    projects: [],
    now,
    ...overrides,
  });

beforeEach(async () => {
  clock = Date.parse("2026-12-01T08:00:00Z");
  // A self-managed GitLab below a path prefix: paths and links must keep it.
  gitlab = await startFakeGitLabJobs({ prefix: "/gitlab", now });
});

afterEach(() => gitlab.close());

describe("GitLab polling", () => {
  it("lists a project's pending and running jobs as the Job Hook's events, with their tags", async () => {
    const project = gitlab.addProject("acme/app");
    const pending = gitlab.addJob(project, { status: "pending", createdAt: clock - 30_000 });
    const running = gitlab.addJob(project, {
      status: "running",
      createdAt: clock - 60_000,
      startedAt: clock - 50_000,
      runner: { id: 7, description: "hearth-dev-x86_64" },
      tags: ["Nix", "aarch64-linux"],
    });
    gitlab.addJob(project, { status: "success" });
    gitlab.addJob(project, { status: "manual" });

    const result = await poll({ projects: ["acme/app"] });
    expect(result.projects).toHaveLength(1);
    const [app] = result.projects;
    expect(app?.status).toBe("complete");
    expect(app?.events.map((event) => event.id)).toEqual([String(running.id), String(pending.id)]);
    const hook = jobEventFromJobHook(
      {
        object_kind: "build",
        build_id: pending.id,
        build_name: "build",
        build_stage: "test",
        build_status: "pending",
        build_created_at: new Date(pending.createdAt).toISOString(),
        build_queued_duration: 30,
        pipeline_id: pending.pipelineId,
        project_id: project.id,
        project: { path_with_namespace: "acme/app", web_url: `${gitlab.url}/acme/app` },
      },
      new Date(clock),
    );
    expect(app?.events[1]).toEqual({ ...hook, labels: ["nix", "x86_64-linux"], labelsKnown: true });
    expect(app?.events[0]).toMatchObject({
      status: "running",
      queuedAt: new Date(clock - 60_000).toISOString(),
      labels: ["aarch64-linux", "nix"],
      runner: { id: "7", name: "hearth-dev-x86_64" },
    });
    const [call] = gitlab.requests;
    expect(call?.query.getAll("scope[]")).toEqual(["pending", "running"]);
    expect(call?.query.get("pagination")).toBe("keyset");
  });

  it("follows keyset pages, and polls every project of a group and its subgroups", async () => {
    const big = gitlab.addProject("acme/big", ["acme"]);
    for (let index = 0; index < 230; index++) gitlab.addJob(big, { status: "pending" });
    const nested = gitlab.addProject("acme/tools/cli", ["acme", "acme/tools"]);
    gitlab.addJob(nested, { status: "running", startedAt: clock });
    gitlab.addProject("other/app", ["other"]);

    const result = await poll({ groups: ["acme"] });
    expect(result.groups).toEqual([{ group: "acme", status: "complete", projects: 2 }]);
    expect(
      result.projects.map((project) => [project.project, project.status, project.events.length]),
    ).toEqual([
      [String(big.id), "complete", 230],
      [String(nested.id), "complete", 1],
    ]);
    expect(result.projects[1]?.events[0]?.project).toBe("acme/tools/cli");
    expect(
      gitlab.requests.filter((call) => call.path.endsWith("/jobs")).map((call) => call.query.has("cursor")),
    ).toEqual([false, true, true, false]);

    // The group's projects are remembered until their TTL: the next poll lists only jobs.
    const before = gitlab.requests.length;
    clock += 60_000;
    const again = await poll({ groups: ["acme"], state: result.state });
    expect(again.groups[0]?.status).toBe("complete");
    expect(gitlab.requests.slice(before).some((call) => call.path.startsWith("/groups/"))).toBe(false);
  });

  it.each([
    ["a 500", { status: 500 }, /answered 500/],
    ["a 429", { status: 429, retryAfterSeconds: 30 }, /429/],
    ["a page cut short", "cut" as const, /not a whole list/],
  ])(
    "says unknown for a project when %s answers a page, and keeps the jobs of pages before",
    async (_name, injected, reason) => {
      const project = gitlab.addProject("acme/app");
      for (let index = 0; index < 150; index++) gitlab.addJob(project, { status: "pending" });
      let jobCalls = 0;
      gitlab.inject(1, injected, (path) => path.endsWith("/jobs") && ++jobCalls === 2);
      const [app] = (await poll({ projects: ["acme/app"] })).projects;
      expect(app?.status).toBe("unknown");
      expect(app?.reason).toMatch(reason);
      expect(app?.events).toHaveLength(100);
    },
  );

  it("honours Retry-After: the projects after a 429 are not reached, and the next poll starts there", async () => {
    for (const name of ["a", "b", "c"]) gitlab.addJob(gitlab.addProject(`acme/${name}`), {});
    let jobCalls = 0;
    gitlab.inject(1, { status: 429, retryAfterSeconds: 30 }, () => ++jobCalls === 2);
    const shared = governor();
    const projects = ["acme/a", "acme/b", "acme/c"];
    const first = await poll({ governor: shared, projects });
    expect(first.projects.map((project) => project.status)).toEqual(["complete", "unknown", "unknown"]);
    expect(first.budget).toMatchObject({ calls: 2, denied: undefined });
    expect(first.budget.blockedUntil?.getTime()).toBe(clock + 30_000);

    clock += 10_000;
    const held = await poll({ governor: shared, projects, state: first.state });
    expect(held.projects.every((project) => project.status === "unknown")).toBe(true);
    expect(held.budget.calls).toBe(0);

    clock += 21_000;
    const after = await poll({ governor: shared, projects, state: held.state });
    expect(after.projects.map((project) => [project.project, project.status])).toEqual([
      ["acme/b", "complete"],
      ["acme/c", "complete"],
      ["acme/a", "complete"],
    ]);
  });

  it("reads GitLab's RateLimit headers and stops before the token's limit", async () => {
    await gitlab.close();
    gitlab = await startFakeGitLabJobs({ prefix: "/gitlab", now, rateLimit: 20 });
    const projects = Array.from(
      { length: 30 },
      (_, index) => gitlab.addProject(`acme/p${index}`).path_with_namespace,
    );
    // A governor that assumes a larger budget learns the real one from the first answer.
    const learning = new RateGovernor({ assumedLimit: 2000, windowSeconds: 60, share: 1, burst: 1000, now });
    const result = await poll({ governor: learning, projects });
    // The reserve (10% of 20) stays whole: the forge never answered a 429.
    expect(result.budget).toMatchObject({ calls: 18, forgeRemaining: 2, limit: 20, denied: "reserve" });
    expect(gitlab.requests.every((call) => call.status === 200)).toBe(true);
    expect(result.projects.filter((project) => project.status === "complete")).toHaveLength(18);
  });
});
