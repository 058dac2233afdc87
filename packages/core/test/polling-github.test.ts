import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createGitHubClient, type GitHubClientConfig } from "../src/github-api/client";
import { type GitHubPollOptions, pollGitHub } from "../src/polling/github";
import { RateGovernors } from "../src/polling/governor";
import { jobEventFromWorkflowJob } from "../src/sources/github";
import { workflowJobExamples } from "./fixtures";
import { FakeGitHub } from "./support/fake-github";

/**
 * GitHub polling against the fake built from GitHub's OpenAPI description: failed deliveries
 * redelivered, queued and in-progress runs and their jobs read as `workflow_job` events, and every
 * failed, partial or rate-limited listing reported as unknown, never as "no jobs".
 */

let github: FakeGitHub;
let clock: number;
const now = () => clock;

function appClient(overrides: Partial<GitHubClientConfig> = {}) {
  return createGitHubClient({
    credentials: { kind: "app", appId: github.appId, privateKey: github.privateKey },
    baseUrl: github.baseUrl,
    retryAfterBaseMs: 1,
    writeSpacingMs: 0,
    // Polling lets the governor answer a limit: the client does not sleep through it.
    rateLimitRetries: 0,
    serverErrorRetries: 0,
    now,
    ...overrides,
  });
}

const governors = (share = 0.1) =>
  new RateGovernors({ assumedLimit: 5000, windowSeconds: 3600, share, burst: 1000, now });

const poll = (overrides: Partial<GitHubPollOptions> = {}) =>
  pollGitHub({
    client: appClient(),
    governors: governors(),
    repositories: ["acme/app"],
    now,
    ...overrides,
  });

const calls = (template: string) => github.requests.filter((call) => call.template === template);

beforeEach(async () => {
  clock = Date.parse("2026-12-01T08:00:00Z");
  github = await new FakeGitHub({ now }).start();
  github.install("acme");
});

afterEach(async () => {
  await github.stop();
  expect(github.violations).toEqual([]);
});

describe("reading the App's failed workflow_job deliveries", () => {
  const queuedExample = () => {
    const example = workflowJobExamples.find((payload) => payload.action === "queued");
    if (!example) throw new Error("GitHub's examples have a queued workflow_job");
    return structuredClone(example);
  };

  it("takes the job from a failed delivery's payload, and redelivers nothing", async () => {
    const payload = queuedExample();
    const failed = github.addDelivery({ event: "workflow_job", action: "queued", statusCode: 0, payload });
    github.addDelivery({
      event: "workflow_job",
      action: "queued",
      statusCode: 200,
      payload: queuedExample(),
    });

    const result = await poll({ repositories: [] });
    expect(github.deliveryReads).toEqual([failed.id]);
    expect(github.redeliveryRequests).toEqual([]);
    expect(result.deliveries.read).toEqual([failed.id]);
    expect(result.deliveries.events).toEqual([jobEventFromWorkflowJob(payload)]);
    expect(result.deliveries.events[0]).toMatchObject({
      source: "github",
      id: String(payload.workflow_job.id),
      status: "queued",
    });
    expect(result.state.read).toEqual([failed.guid]);

    // A pass that sees it again (its mark was not moved) neither reads nor redelivers it.
    const again = await poll({ repositories: [], state: { read: result.state.read } });
    expect(again.deliveries.read).toEqual([]);
    expect(github.deliveryReads).toEqual([failed.id]);
    expect(github.redeliveryRequests).toEqual([]);
  });

  it("redelivers one whose payload GitHub did not keep, or that is not a job", async () => {
    const kept = github.addDelivery({ event: "workflow_job", action: "queued", statusCode: 500 });
    const odd = github.addDelivery({
      event: "workflow_job",
      action: "queued",
      statusCode: 500,
      payload: { action: "queued", workflow_job: { id: "not a number" } },
    });
    const result = await poll({ repositories: [] });
    expect(github.deliveryReads).toEqual([kept.id, odd.id]);
    expect(github.redeliveryRequests).toEqual([kept.id, odd.id]);
    expect(result.deliveries).toMatchObject({ read: [], events: [], redelivered: [kept.id, odd.id] });
  });

  it("reads a job's queued delivery before its others, and counts reads against the poll's limit", async () => {
    const completed = queuedExample();
    completed.action = "completed";
    completed.workflow_job.status = "completed";
    completed.workflow_job.conclusion = "success";
    const done = github.addDelivery({
      event: "workflow_job",
      action: "completed",
      statusCode: 0,
      payload: completed,
    });
    const queued = github.addDelivery({
      event: "workflow_job",
      action: "queued",
      statusCode: 0,
      payload: queuedExample(),
    });
    const first = await poll({ repositories: [], maxRedeliveries: 1 });
    expect(first.deliveries).toMatchObject({ status: "unknown", read: [queued.id] });
    const second = await poll({ repositories: [], maxRedeliveries: 1, state: first.state });
    expect(second.deliveries).toMatchObject({ status: "complete", read: [done.id] });
    expect(second.deliveries.events[0]).toMatchObject({ status: "completed" });
  });
});

