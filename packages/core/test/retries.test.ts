import { randomUUID } from "node:crypto";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInstanceRegistry } from "../src/instances";
import { type Job, type JobEvent, mergeJobs } from "../src/jobs";
import { createJournal } from "../src/journal";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { defaultPools, type PoolConfig } from "../src/pools";
import {
  createRetryHolds,
  createRetryRecords,
  gateOpen,
  HOLD_MAX_SECONDS,
  holdState,
  markJobsInterrupted,
  needsRetry,
  type RetryDeps,
  retryAfterJobRecorded,
  retryAfterRunCompleted,
  retryHeld,
} from "../src/retries";
import { ensureTable } from "../src/table";
import { heartbeat } from "./support/heartbeats";
import { instanceRecord } from "./support/instance-record";
import { jobEvent } from "./support/jobs";

/**
 * Retries of interrupted jobs, against the embedded DynamoDB and forges that keep state as the real
 * ones do: GitLab retries only a finished job, GitHub re-runs only a completed run.
 */

let dynamo: EmbeddedDynamo;
beforeAll(async () => {
  dynamo = await startEmbeddedDynamo();
});
afterAll(() => dynamo.close());

const INSTANCE = "i-0123456789abcdef0";
const WARNED = "2026-01-01T10:01:00.000Z";

/** GitLab's rules: a job is retried only once it finished; each retry is a new job. */
class FakeGitLab {
  finished = new Set<string>();
  retries: Array<{ project: string; job: string; newJob: string }> = [];
  failNext = false;
  private next = 5000;
  async retryJob(project: string, job: string) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (this.failNext) {
      this.failNext = false;
      throw new Error("GitLab API 502");
    }
    if (!this.finished.has(job)) throw new Error("403 Forbidden - Job is not retryable");
    const newJob = String(this.next++);
    this.retries.push({ project, job, newJob });
    return { id: newJob, status: "pending" };
  }
}

/** GitHub's rules: a run's failed jobs re-run only once the run completed (403 before). */
class FakeGitHub {
  completed = new Set<string>();
  reruns: string[] = [];
  async rerunFailedJobs(repository: string, runId: string): Promise<"rerun" | "not-completed"> {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const key = `${repository}#${runId}`;
    if (!this.completed.has(key)) return "not-completed";
    // A re-run starts the next attempt: the run is in progress again.
    this.completed.delete(key);
    this.reruns.push(key);
    return "rerun";
  }
}

/** Pools that retry an interrupted job once: its first retry is its last, and held. */
const oneRetry = defaultPools.map((pool) => ({ ...pool, retryInterrupted: 1 }));

async function setUp(pools: readonly PoolConfig[] = defaultPools, options: { holds?: boolean } = {}) {
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  const tableName = `retries-${randomUUID()}`;
  await ensureTable(client, tableName);
  let clock = Date.parse("2026-01-01T10:05:00.000Z");
  const store = { client: documents, tableName, now: () => new Date(clock) };
  const gitlab = new FakeGitLab();
  const github = new FakeGitHub();
  const counted: string[] = [];
  const deps: RetryDeps = {
    ledger: createLedger(store),
    registry: createInstanceRegistry(store),
    journal: createJournal(store),
    records: createRetryRecords(store),
    pools,
    forges: { gitlab, github },
    now: () => new Date(clock),
    retried: (pool) => counted.push(pool),
    holds: options.holds ? createRetryHolds(store) : undefined,
  };
  const registry = createInstanceRegistry(store);
  return {
    deps,
    gitlab,
    github,
    counted,
    registry,
    store,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

const running = (overrides: Partial<JobEvent>): JobEvent =>
  jobEvent({
    status: "running",
    startedAt: "2026-01-01T10:00:20.000Z",
    runner: { id: "7", name: `${INSTANCE}-1` },
    instanceId: INSTANCE,
    ...overrides,
  });

const failed = (overrides: Partial<JobEvent>): JobEvent =>
  running({
    status: "completed",
    conclusion: "failure",
    finishedAt: "2026-01-01T10:03:00.000Z",
    ...overrides,
  });

async function interruptedGitLabJob(setup: Awaited<ReturnType<typeof setUp>>, id = "77") {
  const { deps, registry } = setup;
  // GitLab's webhooks do not name the instance; its heartbeat reported the job.
  await registry.register({
    id: INSTANCE,
    pool: "x86_64",
    group: "burst",
    market: "spot",
    az: "eu-west-1a",
    launchedAt: "2026-01-01T09:00:00.000Z",
    slots: 2,
  });
  await registry.heartbeat(INSTANCE, {
    instanceId: INSTANCE,
    runner: "busy",
    slots: 2,
    runningJobs: [{ source: "gitlab", id }],
    cacheKeys: [],
    storeBytes: null,
    interruption: null,
  });
  const gitlabJob = { source: "gitlab" as const, id, projectId: "5", labels: [], labelsKnown: false };
  await deps.ledger.record(
    running({ ...gitlabJob, instanceId: null, runner: { id: "3", name: "pool runner" } }),
  );
  expect(
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED }),
  ).toContainEqual({
    source: "gitlab",
    id,
  });
  return gitlabJob;
}

