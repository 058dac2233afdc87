import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createGitHubClient } from "../src/github-api/client";
import { createGitLabLists } from "../src/gitlab-api/job-lists";
import type { Job } from "../src/jobs";
import { createJournal } from "../src/journal";
import { createLeases } from "../src/leases";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import {
  loadGovernors,
  loadPollReport,
  loadReconciliationState,
  type PollDeps,
  pollOnce,
  reconciliationLease,
} from "../src/polling";
import { defaultPools, type PoolConfig } from "../src/pools";
import type { AfterRecorded } from "../src/scaling/after-recorded";
import { ensureTable, type Store } from "../src/table";
import { workflowJobExamples } from "./fixtures";
import { FakeGitHub } from "./support/fake-github";
import { type FakeGitLabJobs, startFakeGitLabJobs } from "./support/fake-gitlab-jobs";
import { jobEvent } from "./support/jobs";

/**
 * One scheduled poll: the cursors and the governors' windows persist between runs (each run is a new
 * Lambda invocation, so each builds its governors anew), overlapping polls do not both spend, what is
 * found is recorded and scaled for as a webhook's job, and only a poll with news is journaled.
 */

let dynamo: EmbeddedDynamo;
let github: FakeGitHub;
let gitlab: FakeGitLabJobs;
let clock: number;
const now = () => clock;

beforeAll(async () => {
  dynamo = await startEmbeddedDynamo();
});
afterAll(() => dynamo.close());
beforeEach(async () => {
  clock = Date.parse("2026-12-01T08:00:00Z");
  github = await new FakeGitHub({ now }).start();
  github.install("acme");
  gitlab = await startFakeGitLabJobs({ now });
});
afterEach(async () => {
  await github.stop();
  await gitlab.close();
  expect(github.violations).toEqual([]);
});

async function storeOf(): Promise<Store> {
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  const tableName = `run-${randomUUID()}`;
  await ensureTable(client, tableName);
  return { client: documents, tableName, now: () => new Date(clock) };
}

const appClient = () =>
  createGitHubClient({
    credentials: { kind: "app", appId: github.appId, privateKey: github.privateKey },
    baseUrl: github.baseUrl,
    writeSpacingMs: 0,
    rateLimitRetries: 0,
    serverErrorRetries: 0,
    now,
  });

const labels = ["nix", "x86_64-linux"];

/** A poll's dependencies over `store`, scaling by recording the jobs it is asked to scale for. */
function depsOf(store: Store, overrides: Partial<PollDeps> = {}) {
  const scaled: Job[] = [];
  const deps: PollDeps = {
    store,
    ledger: createLedger(store),
    leases: createLeases(store),
    journal: createJournal(store),
    pools: defaultPools,
    github: { client: appClient() },
    budgetShare: 0.1,
    pollMinutes: 1,
    scale: async (job): Promise<AfterRecorded> => {
      scaled.push(job);
      return { kind: "requested", pool: "x86_64", outcome: "started", tags: "known" };
    },
    holder: randomUUID(),
    now: () => new Date(clock),
    ...overrides,
  };
  return { deps, scaled };
}