describe("redelivering the App's failed webhook deliveries", () => {
  it("redelivers each failed workflow delivery once, and nothing delivered, redelivered, old or unread", async () => {
    const old = github.addDelivery({
      event: "workflow_job",
      statusCode: 502,
      deliveredAt: clock - 2 * 86_400_000,
    });
    const failed = github.addDelivery({ event: "workflow_job", action: "queued", statusCode: 500 });
    const timedOut = github.addDelivery({ event: "workflow_run", action: "completed", statusCode: 0 });
    github.addDelivery({ event: "workflow_job", statusCode: 200 });
    github.addDelivery({ event: "push", statusCode: 500 });
    const retried = github.addDelivery({ event: "workflow_job", statusCode: 503 });
    github.addDelivery({ event: "workflow_job", statusCode: 200, guid: retried.guid, redelivery: true });

    const first = await poll({ repositories: [] });
    expect(first.deliveries).toEqual({
      status: "complete",
      redelivered: [failed.id, timedOut.id],
      read: [],
      events: [],
    });
    expect(github.redeliveryRequests).toEqual([failed.id, timedOut.id]);
    expect(github.redeliveryRequests).not.toContain(old.id);
    expect(first.state.deliveriesCheckedThrough).toBe(github.deliveries.at(-3)?.id);

    // The next pass reads only what is newer than the mark, and redelivers nothing again.
    const second = await poll({ repositories: [], state: first.state });
    expect(second.deliveries.redelivered).toEqual([]);
    expect(github.redeliveryRequests).toEqual([failed.id, timedOut.id]);
  });

  it("redelivers the jobs' queued deliveries first, the rest oldest first", async () => {
    const completed = github.addDelivery({ event: "workflow_job", action: "completed", statusCode: 0 });
    const run = github.addDelivery({ event: "workflow_run", action: "completed", statusCode: 502 });
    const queued = github.addDelivery({ event: "workflow_job", action: "queued", statusCode: 0 });
    const later = github.addDelivery({ event: "workflow_job", action: "queued", statusCode: 500 });
    await poll({ repositories: [], maxRedeliveries: 3 });
    expect(github.redeliveryRequests).toEqual([queued.id, later.id, completed.id]);
    expect(github.redeliveryRequests).not.toContain(run.id);
  });

  it("asks again for a delivery whose redelivery failed too, up to three times in all", async () => {
    const failed = github.addDelivery({ event: "workflow_job", action: "queued", statusCode: 0 });
    // Hearth's endpoint does not answer the redeliveries either (GitHub records them as failed).
    github.redeliveryStatusCode = 502;
    let state = (await poll({ repositories: [] })).state;
    expect(github.redeliveryRequests).toEqual([failed.id]);
    for (let pass = 0; pass < 4; pass++) state = (await poll({ repositories: [], state })).state;
    // The first redelivery's failure and the second's were each asked again; the third's is left to
    // the runs' listing, and nothing is asked without end.
    expect(github.redeliveryRequests).toHaveLength(3);
    expect(state.redeliveries).toEqual({ [failed.guid]: 3 });
    const attempts = github.deliveries.filter((delivery) => delivery.guid === failed.guid);
    expect(attempts.map((delivery) => [delivery.redelivery, delivery.statusCode])).toEqual([
      [false, 0],
      [true, 502],
      [true, 502],
      [true, 502],
    ]);
  });

  it("follows the listing's cursor across pages", async () => {
    const failed = github.addDelivery({ event: "workflow_job", statusCode: 500 });
    for (let index = 0; index < 150; index++) github.addDelivery({ event: "workflow_job", statusCode: 200 });
    const result = await poll({ repositories: [] });
    expect(result.deliveries).toEqual({ status: "complete", redelivered: [failed.id], read: [], events: [] });
    expect(calls("/app/hook/deliveries")).toHaveLength(2);
  });

  it("says unknown, and keeps its mark, when a page of deliveries fails", async () => {
    github.addDelivery({ event: "workflow_job", statusCode: 500 });
    github.injectServerError(1, (_method, template) => template === "/app/hook/deliveries");
    const result = await poll({ repositories: [], state: { deliveriesCheckedThrough: 5 } });
    expect(result.deliveries.status).toBe("unknown");
    expect(result.deliveries.reason).toMatch(/502/);
    expect(result.state.deliveriesCheckedThrough).toBe(5);
  });

  it("is unavailable with a personal access token, which cannot act as the App", async () => {
    github.personalAccessTokens.set("ghp_test", ["acme"]);
    const client = createGitHubClient({
      credentials: { kind: "personal-access-token", token: "ghp_test", forLocalModeOnly: true },
      baseUrl: github.baseUrl,
      rateLimitRetries: 0,
      now,
    });
    const result = await poll({ client, repositories: [] });
    expect(result.deliveries.status).toBe("unavailable");
  });
});