describe("markJobsInterrupted", () => {
  it("marks the jobs running on the instance, by the ledger and by its heartbeat, once", async () => {
    const setup = await setUp();
    const { deps } = setup;
    await deps.ledger.record(running({ id: "1" }));
    // Finished before the warning, and running elsewhere: neither was interrupted here.
    await deps.ledger.record(failed({ id: "2" }));
    await deps.ledger.record(running({ id: "3", instanceId: "i-0fedcba9876543210", runner: null }));
    await interruptedGitLabJob(setup);
    const marked = await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
    expect(marked).toEqual([
      { source: "github", id: "1" },
      { source: "gitlab", id: "77" },
    ]);
    const job = await deps.ledger.get({ source: "github", id: "1" });
    expect(job?.interruption).toEqual({ at: WARNED, instanceId: INSTANCE });
    expect(job?.status).toBe("running");
    expect((await deps.ledger.get({ source: "github", id: "2" }))?.interruption).toBeUndefined();
    expect((await deps.ledger.get({ source: "github", id: "3" }))?.interruption).toBeUndefined();
    // Again, and a later notice: the first warning is kept, nothing else changes.
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: "2026-01-01T10:02:00.000Z" });
    expect((await deps.ledger.get({ source: "github", id: "1" }))?.interruption?.at).toBe(WARNED);
  });
});

describe("markJobsInterrupted and a failure that came first", () => {
  it("marks a job that failed after the warning, and leaves one that finished before", async () => {
    const setup = await setUp();
    const { deps, registry } = setup;
    await interruptedGitLabJob(setup, "80");
    // Job 81 failed 10 s after the warning, but its failure was recorded before the warning was handled.
    await deps.ledger.record(
      failed({
        source: "gitlab",
        id: "81",
        instanceId: null,
        runner: null,
        finishedAt: "2026-01-01T10:01:10.000Z",
      }),
    );
    // Job 82 finished before the warning.
    await deps.ledger.record(
      failed({
        source: "gitlab",
        id: "82",
        instanceId: null,
        runner: null,
        finishedAt: "2026-01-01T10:00:50.000Z",
      }),
    );
    await registry.heartbeat(INSTANCE, {
      instanceId: INSTANCE,
      runner: "busy",
      slots: 2,
      runningJobs: [
        { source: "gitlab", id: "81" },
        { source: "gitlab", id: "82" },
      ],
      cacheKeys: [],
      storeBytes: null,
      interruption: null,
    });
    const marked = await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
    expect(marked).toContainEqual({ source: "gitlab", id: "81" });
    expect(marked).not.toContainEqual({ source: "gitlab", id: "82" });
    const late = await deps.ledger.get({ source: "gitlab", id: "81" });
    expect(late && needsRetry(late)).toBe(true);
  });
});

