import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FakeClock } from "../src/clock";
import { BOOT_GRACE_MS } from "../src/fleet";
import type { RunnerScope } from "../src/github-api";
import { createGitHubClient } from "../src/github-api/client";
import { MintingBudget, runnersFor } from "../src/github-api/runners";
import { gitlabSystemId } from "../src/gitlab-api";
import { createGitLabLists } from "../src/gitlab-api/job-lists";
import { createGitLabRunnerManagers } from "../src/gitlab-api/runner-client";
import { createInstanceRegistry, type InstanceRegistry } from "../src/instances";
import { createJournal, type Journal } from "../src/journal";
import { createLeases, type Leases } from "../src/leases";
import { createLedger, type Ledger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { RateGovernor, RateGovernors } from "../src/polling/governor";
import { loadReconciliationState, reconciliationLease, saveReconciliationState } from "../src/polling/state";
import { type PoolConfig, poolConfigSchema } from "../src/pools";
import { createRunnerRecords, type RunnerDeps } from "../src/runners";
import { SimulatedFleet } from "../src/simulation/fleet";
import {
  createSweepGovernors,
  createSweepMarks,
  type SweepActOutcome,
  type SweepDeps,
  type SweepSurvey,
  storedSweepBudget,
  sweepAct,
  sweepFinish,
  sweepSurvey,
} from "../src/sweep";
import { DUE_PER_SWEEP } from "../src/sweep/survey";
import { ensureTable } from "../src/table";
import { FakeGitHub } from "./support/fake-github";
import { type FakeGitLabRunners, startFakeGitLabRunners } from "./support/fake-gitlab-runners";
import { jobEvent } from "./support/jobs";

/**
 * The sweep against real parts: embedded DynamoDB, Hearth's GitHub client against the fake built from
 * GitHub's OpenAPI description, Hearth's GitLab clients against a stateful GitLab fake, and the
 * simulated fleet on a clock the test moves. Each class is marked by one sweep and acted on by the
 * next after a fresh read; a thing that recovers in between is cleared; a listing that fails, is cut
 * or is rate-limited makes the sweep do nothing destructive.
 */

const scope: RunnerScope = { repository: "acme/widgets" };
const ADMIN_TOKEN = "glpat-admin-api-token";

const pool: PoolConfig = poolConfigSchema.parse({
  name: "x86",
  labels: ["nix", "x86_64-linux"],
  architecture: "x86_64",
  instanceTypes: ["c6a.xlarge"],
  slotsPerInstance: 2,
  github: scope,
  gitlab: { project: "acme/app" },
  boot: { coldSeconds: 60, warmSeconds: 20 },
  warm: { market: "on-demand" },
});

let embedded: EmbeddedDynamo | undefined;
beforeAll(async () => {
  embedded = await startEmbeddedDynamo();
});
afterAll(async () => {
  await embedded?.close();
});

let clock: FakeClock;
let github: FakeGitHub;
let gitlab: FakeGitLabRunners;
let fleet: SimulatedFleet;
let ledger: Ledger;
let registry: InstanceRegistry;
let journal: Journal;
let deps: SweepDeps;
let store: { client: ReturnType<typeof localDynamoClients>["documents"]; tableName: string; now: () => Date };
let leases: Leases;
let runnerToken: string;
let gitlabRunnerId: number;
let sweeps = 0;

const now = () => new Date(clock.now());

beforeEach(async () => {
  clock = new FakeClock(Date.parse("2026-12-01T10:00:00Z"));
  github = await new FakeGitHub({ now: () => clock.now() }).start();
  github.install("acme");
  gitlab = await startFakeGitLabRunners({
    users: { [ADMIN_TOKEN]: { scopes: ["api"], admin: true } },
    projects: [{ id: 42, path_with_namespace: "acme/app" }],
  });
  const runner = gitlab.addRunner({
    description: "hearth-test-x86",
    runner_type: "project_type",
    project_id: 42,
    tag_list: ["nix"],
    run_untagged: false,
  });
  runnerToken = runner.token;
  gitlabRunnerId = runner.id;
  const { client, documents } = localDynamoClients(embedded?.endpoint ?? "");
  const tableName = `sweep-${randomUUID()}`;
  await ensureTable(client, tableName);
  store = { client: documents, tableName, now };
  leases = createLeases(store);
  ledger = createLedger({ client: documents, tableName, now });
  registry = createInstanceRegistry(store);
  journal = createJournal(store);
  fleet = new SimulatedFleet({ pools: [pool], clock });
  const githubClient = createGitHubClient({
    credentials: { kind: "app", appId: github.appId, privateKey: github.privateKey },
    baseUrl: github.baseUrl,
    retryAfterBaseMs: 1,
    writeSpacingMs: 0,
    rateLimitRetries: 0,
    serverErrorRetries: 0,
    now: () => clock.now(),
  });
  const budget = new MintingBudget({ now: () => clock.now() });
  const runners: RunnerDeps = {
    records: createRunnerRecords(store),
    fleet,
    github: (s) => runnersFor(githubClient, s, budget),
    gitlab: {
      managers: createGitLabRunnerManagers({ url: gitlab.url }),
      tokenOf: (name) => (name === "x86" ? runnerToken : undefined),
    },
    journal,
    now,
  };
  const governorOptions = { assumedLimit: 5000, windowSeconds: 3600, burst: 1000, now: () => clock.now() };
  deps = {
    pools: [pool],
    ledger,
    registry,
    journal,
    fleet,
    runners,
    gitlab: { lists: createGitLabLists({ url: gitlab.url, token: ADMIN_TOKEN }), url: gitlab.url },
    marks: createSweepMarks(store),
    governors: { github: new RateGovernors(governorOptions), gitlab: new RateGovernor(governorOptions) },
    settings: { dryRun: false },
    now,
  };
});

afterEach(async () => {
  await github.stop();
  await gitlab.close();
  expect(github.violations).toEqual([]);
});

/** One whole sweep, as the workflow runs it: Survey, Act on each due action, Finish. */
async function sweep(): Promise<{ survey: SweepSurvey; outcomes: SweepActOutcome[] }> {
  const sweepId = `sweep-${++sweeps}`;
  const survey = await sweepSurvey(deps, { sweepId });
  // Through JSON, as Step Functions passes it.
  const passed = JSON.parse(JSON.stringify(survey)) as SweepSurvey;
  const outcomes: SweepActOutcome[] = [];
  for (const action of passed.due) outcomes.push(await sweepAct(deps, { sweepId, action }));
  await sweepFinish(deps, { survey: passed, outcomes });
  return { survey, outcomes };
}

/** Launches `count` instances and lets them boot into service. */
async function launch(count: number): Promise<string[]> {
  await fleet.setCapacity(pool, { warm: count, burst: 0, warmPoolSize: 0 });
  await clock.advance(61_000);
  return fleet
    .all()
    .filter((instance) => instance.lifecycle === "in-service")
    .map((instance) => instance.id);
}

/** The instance's agent reports (and registers it, as a first heartbeat does). */
async function beat(instanceId: string, runningJobs: { source: "github" | "gitlab"; id: string }[] = []) {
  const member = await fleet.lookup(instanceId);
  if (!member) throw new Error(`${instanceId} is in no group`);
  if (!(await registry.get(instanceId))) await registry.register({ ...member, slots: 2 });
  await registry.heartbeat(instanceId, {
    instanceId,
    runner: "ready",
    slots: 2,
    runningJobs,
    cacheKeys: [],
    storeBytes: null,
    interruption: null,
  });
}

const ghostName = "hearth-i-0aaaaaaaaaaaaaaaa-0";
const runnersNamed = (name: string) => github.runnersOf("acme/widgets").filter((r) => r.name === name);

describe("ghost runners", () => {
  it("marks an offline Hearth runner with no live instance, and deletes it the next sweep", async () => {
    const [live] = await launch(1);
    await beat(live as string);
    github.addRunner("acme/widgets", ghostName);
    github.addRunner("acme/widgets", "ci-box-1");
    const online = github.addRunner("acme/widgets", `hearth-i-0bbbbbbbbbbbbbbbb-0`);
    github.setOnline("acme/widgets", online.id);
    const own = github.addRunner("acme/widgets", `hearth-${live}-0`);

    const first = await sweep();
    expect(first.survey.complete).toBe(true);
    expect(first.survey.marked["ghost-runner"]).toBe(1);
    expect(first.survey.due).toEqual([]);
    expect(runnersNamed(ghostName)).toHaveLength(1);

    const second = await sweep();
    expect(second.survey.due.map((action) => action.subject)).toEqual([
      expect.stringMatching(/^github-runner:acme\/widgets:\d+$/),
    ]);
    expect(second.outcomes.map((outcome) => outcome.kind)).toEqual(["done"]);
    expect(runnersNamed(ghostName)).toEqual([]);
    // Not Hearth's, online, or its instance live: never touched.
    expect(
      github
        .runnersOf("acme/widgets")
        .map((r) => r.id)
        .sort(),
    ).toEqual([online.id, own.id, runnersNamed("ci-box-1")[0]?.id].sort());
    const reasons = (await journal.latest(50)).map((entry) => entry.reason).join("\n");
    expect(reasons).toMatch(/marked github-runner:.*ghost-runner: no-live-instance/);
    expect(reasons).toMatch(/ghost-runner github-runner:.*delete the runner, after a fresh read/);
  });

  it("clears the mark of a runner that came online before the next sweep, and acts on nothing", async () => {
    const ghost = github.addRunner("acme/widgets", ghostName);
    expect((await sweep()).survey.marked["ghost-runner"]).toBe(1);
    github.setOnline("acme/widgets", ghost.id);
    const second = await sweep();
    expect(second.survey.due).toEqual([]);
    expect(second.survey.cleared).toBe(1);
    expect(runnersNamed(ghostName)).toHaveLength(1);
    expect(await deps.marks.all()).toEqual([]);
  });

  it("refuses to delete a runner the fresh read finds busy, and keeps its mark", async () => {
    const ghost = github.addRunner("acme/widgets", ghostName);
    await sweep();
    const survey = await sweepSurvey(deps, { sweepId: "sweep-busy" });
    expect(survey.due).toHaveLength(1);
    github.markBusy("acme/widgets", ghost.id);
    const outcome = await sweepAct(deps, { sweepId: "sweep-busy", action: survey.due[0] as never });
    expect(outcome).toMatchObject({ kind: "refused", why: "the runner is busy with a job" });
    expect(runnersNamed(ghostName)).toHaveLength(1);
    expect(await deps.marks.all()).toHaveLength(1);
  });

  it("in a dry run, journals what it would do and deletes nothing", async () => {
    deps.settings.dryRun = true;
    github.addRunner("acme/widgets", ghostName);
    await sweep();
    const second = await sweep();
    expect(second.outcomes.map((outcome) => outcome.kind)).toEqual(["dry-run"]);
    expect(runnersNamed(ghostName)).toHaveLength(1);
    const reasons = (await journal.latest(50)).map((entry) => entry.reason).join("\n");
    expect(reasons).toMatch(/dry run: would delete the runner github-runner:/);
  });
});

describe("a listing that fails, is cut or is rate-limited", () => {
  const runnersListing = (method: string, template: string) =>
    method === "GET" && template.endsWith("/actions/runners");

  for (const [fault, inject] of [
    ["a 502", () => github.injectServerError(1, runnersListing)],
    ["a 429", () => github.injectSecondaryRateLimit(1, 60, runnersListing, 429)],
    ["a page cut short", () => github.injectTruncatedPage(1, runnersListing)],
    ["GitLab's 500", () => gitlab.managerFaults.push(500)],
    ["GitLab's 429", () => gitlab.managerFaults.push(429)],
    ["GitLab's cut page", () => gitlab.managerFaults.push("cut")],
  ] as const) {
    it(`makes the sweep act on nothing (${fault}), and the next whole sweep acts`, async () => {
      github.addRunner("acme/widgets", ghostName);
      github.addRunner("acme/widgets", "hearth-i-0cccccccccccccccc-1");
      expect((await sweep()).survey.marked["ghost-runner"]).toBe(2);
      inject();
      const failed = await sweep();
      expect(failed.survey.complete).toBe(false);
      expect(failed.survey.due).toEqual([]);
      expect(failed.survey.unknown).toHaveLength(1);
      expect(failed.outcomes).toEqual([]);
      expect(github.runnersOf("acme/widgets")).toHaveLength(2);
      // The marks stay for a whole sweep to act on.
      expect(await deps.marks.all()).toHaveLength(2);
      await clock.advance(120_000);
      const next = await sweep();
      expect(next.survey.complete).toBe(true);
      expect(next.outcomes.map((outcome) => outcome.kind)).toEqual(["done", "done"]);
      expect(github.runnersOf("acme/widgets")).toEqual([]);
    });
  }
});

describe("orphan instances", () => {
  it("terminates an instance silent past its boot deadline on the sweep after the one that marks it", async () => {
    const [silent] = (await launch(1)) as [string];
    await clock.advance(BOOT_GRACE_MS - 70_000);
    expect((await sweep()).survey.marked["orphan-instance"]).toBe(0);
    await clock.advance(20_000);
    const first = await sweep();
    expect(first.survey.marked["orphan-instance"]).toBe(1);
    expect(await fleet.exists(silent)).toBe(true);
    const second = await sweep();
    expect(second.outcomes).toEqual([expect.objectContaining({ kind: "done" })]);
    expect(second.outcomes[0]?.kind === "done" && second.outcomes[0].calls.join(" ")).toMatch(
      /DetachInstances.*TerminateInstances/,
    );
    expect(await fleet.exists(silent)).toBe(false);
  });

  it("never marks a busy instance whose heartbeats are slow but keep coming", async () => {
    const [busy] = (await launch(1)) as [string];
    await ledger.record(
      jobEvent({ id: "5001", status: "running", instanceId: busy, startedAt: now().toISOString() }),
    );
    for (let minute = 0; minute < 40; minute += 5) {
      await beat(busy, [{ source: "github", id: "5001" }]);
      await clock.advance(5 * 60_000);
      const { survey } = await sweep();
      expect(survey.marked["orphan-instance"]).toBe(0);
      expect(survey.due).toEqual([]);
    }
    expect(await fleet.exists(busy)).toBe(true);
  });

  it("refuses to terminate a silent instance whose job its forge has not ended", async () => {
    const [silent] = (await launch(1)) as [string];
    const run = github.addRun("acme/widgets", {
      status: "in_progress",
      jobs: [{ status: "in_progress", runnerName: `hearth-${silent}-0` }],
    });
    const jobId = String(run.jobs[0]?.id);
    await ledger.record(
      jobEvent({
        id: jobId,
        project: "acme/widgets",
        status: "running",
        instanceId: silent,
        startedAt: now().toISOString(),
      }),
    );
    await beat(silent, [{ source: "github", id: jobId }]);
    await clock.advance(BOOT_GRACE_MS + 60_000);
    await sweep();
    const second = await sweep();
    expect(second.outcomes).toEqual([
      expect.objectContaining({ kind: "refused", why: expect.stringMatching(/has not ended job github#/) }),
    ]);
    expect(await fleet.exists(silent)).toBe(true);
  });

  for (const recorded of [true, false]) {
    it(`refuses to terminate a silent instance whose runner GitHub finds busy on the fresh read (${recorded ? "recorded" : "only listed"})`, async () => {
      const [silent] = (await launch(1)) as [string];
      const runner = github.addRunner("acme/widgets", `hearth-${silent}-0`);
      if (recorded) {
        await deps.runners.records.put({
          instanceId: silent,
          slot: 0,
          pool: "x86",
          name: `hearth-${silent}-0`,
          scope,
          runnerId: runner.id,
          state: "listening",
          parameter: null,
          job: null,
          since: now().toISOString(),
        });
      }
      await clock.advance(BOOT_GRACE_MS + 60_000);
      expect((await sweep()).survey.marked["orphan-instance"]).toBe(1);
      const survey = await sweepSurvey(deps, { sweepId: "sweep-then-busy" });
      expect(survey.due).toHaveLength(1);
      // It takes a job between the survey and the act.
      github.markBusy("acme/widgets", runner.id);
      const outcome = await sweepAct(deps, { sweepId: "sweep-then-busy", action: survey.due[0] as never });
      expect(outcome).toMatchObject({ kind: "refused", why: expect.stringMatching(/is busy with a job/) });
      expect(await fleet.exists(silent)).toBe(true);
      // While GitHub lists it busy, a survey clears the mark and makes no new one.
      const next = await sweep();
      expect(next.survey).toMatchObject({ cleared: 1, due: [] });
      expect(next.survey.marked["orphan-instance"]).toBe(0);
    });
  }
});

describe("stuck and stale jobs", () => {
  it("reads a job running on a gone instance from its forge and applies what it says, in the survey", async () => {
    const run = github.addRun("acme/widgets", {
      status: "completed",
      jobs: [{ status: "completed", conclusion: "failure", runnerName: "hearth-i-0dddddddddddddddd-0" }],
    });
    const jobId = String(run.jobs[0]?.id);
    await ledger.record(
      jobEvent({
        id: jobId,
        project: "acme/widgets",
        status: "running",
        instanceId: "i-0dddddddddddddddd",
        startedAt: now().toISOString(),
      }),
    );
    const { survey } = await sweep();
    expect(survey.applied).toBe(1);
    expect(await ledger.get({ source: "github", id: jobId })).toMatchObject({
      status: "completed",
      conclusion: "failure",
    });
  });

  it("closes a job first seen in a heartbeat that no live instance reports, after two sweeps", async () => {
    await ledger.record({
      ...jobEvent({ id: "6001", status: "running", instanceId: "i-0eeeeeeeeeeeeeeee" }),
      project: "",
      queuedAt: null,
      labelsKnown: false,
      labels: [],
    });
    expect((await sweep()).survey.marked["stale-job"]).toBe(1);
    expect((await ledger.get({ source: "github", id: "6001" }))?.status).toBe("running");
    const second = await sweep();
    expect(second.outcomes.map((outcome) => outcome.kind)).toEqual(["done"]);
    expect(await ledger.get({ source: "github", id: "6001" })).toMatchObject({
      status: "cancelled",
      conclusion: "stale",
    });
  });
});

describe("offline GitLab managers", () => {
  it("deletes the offline manager of an instance that is gone, and keeps a live instance's", async () => {
    const [live] = (await launch(1)) as [string];
    await beat(live);
    const gone = gitlabSystemId("i-0fffffffffffffff0");
    const runner = gitlab.runners.find((candidate) => candidate.id === gitlabRunnerId);
    runner?.managers.add(gone);
    runner?.managers.add(gitlabSystemId(live));
    gitlab.managerStatus.set(gone, "offline");
    gitlab.managerStatus.set(gitlabSystemId(live), "offline");
    expect((await sweep()).survey.marked["offline-manager"]).toBe(1);
    const second = await sweep();
    expect(second.outcomes.map((outcome) => outcome.kind)).toEqual(["done"]);
    expect([...(runner?.managers ?? [])]).toEqual([gitlabSystemId(live)]);
    // The API token never travels anywhere but its header.
    expect(JSON.stringify(await journal.latest(100))).not.toContain(ADMIN_TOKEN);
    expect(JSON.stringify(await journal.latest(100))).not.toContain(runnerToken);
  });
});

describe("the budget and the Act step's input", () => {
  it("is incomplete, and acts on nothing, once the governor holds the sweep's GitHub calls back", async () => {
    // A share of one call an hour: the first sweep spends it.
    deps.governors.github = new RateGovernors({
      assumedLimit: 10,
      windowSeconds: 3600,
      share: 0.1,
      now: () => clock.now(),
    });
    github.addRunner("acme/widgets", ghostName);
    expect((await sweep()).survey.marked["ghost-runner"]).toBe(1);
    const held = await sweep();
    expect(held.survey.complete).toBe(false);
    expect(held.survey.unknown[0]?.reason).toMatch(/not swept: .*share/);
    expect(held.outcomes).toEqual([]);
    expect(runnersNamed(ghostName)).toHaveLength(1);
  });

  it("marks in a retried survey of the same sweep are not due to it", async () => {
    github.addRunner("acme/widgets", ghostName);
    await sweepSurvey(deps, { sweepId: "sweep-same" });
    const again = await sweepSurvey(deps, { sweepId: "sweep-same" });
    expect(again.due).toEqual([]);
  });

  it("refuses an action no earlier sweep marked, and an action of the sweep that marked it", async () => {
    const ghost = github.addRunner("acme/widgets", ghostName);
    const made = {
      class: "ghost-runner" as const,
      subject: `github-runner:acme/widgets:${ghost.id}`,
      pool: "x86",
      reason: "no-live-instance" as const,
      detail: { repository: "acme/widgets", organization: null, runnerGroupId: null, runnerId: ghost.id },
      markedAt: now().toISOString(),
    };
    expect(await sweepAct(deps, { sweepId: "sweep-x", action: made })).toMatchObject({
      kind: "refused",
      why: "no earlier sweep marked it",
    });
    const first = await sweepSurvey(deps, { sweepId: "sweep-marks" });
    expect(first.marked["ghost-runner"]).toBe(1);
    expect(await sweepAct(deps, { sweepId: "sweep-marks", action: made })).toMatchObject({ kind: "refused" });
    expect(runnersNamed(ghostName)).toHaveLength(1);
  });

  it("answers a malformed action with a clear error, and changes nothing", async () => {
    github.addRunner("acme/widgets", ghostName);
    await sweep();
    for (const action of [
      null,
      { class: "everything", subject: "x", pool: null, reason: "no-live-instance", detail: {}, markedAt: "" },
      {
        class: "ghost-runner",
        subject: "",
        pool: null,
        reason: "no-live-instance",
        detail: {},
        markedAt: "",
      },
    ]) {
      await expect(sweepAct(deps, { sweepId: "sweep-bad", action: action as never })).rejects.toThrow(
        /^sweepAct: not a sweep action/,
      );
    }
    expect(runnersNamed(ghostName)).toHaveLength(1);
    expect(await deps.marks.all()).toHaveLength(1);
  });
});

describe("a stuck GitLab job", () => {
  it("is read from GitLab and applied", async () => {
    gitlab.jobs.set("42/9001", {
      id: 9001,
      name: "build",
      stage: "test",
      status: "failed",
      created_at: "2026-12-01T09:00:00.000Z",
      started_at: "2026-12-01T09:01:00.000Z",
      finished_at: "2026-12-01T09:30:00.000Z",
      failure_reason: "runner_system_failure",
      pipeline: { id: 77, project_id: 42 },
      web_url: `${gitlab.url}/acme/app/-/jobs/9001`,
      tag_list: ["nix"],
      runner: { id: gitlabRunnerId, description: "hearth-test-x86" },
    });
    await ledger.record(
      jobEvent({
        source: "gitlab",
        id: "9001",
        project: "acme/app",
        projectId: "42",
        status: "running",
        instanceId: "i-0dddddddddddddddd",
        startedAt: "2026-12-01T09:01:00.000Z",
      }),
    );
    const { survey } = await sweep();
    expect(survey.applied).toBe(1);
    expect(await ledger.get({ source: "gitlab", id: "9001" })).toMatchObject({
      status: "completed",
      failureReason: "runner_system_failure",
    });
  });
});

describe("the sweep's own governors", () => {
  it("let a sweep spend one interval's share of a token at once, and no more", () => {
    const governors = createSweepGovernors({ budgetShare: 0.1, sweepMinutes: 5 }, () => clock.now());
    const token = governors.github.for("installation:1");
    // 5,000 an hour × 10% × 5 of 60 minutes.
    for (let call = 0; call < 42; call++) expect(token.take()).toBeUndefined();
    expect(token.take()).toBe("pace");
  });
});

describe("the budget shared with polling", () => {
  const share = { assumedLimit: 100, windowSeconds: 3600, share: 0.1, burst: 10 };

  /** Polling's stored governors, as a poll saves them, after it made `calls` calls on GitHub's bucket. */
  async function pollSpent(calls: number): Promise<string> {
    const bucket = await (deps.runners.github?.(scope).bucket?.() as Promise<string>);
    const polling = new RateGovernors({ ...share, now: () => clock.now() });
    for (let call = 0; call < calls; call++) expect(polling.for(bucket).take()).toBeUndefined();
    const loaded = await loadReconciliationState(store, "github");
    expect(await saveReconciliationState(store, loaded, { governors: polling.snapshot() })).toBe(true);
    return bucket;
  }

  beforeEach(() => {
    deps.governors.github = new RateGovernors({ ...share, now: () => clock.now() });
    deps.budget = storedSweepBudget({
      store,
      leases,
      governors: deps.governors,
      attempts: 2,
      waitMs: 0,
      sleep: async () => {},
    });
  });

  it("leaves the sweep nothing once polling spent the share, and stores what the sweep spends", async () => {
    github.addRunner("acme/widgets", ghostName);
    const bucket = await pollSpent(10);
    const held = await sweep();
    expect(held.survey.complete).toBe(false);
    expect(held.survey.unknown.map((item) => item.listing)).toContain("github-runners:acme/widgets");
    // An hour later the share is back: the sweep lists, and its calls are stored for polling to see.
    await clock.advance(3_601_000);
    const swept = await sweep();
    expect(swept.survey.complete).toBe(true);
    expect(swept.survey.marked["ghost-runner"]).toBe(1);
    const stored = await loadReconciliationState(store, "github");
    expect(stored.governors[bucket]?.spent?.length).toBeGreaterThan(0);
  });

  it("does not survey while a poll holds a forge's reconciliation lease", async () => {
    github.addRunner("acme/widgets", ghostName);
    expect(await leases.acquire(reconciliationLease("gitlab"), "a-poll", 90)).toBe(true);
    const busy = await sweep();
    expect(busy.survey.complete).toBe(false);
    expect(busy.survey.unknown).toEqual([
      { listing: "budget", reason: "a poll held the forges' reconciliation leases" },
    ]);
    expect(busy.survey.marked["ghost-runner"]).toBe(0);
    // The sweep took no lease it could not keep: the GitHub one is free for the next poll.
    expect(await leases.acquire(reconciliationLease("github"), "next-poll", 90)).toBe(true);
  });
});

describe("a listing of more than one page", () => {
  it("reads every page of a scope's runners", async () => {
    for (let n = 0; n < 110; n++)
      github.addRunner("acme/widgets", `hearth-i-0${String(n).padStart(16, "a")}-0`);
    const { survey } = await sweep();
    expect(survey.complete).toBe(true);
    expect(survey.marked["ghost-runner"]).toBe(110);
    expect(
      github.requests.filter((r) => r.template === "/repos/{owner}/{repo}/actions/runners"),
    ).toHaveLength(2);
    // At most DUE_PER_SWEEP actions travel in one survey; the rest stay marked for the next sweep.
    const second = await sweep();
    expect(second.survey.due).toHaveLength(DUE_PER_SWEEP);
    expect(second.survey.marked["ghost-runner"]).toBe(0);
    expect(github.runnersOf("acme/widgets")).toHaveLength(110 - DUE_PER_SWEEP);
    const third = await sweep();
    expect(third.outcomes.filter((outcome) => outcome.kind === "done")).toHaveLength(110 - DUE_PER_SWEEP);
    expect(github.runnersOf("acme/widgets")).toEqual([]);
  }, 60_000);
});

describe("the steps' input", () => {
  it("refuses a sweep id that is not one, before reading anything", async () => {
    for (const sweepId of ["", "a b", "x".repeat(300), 7, null]) {
      await expect(sweepSurvey(deps, { sweepId: sweepId as never })).rejects.toThrow(/is not a sweep id/);
    }
    expect(github.requests).toEqual([]);
    await expect(
      sweepFinish(deps, { survey: { sweepId: "ok" } as never, outcomes: "all" as never }),
    ).rejects.toThrow(/must be lists/);
    expect(await journal.latest(10)).toEqual([]);
  });
});