describe("listing the runs and jobs of active repositories", () => {
  it("reads queued jobs in queued and in-progress runs as the webhook's events", async () => {
    const queuedRun = github.addRun("acme/app", { status: "queued", jobs: [{ status: "queued" }] });
    const busyRun = github.addRun("acme/app", {
      status: "in_progress",
      jobs: [
        { status: "in_progress", runnerName: "hearth-i-0123456789abcdef0-0" },
        { status: "queued", labels: ["self-hosted", "nix", "X86_64-linux"] },
      ],
    });
    github.addRun("acme/app", { status: "completed", jobs: [{ status: "completed" }] });
    github.addRun("acme/quiet", { status: "queued", jobs: [{ status: "queued" }] });

    const result = await poll();
    expect(result.repositories).toHaveLength(1);
    const [app] = result.repositories;
    expect(app?.status).toBe("complete");
    const byId = new Map(app?.events.map((event) => [event.id, event]));
    expect(byId.size).toBe(3);
    const hidden = busyRun.jobs[1];
    expect(byId.get(String(hidden?.id))).toMatchObject({
      source: "github",
      project: "acme/app",
      pipelineId: String(busyRun.id),
      status: "queued",
      labels: ["nix", "self-hosted", "x86_64-linux"],
      labelsKnown: true,
    });
    expect(byId.get(String(busyRun.jobs[0]?.id))).toMatchObject({
      status: "running",
      instanceId: "i-0123456789abcdef0",
    });
    expect(byId.get(String(queuedRun.jobs[0]?.id))?.status).toBe("queued");
    // Only the ledger's active repositories are listed; each run's jobs with filter=latest.
    expect(github.requests.some((call) => call.path.includes("/acme/quiet/"))).toBe(false);
    const jobCalls = calls("/repos/{owner}/{repo}/actions/runs/{run_id}/jobs");
    expect(jobCalls).toHaveLength(2);
    expect(jobCalls.every((call) => call.query.includes("filter=latest"))).toBe(true);
  });

  it("makes the same event a webhook makes of the same job", async () => {
    const run = github.addRun("acme/app", { status: "queued", jobs: [{ status: "queued" }] });
    const [app] = (await poll()).repositories;
    const job = run.jobs[0];
    const webhook = jobEventFromWorkflowJob({
      action: "queued",
      workflow_job: {
        id: job?.id,
        run_id: run.id,
        run_attempt: 1,
        name: job?.name,
        workflow_name: "CI",
        status: "queued",
        conclusion: null,
        created_at: new Date(job?.createdAt ?? 0).toISOString(),
        started_at: new Date(job?.createdAt ?? 0).toISOString(),
        completed_at: null,
        labels: job?.labels,
        runner_id: null,
        runner_name: null,
        html_url: `https://github.com/acme/app/actions/runs/${run.id}/job/${job?.id}`,
      },
      repository: { full_name: "acme/app" },
    });
    expect(app?.events).toEqual([webhook]);
  });

  it("says unknown for a repository whose page failed, keeps what it saw, and polls the others", async () => {
    github.addRun("acme/app", { status: "queued", jobs: [{ status: "queued" }] });
    github.addRun("acme/app", { status: "in_progress", jobs: [{ status: "queued" }] });
    github.addRun("acme/other", { status: "queued", jobs: [{ status: "queued" }] });
    let jobsPages = 0;
    github.injectServerError(1, (_method, template) => {
      if (template !== "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs") return false;
      return ++jobsPages === 2;
    });
    const result = await poll({ repositories: ["acme/app", "acme/other"] });
    const [app, other] = result.repositories;
    expect(app).toMatchObject({ repository: "acme/app", status: "unknown" });
    expect(app?.reason).toMatch(/502/);
    expect(app?.events).toHaveLength(1);
    expect(other).toMatchObject({ repository: "acme/other", status: "complete" });
    expect(other?.events).toHaveLength(1);
  });

  it("says unknown for a listing whose pages hold fewer items than its total count", async () => {
    const jobs = Array.from({ length: 3 }, () => ({ status: "queued" as const }));
    github.addRun("acme/app", { status: "queued", jobs });
    github.injectTruncatedPage(1, (_method, template) => template.endsWith("/jobs"));
    const [app] = (await poll()).repositories;
    expect(app?.status).toBe("unknown");
    expect(app?.reason).toMatch(/2 of 3 items listed/);
  });

  it("pages through a long listing, and a run's many jobs", async () => {
    for (let index = 0; index < 120; index++)
      github.addRun("acme/app", { status: "queued", jobs: [{ status: "queued" }] });
    github.addRun("acme/app", {
      status: "in_progress",
      jobs: Array.from({ length: 130 }, () => ({ status: "queued" as const })),
    });
    const [app] = (await poll()).repositories;
    expect(app?.status).toBe("complete");
    expect(app?.events).toHaveLength(250);
  });

  it("stops at a 429: that repository and the rest are unknown, and the next poll starts there", async () => {
    for (const name of ["a", "b", "c"])
      github.addRun(`acme/${name}`, { status: "queued", jobs: [{ status: "queued" }] });
    let runsCalls = 0;
    github.injectSecondaryRateLimit(
      1,
      60,
      (_method, template) => template === "/repos/{owner}/{repo}/actions/runs" && ++runsCalls === 3,
      429,
    );
    const shared = governors();
    const client = appClient();
    const repositories = ["acme/a", "acme/b", "acme/c"];
    const first = await poll({ client, governors: shared, repositories });
    expect(first.repositories.map((repo) => repo.status)).toEqual(["complete", "unknown", "unknown"]);
    expect(first.repositories[1]?.reason).toMatch(/rate limit/);
    expect(first.state.resumeAfter).toBe("acme/a");

    // GitHub said to wait a minute: a poll before then calls nothing for the repositories.
    clock += 30_000;
    const before = github.requests.length;
    const held = await poll({ client, governors: shared, repositories, state: first.state });
    expect(held.repositories.every((repo) => repo.status === "unknown")).toBe(true);
    expect(held.repositories[0]?.reason).toMatch(/Retry-After/);
    expect(github.requests.slice(before).filter((call) => call.path.startsWith("/repos/"))).toEqual([]);

    clock += 31_000;
    const after = await poll({ client, governors: shared, repositories, state: held.state });
    expect(after.repositories.map((repo) => [repo.repository, repo.status])).toEqual([
      ["acme/b", "complete"],
      ["acme/c", "complete"],
      ["acme/a", "complete"],
    ]);
  });
});