describe("GitLab: retry once the job failed", () => {
  it("retries an interrupted failed job exactly once under concurrent deliveries", async () => {
    const setup = await setUp();
    const { deps, gitlab } = setup;
    const job = await interruptedGitLabJob(setup);
    const { job: done } = await deps.ledger.record(
      failed({
        ...job,
        instanceId: null,
        runner: { id: "3", name: "pool runner" },
        failureReason: "runner_system_failure",
      }),
    );
    gitlab.finished.add("77");
    const outcomes = await Promise.all(
      Array.from({ length: 5 }, () => retryAfterJobRecorded(deps, done as Job)),
    );
    expect(outcomes.filter((outcome) => outcome.kind === "retried")).toHaveLength(1);
    expect(gitlab.retries).toEqual([{ project: "5", job: "77", newJob: "5000" }]);
    const old = await deps.ledger.get({ source: "gitlab", id: "77" });
    expect(old?.retry).toEqual({ at: "2026-01-01T10:05:00.000Z", newJobId: "5000" });
    const retry = await deps.ledger.get({ source: "gitlab", id: "5000" });
    expect(retry).toMatchObject({ retryOf: "77", retryNumber: 1, status: "queued", pipelineId: "77" });
    expect(setup.counted).toEqual(["x86_64"]);
    // A replay of the failure after the retry changes nothing.
    expect((await retryAfterJobRecorded(deps, old as Job)).kind).toBe("none");
    expect(gitlab.retries).toHaveLength(1);
    const entries = await deps.journal.latest(10);
    expect(entries.find((entry) => entry.kind === "retry")?.reason).toContain(
      "interrupted, retried as job 5000",
    );
  });

  it("does not retry a retry whose retries are spent, and retries a failure at the next event", async () => {
    const setup = await setUp(oneRetry);
    const { deps, gitlab } = setup;
    const job = await interruptedGitLabJob(setup);
    const { job: done } = await deps.ledger.record(failed({ ...job, instanceId: null, runner: null }));
    gitlab.finished.add("77");
    gitlab.failNext = true;
    expect((await retryAfterJobRecorded(deps, done as Job)).kind).toBe("failed");
    expect(gitlab.retries).toHaveLength(0);
    // The next event (or a replayed delivery) tries again: the failed claim is free.
    expect((await retryAfterJobRecorded(deps, done as Job)).kind).toBe("retried");
    // The retry is interrupted too, and fails: with retryInterrupted 1, it is not retried again.
    await deps.ledger.record(running({ source: "gitlab", id: "5000", instanceId: INSTANCE, runner: null }));
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: "2026-01-01T10:06:00.000Z" });
    const { job: again } = await deps.ledger.record(
      failed({ source: "gitlab", id: "5000", instanceId: null, runner: null }),
    );
    gitlab.finished.add("5000");
    expect(again?.retryNumber).toBe(1);
    expect(await retryAfterJobRecorded(deps, again as Job)).toEqual({ kind: "spent", pool: "x86_64" });
    expect(gitlab.retries).toHaveLength(1);
  });

  it("does nothing for a job that failed without an interruption, or a pool with retries off", async () => {
    const setup = await setUp(defaultPools.map((pool) => ({ ...pool, retryInterrupted: 0 })));
    const { deps, gitlab } = setup;
    const { job: plain } = await deps.ledger.record(failed({ source: "gitlab", id: "90", projectId: "5" }));
    expect((await retryAfterJobRecorded(deps, plain as Job)).kind).toBe("none");
    const job = await interruptedGitLabJob(setup);
    const { job: done } = await deps.ledger.record(failed({ ...job, instanceId: null, runner: null }));
    gitlab.finished.add("77");
    expect((await retryAfterJobRecorded(deps, done as Job)).kind).toBe("spent");
    expect(gitlab.retries).toHaveLength(0);
  });
});

