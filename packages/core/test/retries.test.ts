import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInstanceRegistry } from "../src/instances";
import { type Job, type JobEvent, mergeJobs } from "../src/jobs";
import { createJournal } from "../src/journal";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { defaultPools, type PoolConfig } from "../src/pools";
import {
  createRetryRecords,
  markJobsInterrupted,
  needsRetry,
  type RetryDeps,
  retryAfterJobRecorded,
  retryAfterRunCompleted,
} from "../src/retries";
import { ensureTable } from "../src/table";
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

async function setUp(pools: readonly PoolConfig[] = defaultPools) {
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
  };
  const registry = createInstanceRegistry(store);
  return {
    deps,
    gitlab,
    github,
    counted,
    registry,
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
    const setup = await setUp();
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