describe("the budget", () => {
  it("keeps an hour of minute polls of 1,000 active repositories under 10% of 5,000 calls an hour", async () => {
    await github.stop();
    github = await new FakeGitHub({ now, rateLimit: 5000 }).start();
    github.install("acme");
    const repositories = Array.from({ length: 1000 }, (_, index) => `acme/repo-${index}`);
    for (const repository of repositories) {
      github.addRun(repository, { status: "in_progress", jobs: [{ status: "queued" }] });
    }
    const client = appClient();
    const shared = new RateGovernors({ assumedLimit: 5000, windowSeconds: 3600, now });
    const installation = await client.bucketOf({ repository: repositories[0] as string });
    let state: GitHubPollOptions["state"];
    const polled = new Set<string>();
    const perPoll: number[] = [];
    const start = clock;
    for (let minute = 0; minute < 60; minute++) {
      clock = start + minute * 60_000;
      const result = await pollGitHub({ client, governors: shared, repositories, state, now });
      state = result.state;
      perPoll.push(result.budget[installation]?.calls ?? 0);
      for (const repo of result.repositories) if (repo.status === "complete") polled.add(repo.repository);
      expect(result.budget[installation]?.forgeRemaining ?? 5000).toBeGreaterThan(500);
    }
    const spent = github.requests.filter((call) =>
      call.template?.startsWith("/repos/{owner}/{repo}/actions/"),
    );
    expect(spent.length).toBeLessThanOrEqual(500);
    expect(perPoll.reduce((sum, calls) => sum + calls, 0)).toBe(spent.length);
    // Paced, not spent at once: every poll made progress, and the rotation reached new repositories.
    expect(perPoll.every((calls) => calls > 0)).toBe(true);
    expect(Math.max(...perPoll)).toBeLessThanOrEqual(12);
    expect(polled.size).toBeGreaterThan(100);
  }, 120_000);
});