describe("GitHub: re-run the failed jobs once the run completed", () => {
  it("waits for the run, re-runs once per attempt, and links the next attempt's job", async () => {
    const setup = await setUp();
    const { deps, github } = setup;
    await deps.ledger.record(running({ id: "1" }));
    await deps.ledger.record(running({ id: "2", name: "ci / test" }));
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
    const { job: first } = await deps.ledger.record(failed({ id: "1" }));
    // The run still runs job 2: GitHub answers 403, the run awaits its workflow_run.
    expect((await retryAfterJobRecorded(deps, first as Job)).kind).toBe("awaiting-run");
    const { job: second } = await deps.ledger.record(failed({ id: "2", name: "ci / test" }));
    expect((await retryAfterJobRecorded(deps, second as Job)).kind).toBe("awaiting-run");
    expect(github.reruns).toEqual([]);
    github.completed.add("acme/app#77");
    const run = { repository: "acme/app", runId: "77", attempt: 1 };
    const outcomes = await Promise.all(Array.from({ length: 4 }, () => retryAfterRunCompleted(deps, run)));
    expect(outcomes.filter((outcome) => outcome.kind === "retried")).toHaveLength(1);
    expect(github.reruns).toEqual(["acme/app#77"]);
    expect((await deps.ledger.get({ source: "github", id: "1" }))?.retry).toEqual({
      at: "2026-01-01T10:05:00.000Z",
      newJobId: null,
    });
    expect(setup.counted).toEqual(["x86_64", "x86_64"]);
    // A repeated workflow_run does nothing more.
    github.completed.add("acme/app#77");
    await retryAfterRunCompleted(deps, run);
    expect(github.reruns).toHaveLength(1);
    // Attempt 2's jobs: the one named as job 1 is its retry.
    const { job: next } = await deps.ledger.record(jobEvent({ id: "11", attempt: 2 }));
    expect(await retryAfterJobRecorded(deps, next as Job)).toEqual({ kind: "linked", retryOf: "1" });
    expect(await deps.ledger.get({ source: "github", id: "11" })).toMatchObject({
      retryOf: "1",
      retryNumber: 1,
    });
    expect((await deps.ledger.get({ source: "github", id: "1" }))?.retry?.newJobId).toBe("11");
    // A run without an interrupted job is ignored.
    expect((await retryAfterRunCompleted(deps, { ...run, runId: "78" })).kind).toBe("none");
  });

  it("re-runs at the job's failure when its run completed first", async () => {
    const setup = await setUp();
    const { deps, github } = setup;
    await deps.ledger.record(running({ id: "1" }));
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
    // workflow_run completed came first: no record yet, so it was ignored.
    github.completed.add("acme/app#77");
    expect(
      (await retryAfterRunCompleted(deps, { repository: "acme/app", runId: "77", attempt: 1 })).kind,
    ).toBe("none");
    const { job } = await deps.ledger.record(failed({ id: "1" }));
    expect((await retryAfterJobRecorded(deps, job as Job)).kind).toBe("retried");
    expect(github.reruns).toEqual(["acme/app#77"]);
  });

  it("asks again when the run completed while its refused call held the claim", async () => {
    const setup = await setUp();
    const { deps, github } = setup;
    await deps.ledger.record(running({ id: "1" }));
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
    const { job } = await deps.ledger.record(failed({ id: "1" }));
    // GitHub answers the job's call "not completed"; before that answer is settled, the run
    // completes and its workflow_run arrives, which finds the re-run claimed.
    const run = { repository: "acme/app", runId: "77", attempt: 1 };
    let completion: Promise<unknown> | undefined;
    const answer = github.rerunFailedJobs.bind(github);
    github.rerunFailedJobs = async (repository, runId) => {
      const first = await answer(repository, runId);
      if (!completion) {
        github.completed.add("acme/app#77");
        completion = retryAfterRunCompleted(deps, run);
        expect(await completion).toEqual({ kind: "awaiting-run" });
      }
      return first;
    };
    expect((await retryAfterJobRecorded(deps, job as Job)).kind).toBe("retried");
    expect(github.reruns).toEqual(["acme/app#77"]);
    expect((await deps.ledger.get({ source: "github", id: "1" }))?.retry).toBeDefined();
  });
});

describe("GitHub: a job's failure and its run's completion at once", () => {
  it("journals and counts each re-run job once, whichever event claims the re-run", async () => {
    const setup = await setUp();
    const { deps, github } = setup;
    // The run's record is created with the job's failure, its job a write later: the run's own
    // event may claim the re-run in between, with no job in hand yet.
    for (const runId of ["81", "82", "83", "84", "85", "86"]) {
      const id = `${runId}0`;
      await deps.ledger.record(running({ id, pipelineId: runId }));
      await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
      const { job } = await deps.ledger.record(failed({ id, pipelineId: runId }));
      github.completed.add(`acme/app#${runId}`);
      await Promise.all([
        retryAfterJobRecorded(deps, job as Job),
        retryAfterRunCompleted(deps, { repository: "acme/app", runId, attempt: 1 }),
        retryAfterRunCompleted(deps, { repository: "acme/app", runId, attempt: 1 }),
      ]);
      expect((await deps.ledger.get({ source: "github", id }))?.retry).toBeDefined();
      // A late repeat of either event changes nothing.
      await retryAfterJobRecorded(deps, job as Job);
      await retryAfterRunCompleted(deps, { repository: "acme/app", runId, attempt: 1 });
    }
    expect(github.reruns).toHaveLength(6);
    const entries = (await deps.journal.latest(100)).filter((entry) => entry.kind === "retry");
    expect(entries.map((entry) => entry.details.job).sort()).toEqual([
      "810",
      "820",
      "830",
      "840",
      "850",
      "860",
    ]);
    expect(setup.counted).toHaveLength(6);
  });
});

describe("the retry fields merge as a join", () => {
  it("is commutative and idempotent with interruptions and retries", () => {
    const a = jobEvent({ interruption: { at: WARNED, instanceId: INSTANCE } });
    const b = jobEvent({ status: "completed", retry: { at: WARNED, newJobId: null } });
    const c = jobEvent({
      retry: { at: "2026-01-01T10:09:00.000Z", newJobId: "9" },
      retryNumber: 1,
      retryOf: "0",
    });
    for (const [x, y] of [
      [a, b],
      [b, c],
      [a, c],
    ] as const) {
      expect(mergeJobs(x, y)).toEqual(mergeJobs(y, x));
      expect(mergeJobs(x, mergeJobs(x, y))).toEqual(mergeJobs(x, y));
    }
    expect(mergeJobs(b, c).retry).toEqual({ at: WARNED, newJobId: "9" });
    expect("interruption" in mergeJobs(b, b)).toBe(false);
  });
});