describe("one scheduled poll", () => {
  it("records and scales for a job no webhook announced, journals it once, and stays quiet after", async () => {
    const store = await storeOf();
    const { deps, scaled } = depsOf(store);
    // The repository is active: a webhook told of one job; another's webhook was lost.
    await deps.ledger.record(
      jobEvent({ id: "1", project: "acme/app", queuedAt: new Date(clock).toISOString() }),
      "delivery-1",
    );
    const run = github.addRun("acme/app", { status: "queued", jobs: [{ status: "queued", labels }] });
    const missed = String(run.jobs[0]?.id);

    const report = await pollOnce(deps);
    expect(report).toMatchObject({ found: 1, recorded: 1, queued: 1, redelivered: 0, unknown: [] });
    expect(report.forges).toEqual([
      expect.objectContaining({ forge: "github", status: "polled", calls: report.calls, queued: 1 }),
    ]);
    expect(report.calls).toBeGreaterThan(0);
    expect(scaled.map((job) => job.id)).toEqual([missed]);
    expect((await deps.ledger.get({ source: "github", id: missed }))?.status).toBe("queued");
    const journaled = await deps.journal.latest(10);
    expect(journaled).toHaveLength(1);
    expect(journaled[0]).toMatchObject({ kind: "poll", pool: null, details: { queued: 1, recorded: 1 } });
    expect(journaled[0]?.reason).toMatch(/found 1 queued job no webhook had announced/);

    // The status page's figure: the stored report, with each token's budget left.
    const stored = await loadPollReport(store);
    expect(stored).toMatchObject({ at: new Date(clock).toISOString(), queued: 1, unknownCount: 0 });
    expect(stored?.forges[0]?.tokens.map((token) => token.token).sort()).toEqual([
      `app:${github.appId}`,
      "installation:1000",
    ]);

    // A minute on, the same job is seen again: nothing recorded, scaled or journaled.
    clock += 60_000;
    const again = await pollOnce({ ...deps, holder: randomUUID() });
    expect(again).toMatchObject({ found: 1, recorded: 0, queued: 0 });
    expect(scaled).toHaveLength(1);
    expect(await deps.journal.latest(10)).toHaveLength(1);
  });

  it("keeps the budget across invocations: a poll right after another finds its share spent", async () => {
    const store = await storeOf();
    const { deps } = depsOf(store, { budgetShare: 0.01 });
    for (const repo of ["acme/a", "acme/b", "acme/c"]) {
      await deps.ledger.record(
        jobEvent({ id: repo, project: repo, queuedAt: new Date(clock).toISOString() }),
        `d-${repo}`,
      );
      github.addRun(repo, { status: "queued", jobs: [{ status: "queued", labels }] });
    }
    // 1% of 5,000 an hour: a poll a minute may spend one call at once per token (the App's, for its
    // deliveries, and the installation's).
    const first = await pollOnce(deps);
    expect(first.calls).toBe(2);
    expect(first.forges[0]?.tokens.map((token) => token.calls)).toEqual([1, 1]);
    // Calls the governors count (the installation lookup and token are the client's own).
    const governed = () =>
      github.requests.filter((call) => /actions\/runs|hook\/deliveries/.test(call.template ?? "")).length;
    const requestsAfterFirst = governed();
    expect(requestsAfterFirst).toBe(2);

    // A new invocation at once, with governors built anew (as a new Lambda's would be): the stored
    // window says the poll's part is spent, so it calls nothing and says why.
    const second = await pollOnce({ ...depsOf(store, { budgetShare: 0.01 }).deps });
    expect(second.calls).toBe(0);
    expect(governed()).toBe(requestsAfterFirst);
    expect(second.unknown.map((listing) => listing.reason)).toContain(
      "not polled: polling paces its share over the hour",
    );

    // The stored governors are shared: another caller (the sweep) reads the same window.
    const shared = await loadGovernors(store, "github", {
      assumedLimit: 5000,
      windowSeconds: 3600,
      share: 0.01,
      burst: 1,
      now,
    });
    expect(shared.governors.for(`app:${github.appId}`).check()).toBe("pace");

    const state = await loadReconciliationState(store, "github");
    expect(state.version).toBe(2);
  });

  it("lets one of two overlapping polls spend the forge's budget; the other skips it", async () => {
    const store = await storeOf();
    const first = depsOf(store).deps;
    await first.ledger.record(jobEvent({ id: "1", queuedAt: new Date(clock).toISOString() }), "delivery-1");
    github.addRun("acme/app", { status: "queued", jobs: [{ status: "queued", labels }] });
    // Another poll holds the lease (it is still running).
    await first.leases.acquire(reconciliationLease("github"), "the-other-poll", 90);
    const skipped = await pollOnce(first);
    expect(skipped.forges).toEqual([
      { forge: "github", status: "skipped", calls: 0, listings: 0, queued: 0, tokens: [] },
    ]);
    expect(github.requests).toEqual([]);

    await first.leases.release(reconciliationLease("github"), "the-other-poll");
    const [a, b] = await Promise.all([pollOnce(depsOf(store).deps), pollOnce(depsOf(store).deps)]);
    const statuses = [a, b].map((report) => report.forges[0]?.status).sort();
    expect(statuses).toEqual(["polled", "skipped"]);
    // The lease is free again once the poll is done.
    expect(await first.leases.get(reconciliationLease("github"))).toBeUndefined();
  });

  it("polls the pools' GitLab groups, and reports a failed listing as unknown, journaled", async () => {
    const store = await storeOf();
    const pools: PoolConfig[] = defaultPools.map((pool) =>
      pool.name === "x86_64" ? { ...pool, gitlab: { group: "acme" } } : pool,
    );
    const app = gitlab.addProject("acme/app", ["acme"]);
    const lib = gitlab.addProject("acme/lib", ["acme"]);
    const pending = gitlab.addJob(app, { status: "pending", tags: labels });
    gitlab.addJob(lib, {
      status: "running",
      tags: labels,
      startedAt: clock,
      runner: { id: 3, description: "r" },
    });
    const { deps, scaled } = depsOf(store, {
      pools,
      github: undefined,
      gitlab: {
        lists: createGitLabLists({ url: gitlab.url, token: gitlab.token }),
        url: "https://gitlab.example.com",
      },
    });
    const report = await pollOnce(deps);
    expect(report).toMatchObject({ found: 2, recorded: 2, queued: 1, unknown: [] });
    expect(scaled.map((job) => job.id)).toEqual([String(pending.id)]);
    expect(report.forges[0]).toMatchObject({ forge: "gitlab", status: "polled", listings: 3 });

    // A project's listing fails: unknown, never "no jobs", and the journal says so.
    clock += 60_000;
    gitlab.inject(1, { status: 500 }, (path) => path.startsWith(`/projects/${lib.id}/`));
    const failing = await pollOnce({ ...deps, holder: randomUUID() });
    expect(failing.unknown).toEqual([
      { forge: "gitlab", listing: String(lib.id), reason: expect.stringMatching(/500/) },
    ]);
    const [entry] = await deps.journal.latest(1);
    expect(entry?.reason).toMatch(/1 listing is unknown this poll/);
    expect((await loadPollReport(store))?.unknownCount).toBe(1);
  });

  it("gives every job it recorded to the retries, as a webhook's path does", async () => {
    const store = await storeOf();
    const given: Job[] = [];
    const { deps } = depsOf(store, {
      recorded: async (job) => {
        given.push(job);
      },
    });
    // A job's `completed` webhook failed: the poll reads it from the delivery log.
    const example = workflowJobExamples.find((payload) => payload.action === "completed");
    if (!example) throw new Error("GitHub's examples have a completed workflow_job");
    github.addDelivery({ event: "workflow_job", action: "completed", statusCode: 502, payload: example });

    const report = await pollOnce(deps);
    expect(report).toMatchObject({ deliveriesRead: 1, recorded: 1 });
    expect(given.map((job) => [job.id, job.status])).toEqual([
      [String(example.workflow_job.id), "completed"],
    ]);
    // Seen again (the next poll lists nothing new), it is not given again.
    clock += 60_000;
    await pollOnce(deps);
    expect(given).toHaveLength(1);
  });

  it("moves its cursors on only once what it found is recorded: a failed recording is read again", async () => {
    const store = await storeOf();
    const ledger = createLedger(store);
    let failures = 1;
    const { deps } = depsOf(store, {
      ledger: {
        ...ledger,
        record: async (...args: Parameters<typeof ledger.record>) => {
          if (failures-- > 0) throw new Error("the table is unavailable");
          return ledger.record(...args);
        },
      },
    });
    const example = workflowJobExamples.find((payload) => payload.action === "queued");
    if (!example) throw new Error("GitHub's examples have a queued workflow_job");
    github.addDelivery({ event: "workflow_job", action: "queued", statusCode: 0, payload: example });

    await expect(pollOnce(deps)).rejects.toThrow(/unavailable/);
    expect(await ledger.get({ source: "github", id: String(example.workflow_job.id) })).toBeUndefined();
    expect((await loadReconciliationState(store, "github")).poll).toEqual({});

    clock += 60_000;
    const report = await pollOnce(deps);
    expect(report).toMatchObject({ deliveriesRead: 1, recorded: 1 });
    expect(await ledger.get({ source: "github", id: String(example.workflow_job.id) })).toMatchObject({
      status: "queued",
    });
  });
});
