import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { activeProjects, ingestPolledEvents } from "../src/polling";
import { defaultPools } from "../src/pools";
import { ensureTable } from "../src/table";
import { jobEvent } from "./support/jobs";

/**
 * What polling finds goes through the webhooks' own ledger path: a job a webhook told of is not
 * recorded again and not scaled for again; a job only polling saw is, in its own pool.
 */

let dynamo: EmbeddedDynamo;
beforeAll(async () => {
  dynamo = await startEmbeddedDynamo();
});
afterAll(() => dynamo.close());

async function ledger() {
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  const tableName = `poll-${randomUUID()}`;
  await ensureTable(client, tableName);
  return createLedger({ client: documents, tableName });
}

describe("ingesting polled jobs", () => {
  it("records a job seen by a webhook and a poll once, and scales only for what the poll alone saw", async () => {
    const jobs = await ledger();
    const seenByWebhook = jobEvent({ id: "1" });
    await jobs.record(seenByWebhook, "delivery-1");
    const missed = jobEvent({ id: "2", labels: ["nix", "aarch64-linux"] });
    const started = jobEvent({
      id: "3",
      status: "running",
      startedAt: "2026-01-01T10:01:00.000Z",
      runner: { id: "7", name: "hearth-i-0123456789abcdef0-0" },
      instanceId: "i-0123456789abcdef0",
    });
    await jobs.record(jobEvent({ id: "3" }), "delivery-3");

    const first = await ingestPolledEvents(jobs, defaultPools, [seenByWebhook, missed, started]);
    expect(first.outcomes).toEqual({ recorded: 2, unchanged: 1, duplicate: 0 });
    expect(first.newlyQueued.map((job) => job.id)).toEqual(["2"]);
    expect(first.pools).toEqual(["aarch64"]);
    expect((await jobs.get({ source: "github", id: "3" }))?.status).toBe("running");

    // The next poll sees the same jobs: nothing is written, nothing scaled.
    const again = await ingestPolledEvents(jobs, defaultPools, [seenByWebhook, missed, started]);
    expect(again.outcomes).toEqual({ recorded: 0, unchanged: 3, duplicate: 0 });
    expect(again.pools).toEqual([]);

    // A poll's late `queued` never brings a running job back.
    const late = await ingestPolledEvents(jobs, defaultPools, [jobEvent({ id: "3" })]);
    expect(late.newlyQueued).toEqual([]);
    expect((await jobs.get({ source: "github", id: "3" }))?.status).toBe("running");
  });

  it("scales for a queued GitLab job whose tags the hook lacked once a poll says them", async () => {
    const jobs = await ledger();
    const hook = jobEvent({ source: "gitlab", id: "9", projectId: "42", labels: [], labelsKnown: false });
    await jobs.record(hook, "hook-9");
    const polled = await ingestPolledEvents(jobs, defaultPools, [
      { ...hook, labels: ["nix", "x86_64-linux"], labelsKnown: true },
    ]);
    expect(polled.newlyQueued.map((job) => job.id)).toEqual(["9"]);
    expect(polled.pools).toEqual(["x86_64"]);
  });

  it("says which new jobs no pool takes, and which still need their tags looked up", async () => {
    const jobs = await ledger();
    const result = await ingestPolledEvents(jobs, defaultPools, [
      jobEvent({ id: "20", labels: ["ubuntu-latest"] }),
      jobEvent({ source: "gitlab", id: "21", projectId: "42", labels: [], labelsKnown: false }),
    ]);
    expect(result.unroutable.map((job) => job.id)).toEqual(["20"]);
    expect(result.tagsUnknown.map((job) => job.id)).toEqual(["21"]);
    expect(result.pools).toEqual([]);
  });

  it("names the active repositories: jobs in flight, then recent traffic, and no others", async () => {
    const jobs = await ledger();
    const now = new Date();
    const ago = (minutes: number) => new Date(now.getTime() - minutes * 60_000).toISOString();
    await jobs.record(jobEvent({ id: "30", project: "acme/waiting-long", queuedAt: ago(300) }));
    await jobs.record(jobEvent({ id: "31", project: "acme/just-finished", queuedAt: ago(5) }));
    await jobs.record(
      jobEvent({
        id: "31",
        project: "acme/just-finished",
        status: "completed",
        queuedAt: ago(5),
        startedAt: ago(4),
        finishedAt: ago(1),
        conclusion: "success",
      }),
    );
    await jobs.record(
      jobEvent({
        id: "32",
        project: "acme/quiet",
        status: "completed",
        queuedAt: ago(120),
        finishedAt: ago(100),
      }),
    );
    await jobs.record(
      jobEvent({ source: "gitlab", id: "33", project: "group/app", projectId: "4", queuedAt: ago(2) }),
    );
    expect(await activeProjects(jobs, "github", now)).toEqual(["acme/waiting-long", "acme/just-finished"]);
    expect(await activeProjects(jobs, "gitlab", now)).toEqual(["group/app"]);
  });
});