describe("the retry hold's gate", () => {
  const at = Date.parse("2026-01-01T10:05:00.000Z");
  const since = "2026-01-01T10:05:00.000Z";
  const record = instanceRecord;

  it("opens once every live spot agent said it stopped claiming after the hold began", () => {
    const now = at + 15_000;
    expect(gateOpen([record({})], since, now)).toEqual({ open: false, unconfirmed: ["i-0aaaaaaaaaaaaaaa1"] });
    // Stopped claiming, but said so before the hold began: not a confirmation of this hold.
    expect(
      gateOpen([record({ claiming: false, lastHeartbeatAt: "2026-01-01T10:04:50.000Z" })], since, now).open,
    ).toBe(false);
    expect(gateOpen([record({ claiming: false })], since, now)).toEqual({ open: true, why: "confirmed" });
    // A booting spot instance has not confirmed; one that never reported within the boot grace is gone.
    expect(gateOpen([record({ lastHeartbeatAt: null, launchedAt: since })], since, now).open).toBe(false);
    expect(gateOpen([record({ lastHeartbeatAt: null })], since, now)).toEqual({ open: true, why: "no-spot" });
  });

  it("does not wait for on-demand, draining, interrupted, released or silent instances", () => {
    const now = at + 15_000;
    const ignored = [
      record({ market: "on-demand", group: "warm" }),
      record({ runner: "draining" }),
      record({ interruption: { action: "terminate", time: since } }),
      record({ releasing: { at: since, confirmedAt: since, releasedAt: since } }),
      record({ lastHeartbeatAt: "2026-01-01T10:03:00.000Z" }),
    ];
    expect(gateOpen(ignored, since, now)).toEqual({ open: true, why: "no-spot" });
  });

  it("opens without the confirmation 60 s after the hold began", () => {
    expect(gateOpen([record({})], since, at + 59_999).open).toBe(false);
    expect(gateOpen([record({})], since, at + 60_000)).toEqual({
      open: true,
      why: "unconfirmed",
      unconfirmed: ["i-0aaaaaaaaaaaaaaa1"],
    });
  });
});

describe("the retry hold", () => {
  const SPOT = "i-0bbbbbbbbbbbbbbb2";
  const WARM = "i-0ccccccccccccccc3";

  async function fleetOf(setup: Awaited<ReturnType<typeof setUp>>) {
    const { registry } = setup;
    // The interrupted instance is marked so (HandleInterruption); another spot instance and a warm
    // on-demand one serve the pool.
    await registry.interrupted(INSTANCE, { action: "terminate", time: WARNED });
    for (const [id, group, market] of [
      [SPOT, "burst", "spot"],
      [WARM, "warm", "on-demand"],
    ] as const) {
      await registry.register({
        id,
        pool: "x86_64",
        group,
        market,
        az: "eu-west-1a",
        launchedAt: "2026-01-01T09:00:00.000Z",
        slots: 2,
      });
      await beat(setup, id, true);
    }
  }

  const beat = (setup: Awaited<ReturnType<typeof setUp>>, id: string, claiming: boolean) =>
    setup.registry.heartbeat(id, heartbeat(id, { protocol: 3, claiming }));

  async function failedGitLabJob(setup: Awaited<ReturnType<typeof setUp>>) {
    const job = await interruptedGitLabJob(setup);
    await fleetOf(setup);
    const { job: done } = await setup.deps.ledger.record(failed({ ...job, instanceId: null, runner: null }));
    setup.gitlab.finished.add("77");
    return done as Job;
  }

  const reasons = async (setup: Awaited<ReturnType<typeof setUp>>) =>
    (await setup.deps.journal.latest(50)).map((entry) => entry.reason);

  it("holds the pool, asks the retry once the spot agents stopped claiming, and ends when the retry runs", async () => {
    const setup = await setUp(oneRetry, { holds: true });
    const { deps, gitlab } = setup;
    const done = await failedGitLabJob(setup);
    expect(await retryAfterJobRecorded(deps, done)).toEqual({ kind: "held", pool: "x86_64" });
    expect(gitlab.retries).toEqual([]);
    expect(await holdState(deps, "x86_64")).toEqual({ held: true, pending: true });
    expect(await reasons(setup)).toContain(
      "x86_64 holds its spot runners: the retry of gitlab job 77 waits for on-demand capacity",
    );
    // A trigger before the spot agent confirmed asks nothing; a failure delivered again neither.
    setup.advance(15_000);
    expect(await retryHeld(deps, "x86_64")).toEqual([{ kind: "held", pool: "x86_64" }]);
    expect((await retryAfterJobRecorded(deps, done)).kind).toBe("held");
    expect(gitlab.retries).toEqual([]);
    // The spot agent stopped claiming: concurrent triggers ask the retry once.
    await beat(setup, SPOT, false);
    const outcomes = (await Promise.all([1, 2, 3].map(() => retryHeld(deps, "x86_64")))).flat();
    expect(outcomes.filter((outcome) => outcome.kind === "retried")).toHaveLength(1);
    expect(gitlab.retries).toEqual([{ project: "5", job: "77", newJob: "5000" }]);
    // Placed, not yet running: the pool still holds its spot runners, and nothing is pending.
    expect(await holdState(deps, "x86_64")).toEqual({ held: true, pending: false });
    const queued = await deps.ledger.get({ source: "gitlab", id: "5000" });
    expect((await retryAfterJobRecorded(deps, queued as Job)).kind).toBe("none");
    expect((await holdState(deps, "x86_64")).held).toBe(true);
    // The retry runs on the warm instance: the hold ends, and the journal says where it ran.
    const { job: started } = await deps.ledger.record(
      running({ source: "gitlab", id: "5000", instanceId: WARM, runner: null }),
    );
    await retryAfterJobRecorded(deps, started as Job);
    expect(await holdState(deps, "x86_64")).toEqual({ held: false, pending: false });
    const journal = await reasons(setup);
    expect(journal).toContain(
      "x86_64 no longer holds its spot runners: the retry of gitlab job 77 (gitlab job 5000) is running",
    );
    expect(journal).toContain(
      `gitlab job 5000, the retry of interrupted job 77, ran on on-demand capacity (${WARM}, warm group)`,
    );
    expect(journal.filter((reason) => reason.includes("holds its spot runners"))).toHaveLength(2);
  });

  it("asks a job's first of two retries at once, and holds the pool only for its last", async () => {
    const setup = await setUp(defaultPools, { holds: true });
    const { deps, gitlab } = setup;
    expect(defaultPools.every((pool) => pool.retryInterrupted === 2)).toBe(true);
    const done = await failedGitLabJob(setup);
    // The first retry goes at once, spot runners claiming: any of them may take it.
    expect(await retryAfterJobRecorded(deps, done)).toEqual({ kind: "retried", newJobId: "5000" });
    expect(await holdState(deps, "x86_64")).toEqual({ held: false, pending: false });
    const first = await deps.ledger.get({ source: "gitlab", id: "5000" });
    expect(first?.retryNumber).toBe(1);
    // It runs on the spot instance, which is interrupted too: the second retry is the last, held.
    await deps.ledger.record(running({ source: "gitlab", id: "5000", instanceId: SPOT, runner: null }));
    await markJobsInterrupted(deps, { instanceId: SPOT, pool: "x86_64", at: "2026-01-01T10:06:00.000Z" });
    const { job: again } = await deps.ledger.record(
      failed({ source: "gitlab", id: "5000", instanceId: null, runner: null }),
    );
    gitlab.finished.add("5000");
    expect(await retryAfterJobRecorded(deps, again as Job)).toEqual({ kind: "held", pool: "x86_64" });
    expect(await holdState(deps, "x86_64")).toEqual({ held: true, pending: true });
    expect(gitlab.retries).toHaveLength(1);
    expect(await reasons(setup)).toContain(
      "x86_64 holds its spot runners: the retry of gitlab job 5000 waits for on-demand capacity",
    );
  });

  it("asks the retry without the confirmation after 60 s, and says so", async () => {
    const setup = await setUp(oneRetry, { holds: true });
    const { deps, gitlab } = setup;
    const done = await failedGitLabJob(setup);
    expect((await retryAfterJobRecorded(deps, done)).kind).toBe("held");
    setup.advance(59_000);
    await beat(setup, SPOT, true);
    expect(await retryHeld(deps, "x86_64")).toEqual([{ kind: "held", pool: "x86_64" }]);
    setup.advance(1_000);
    expect(await retryHeld(deps, "x86_64")).toEqual([{ kind: "retried", newJobId: "5000" }]);
    expect(gitlab.retries).toHaveLength(1);
    expect(await reasons(setup)).toContain(
      `the retry of gitlab job 77 is placed without the confirmation of ${SPOT} that it stopped claiming (an agent before protocol 3, or one not answering)`,
    );
  });

  it("ends a hold whose retry has not started within an hour, and tries a failed call meanwhile", async () => {
    const setup = await setUp(oneRetry, { holds: true });
    const { deps, gitlab } = setup;
    const done = await failedGitLabJob(setup);
    await beat(setup, SPOT, false);
    gitlab.finished.delete("77");
    // GitLab refuses: the hold keeps the retry pending, and each trigger asks again.
    expect((await retryAfterJobRecorded(deps, done)).kind).toBe("failed");
    expect(await holdState(deps, "x86_64")).toEqual({ held: true, pending: true });
    setup.advance(60_000);
    expect((await retryHeld(deps, "x86_64")).map((outcome) => outcome.kind)).toEqual(["failed"]);
    setup.advance(HOLD_MAX_SECONDS * 1000 - 60_000);
    expect(await holdState(deps, "x86_64")).toEqual({ held: false, pending: true });
    expect(await retryHeld(deps, "x86_64")).toEqual([]);
    expect(await holdState(deps, "x86_64")).toEqual({ held: false, pending: false });
    expect(await reasons(setup)).toContain(
      "x86_64 no longer holds its spot runners: the retry of gitlab job 77 did not start within 60 minutes",
    );
    // Ended: the job's next event retries it at once, holding nothing.
    gitlab.finished.add("77");
    await beat(setup, SPOT, true);
    expect((await retryAfterJobRecorded(deps, done)).kind).toBe("retried");
  });

  it("holds nothing in a pool whose retryOnDemand is off", async () => {
    const setup = await setUp(
      oneRetry.map((pool) => ({ ...pool, retryOnDemand: false })),
      { holds: true },
    );
    const done = await failedGitLabJob(setup);
    expect((await retryAfterJobRecorded(setup.deps, done)).kind).toBe("retried");
    expect(await holdState(setup.deps, "x86_64")).toEqual({ held: false, pending: false });
  });

  it("GitHub: a run completing between its record's two writes asks nothing past the hold", async () => {
    const setup = await setUp(oneRetry, { holds: true });
    const { deps, github, store } = setup;
    await deps.ledger.record(running({ id: "1" }));
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
    await fleetOf(setup);
    // The job's failure has written the run's record, not yet its job, when the run's completion comes.
    await store.client.send(
      new PutCommand({
        TableName: store.tableName,
        Item: { pk: "RERUN#github#acme/app#77#1", sk: "RUN", kind: "rerun", state: "awaiting" },
      }),
    );
    github.completed.add("acme/app#77");
    const run = { repository: "acme/app", runId: "77", attempt: 1 };
    expect((await retryAfterRunCompleted(deps, run)).kind).toBe("awaiting-run");
    expect(github.reruns).toEqual([]);
    const { job: first } = await deps.ledger.record(failed({ id: "1" }));
    expect(await retryAfterJobRecorded(deps, first as Job)).toEqual({ kind: "held", pool: "x86_64" });
    expect(github.reruns).toEqual([]);
  });

  it("tries a first retry's failed call again at the pool's next trigger, holding nothing", async () => {
    const setup = await setUp(defaultPools, { holds: true });
    const { deps, gitlab } = setup;
    const done = await failedGitLabJob(setup);
    gitlab.failNext = true;
    expect((await retryAfterJobRecorded(deps, done)).kind).toBe("failed");
    // Nothing holds the pool, but the call is pending: a heartbeat or a ScaleFleet run tries it again.
    expect(await holdState(deps, "x86_64")).toEqual({ held: false, pending: true });
    expect(await retryHeld(deps, "x86_64")).toEqual([{ kind: "retried", newJobId: "5000" }]);
    expect(gitlab.retries).toHaveLength(1);
    expect(await holdState(deps, "x86_64")).toEqual({ held: false, pending: false });
    expect(await retryHeld(deps, "x86_64")).toEqual([]);
  });

  it("GitHub: re-runs a run's first retries at once; one with a last retry waits for its hold", async () => {
    const setup = await setUp(defaultPools, { holds: true });
    const { deps, github } = setup;
    const run = { repository: "acme/app", runId: "77", attempt: 1 };
    // A run whose only interrupted job is on its first retry: re-run as soon as the run has completed.
    await deps.ledger.record(running({ id: "1" }));
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
    await fleetOf(setup);
    github.completed.add("acme/app#77");
    const { job: first } = await deps.ledger.record(failed({ id: "1" }));
    expect(await retryAfterJobRecorded(deps, first as Job)).toEqual({ kind: "retried", newJobId: null });
    expect(github.reruns).toEqual(["acme/app#77"]);
    expect(await holdState(deps, "x86_64")).toEqual({ held: false, pending: false });

    // Another run: job 3 is a last retry, job 2 a first one. Job 3 fails first, before its run has
    // completed: held, then let go (GitHub's 403) while the run runs.
    await deps.ledger.record(running({ id: "3", pipelineId: "78", retryOf: "30", retryNumber: 1 }));
    await deps.ledger.record(running({ id: "2", pipelineId: "78" }));
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
    const { job: last } = await deps.ledger.record(failed({ id: "3", pipelineId: "78" }));
    expect(await retryAfterJobRecorded(deps, last as Job)).toEqual({ kind: "held", pool: "x86_64" });
    setup.advance(15_000);
    await beat(setup, SPOT, false);
    expect((await retryHeld(deps, "x86_64")).map((outcome) => outcome.kind)).toEqual(["awaiting-run"]);
    // The run completes; job 2's failure is handled before the completion's webhook: it asks nothing
    // past job 3's hold, while the spot runners claim again.
    github.completed.add("acme/app#78");
    await beat(setup, SPOT, true);
    const { job: earlier } = await deps.ledger.record(failed({ id: "2", pipelineId: "78" }));
    expect(await retryAfterJobRecorded(deps, earlier as Job)).toEqual({ kind: "awaiting-run" });
    expect(github.reruns).toEqual(["acme/app#77"]);
    // The completion holds the pool again; the re-run goes once the spot runners have stopped.
    expect(await retryAfterRunCompleted(deps, { ...run, runId: "78" })).toEqual({
      kind: "held",
      pool: "x86_64",
    });
    setup.advance(15_000);
    await beat(setup, SPOT, false);
    expect((await retryHeld(deps, "x86_64")).map((outcome) => outcome.kind)).toContain("retried");
    expect(github.reruns).toEqual(["acme/app#77", "acme/app#78"]);
    expect(await holdState(deps, "x86_64")).toEqual({ held: true, pending: false });
  });

  it("GitHub: holds from the job's failure, lets go while the run runs, holds again when it completes", async () => {
    const setup = await setUp(oneRetry, { holds: true });
    const { deps, github } = setup;
    await deps.ledger.record(running({ id: "1" }));
    await markJobsInterrupted(deps, { instanceId: INSTANCE, pool: "x86_64", at: WARNED });
    await fleetOf(setup);
    const { job: first } = await deps.ledger.record(failed({ id: "1" }));
    expect(await retryAfterJobRecorded(deps, first as Job)).toEqual({ kind: "held", pool: "x86_64" });
    // Confirmed; the run has not completed (GitHub's 403): nothing is due, the spot runners claim again.
    setup.advance(15_000);
    await beat(setup, SPOT, false);
    expect((await retryHeld(deps, "x86_64")).map((outcome) => outcome.kind)).toEqual(["awaiting-run"]);
    expect(await holdState(deps, "x86_64")).toEqual({ held: false, pending: false });
    // The run completes: its re-run is due from now, and waits for a confirmation after that.
    setup.advance(60_000);
    github.completed.add("acme/app#77");
    const run = { repository: "acme/app", runId: "77", attempt: 1 };
    expect(await retryAfterRunCompleted(deps, run)).toEqual({ kind: "held", pool: "x86_64" });
    expect(github.reruns).toEqual([]);
    expect(await holdState(deps, "x86_64")).toEqual({ held: true, pending: true });
    setup.advance(15_000);
    await beat(setup, SPOT, false);
    expect((await retryHeld(deps, "x86_64")).map((outcome) => outcome.kind)).toEqual(["retried"]);
    expect(github.reruns).toEqual(["acme/app#77"]);
    expect(await holdState(deps, "x86_64")).toEqual({ held: true, pending: false });
    // Attempt 2's job, first seen running on the warm instance: linked, and the hold ends.
    const { job: next } = await deps.ledger.record(
      running({ id: "11", attempt: 2, instanceId: WARM, runner: { id: "9", name: `hearth-${WARM}-0` } }),
    );
    expect(await retryAfterJobRecorded(deps, next as Job)).toEqual({ kind: "linked", retryOf: "1" });
    expect(await holdState(deps, "x86_64")).toEqual({ held: false, pending: false });
    expect(await reasons(setup)).toContain(
      `github job 11, the retry of interrupted job 1, ran on on-demand capacity (${WARM}, warm group)`,
    );
  });
});
