import { randomUUID } from "node:crypto";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { applyEvent, type Job } from "../src/jobs";
import { createLedger, type Ledger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { ensureTable } from "../src/table";
import { countingClient } from "./support/counting-client";
import { jobEvent, lifecycle } from "./support/jobs";

/** One suite, two backends: what the ledger promises must hold on both. */
interface Backend {
  name: string;
  endpoint(): string;
}

let embedded: EmbeddedDynamo | undefined;
beforeAll(async () => {
  embedded = await startEmbeddedDynamo();
});
afterAll(async () => {
  await embedded?.close();
});

const backends: Backend[] = [
  { name: "dynalite (embedded)", endpoint: () => embedded?.endpoint ?? "" },
  { name: "DynamoDB Local", endpoint: () => inject("dynamoDbLocalEndpoint") },
];

describe.each(backends)("ledger on $name", (backend) => {
  let clock = new Date("2026-01-01T10:00:30.000Z");
  async function freshLedger(): Promise<{
    ledger: Ledger;
    raw: (pk: string, sk: string) => Promise<unknown>;
  }> {
    const tableName = `ledger-${randomUUID()}`;
    const { client, documents } = localDynamoClients(backend.endpoint());
    await ensureTable(client, tableName);
    const ledger = createLedger({ client: documents, tableName, now: () => clock });
    const raw = async (pk: string, sk: string) =>
      (await documents.send(new GetCommand({ TableName: tableName, Key: { pk, sk }, ConsistentRead: true })))
        .Item;
    return { ledger, raw };
  }

  it("records a new job and reads it back by key", async () => {
    const { ledger } = await freshLedger();
    const event = jobEvent();
    const result = await ledger.record(event, "d-1");
    expect(result.outcome).toBe("recorded");
    expect(await ledger.get({ source: "github", id: "1001" })).toEqual(applyEvent(undefined, event));
    expect(await ledger.get({ source: "gitlab", id: "1001" })).toBeUndefined();
  });

  it("writes a new job's queued delivery without reading first; a job already there is read and merged", async () => {
    const tableName = `ledger-${randomUUID()}`;
    const { client, documents } = localDynamoClients(backend.endpoint());
    await ensureTable(client, tableName);
    const { client: counting, sent } = countingClient(documents);
    const ledger = createLedger({ client: counting, tableName, now: () => clock });
    expect((await ledger.record(jobEvent(), "d-1")).outcome).toBe("recorded");
    expect(sent).toEqual(["PutCommand"]);
    // The same delivery again: the write finds the job there, and the read finds the delivery.
    sent.length = 0;
    expect((await ledger.record(jobEvent(), "d-1")).outcome).toBe("duplicate");
    expect(sent).toEqual(["PutCommand", "GetCommand"]);
    // A late queued delivery of a job that runs already changes nothing.
    const [, running] = lifecycle("1002");
    await ledger.record(running as Job, "d-2");
    sent.length = 0;
    expect((await ledger.record(jobEvent({ id: "1002" }), "d-3")).outcome).toBe("unchanged");
    expect(sent).toEqual(["PutCommand", "GetCommand"]);
    expect((await ledger.get({ source: "github", id: "1002" }))?.status).toBe("running");
    // Without a delivery id (a poll's), the job is read first: a poll mostly finds jobs recorded.
    sent.length = 0;
    await ledger.record(jobEvent({ id: "1003" }));
    expect(sent).toEqual(["GetCommand", "PutCommand"]);
  });

  it("applies a delivery once: a replay writes nothing", async () => {
    const { ledger, raw } = await freshLedger();
    await ledger.record(jobEvent(), "d-1");
    const before = await raw("JOB#github#1001", "JOB");
    clock = new Date(clock.getTime() + 1000);
    const again = await ledger.record(
      jobEvent({ status: "running", startedAt: "2026-01-01T10:01:00.000Z" }),
      "d-1",
    );
    expect(again.outcome).toBe("duplicate");
    expect(await raw("JOB#github#1001", "JOB")).toEqual(before);
    expect((await ledger.get({ source: "github", id: "1001" }))?.status).toBe("queued");
  });

  it("never lets a late queued event bring back a running or completed job", async () => {
    const { ledger } = await freshLedger();
    const [queued, running, completed] = lifecycle();
    await ledger.record(running as Job, "d-2");
    expect((await ledger.record(queued as Job, "d-1")).outcome).toBe("unchanged");
    expect((await ledger.get({ source: "github", id: "1001" }))?.status).toBe("running");
    await ledger.record(completed as Job, "d-3");
    const late = await ledger.record(jobEvent({ status: "queued" }), "d-4");
    expect(late.outcome).toBe("unchanged");
    const job = await ledger.get({ source: "github", id: "1001" });
    expect(job).toMatchObject({
      status: "completed",
      conclusion: "success",
      queuedAt: "2026-01-01T10:00:00.000Z",
    });
  });

  it("lists queued jobs by label set, oldest first, and drops them once they run", async () => {
    const { ledger } = await freshLedger();
    const times = ["2026-01-01T10:00:05.000Z", "2026-01-01T09:59:00.000Z", "2026-01-01T10:00:01.000Z"];
    for (const [i, queuedAt] of times.entries()) {
      await ledger.record(jobEvent({ id: `j${i}`, queuedAt }), `d${i}`);
    }
    await ledger.record(jobEvent({ id: "arm", labels: ["nix", "aarch64-linux"] }), "d-arm");
    const queue = await ledger.queuedByLabels(["x86_64-linux", "NIX"]);
    expect(queue.map((job) => job.id)).toEqual(["j1", "j2", "j0"]);
    expect((await ledger.queuedByLabels(["nix", "aarch64-linux"])).map((job) => job.id)).toEqual(["arm"]);

    await ledger.record(
      jobEvent({ id: "j1", status: "running", instanceId: "i-0aaaaaaaaaaaaaaaa" }),
      "d-run",
    );
    expect((await ledger.queuedByLabels(["nix", "x86_64-linux"])).map((job) => job.id)).toEqual(["j2", "j0"]);
    expect((await ledger.queued()).map((job) => job.id)).toEqual(["arm", "j2", "j0"]);
  });

  it("queues a job whose label set is longer than a DynamoDB key may be", async () => {
    const { ledger } = await freshLedger();
    // 100 labels of 256 characters: what a webhook may carry, far over the 2048-byte key limit.
    const labels = Array.from({ length: 100 }, (_, i) => `${i}`.padStart(256, "é"));
    expect((await ledger.record(jobEvent({ id: "long", labels }), "d-long")).outcome).toBe("recorded");
    expect((await ledger.queuedByLabels(labels)).map((job) => job.id)).toEqual(["long"]);
    expect((await ledger.queued()).map((job) => job.id)).toEqual(["long"]);
    const labelsFor = await ledger.setLabels({ source: "github", id: "long" }, [...labels, "more"]);
    expect(labelsFor?.labels).toHaveLength(101);
  });

  it("keeps jobs with unknown labels apart until their labels are filled in", async () => {
    const { ledger } = await freshLedger();
    await ledger.record(jobEvent({ source: "gitlab", id: "55", labels: [], labelsKnown: false }), "g-1");
    expect((await ledger.queuedByLabels("unknown")).map((job) => job.id)).toEqual(["55"]);
    const updated = await ledger.setLabels({ source: "gitlab", id: "55" }, ["Nix", "x86_64-linux"]);
    expect(updated).toMatchObject({ labels: ["nix", "x86_64-linux"], labelsKnown: true });
    expect(await ledger.queuedByLabels("unknown")).toEqual([]);
    expect((await ledger.queuedByLabels(["nix", "x86_64-linux"])).map((job) => job.id)).toEqual(["55"]);
    expect(await ledger.setLabels({ source: "gitlab", id: "404" }, ["nix"])).toBeUndefined();
  });

  it("finds the jobs running on an instance", async () => {
    const { ledger } = await freshLedger();
    const [, runA, doneA] = lifecycle("a");
    const [, runB] = lifecycle("b");
    await ledger.record(runA as Job, "a-run");
    await ledger.record(runB as Job, "b-run");
    await ledger.record(jobEvent({ id: "c", status: "running", instanceId: "i-0bbbbbbbbbbbbbbbb" }), "c-run");
    const ids = async () => (await ledger.runningOn("i-0123456789abcdef0")).map((job) => job.id).sort();
    expect(await ids()).toEqual(["a", "b"]);
    await ledger.record(doneA as Job, "a-done");
    expect(await ids()).toEqual(["b"]);
  });

  it("finds every job running on an instance, and says when a bounded read did not find them all", async () => {
    const { ledger } = await freshLedger();
    const [, runA, doneA] = lifecycle("a");
    await ledger.record(runA as Job, "a-run");
    await ledger.record(jobEvent({ id: "c", status: "running", instanceId: "i-0bbbbbbbbbbbbbbbb" }), "c-run");
    // Running with no instance of Hearth's (another runner took it): not on an instance.
    await ledger.record(jobEvent({ id: "d", status: "running" }), "d-run");
    await ledger.record(jobEvent({ id: "e", status: "queued" }), "e-queued");
    const all = await ledger.runningOnInstances(100);
    expect(all.complete).toBe(true);
    expect(all.jobs.map((job) => job.id).sort()).toEqual(["a", "c"]);
    const cut = await ledger.runningOnInstances(1);
    expect(cut).toMatchObject({ complete: false });
    expect(cut.jobs).toHaveLength(1);
    await ledger.record(doneA as Job, "a-done");
    expect((await ledger.runningOnInstances(100)).jobs.map((job) => job.id)).toEqual(["c"]);
  });

  it("gives finished jobs, and the delivery ids kept on them, an expiry; live jobs none", async () => {
    const { ledger, raw } = await freshLedger();
    const [queued, , completed] = lifecycle();
    await ledger.record(queued as Job, "d-1");
    expect(await raw("JOB#github#1001", "JOB")).not.toHaveProperty("expiresAt");
    await ledger.record(completed as Job, "d-2");
    const job = (await raw("JOB#github#1001", "JOB")) as { expiresAt: number; deliveries: string[] };
    expect(job.expiresAt).toBe(Date.parse("2026-01-01T10:05:00.000Z") / 1000 + 7 * 24 * 3600);
    expect(job.deliveries).toEqual(["d-2", "d-1"]);
  });

  it("writes nothing for an event that tells nothing new", async () => {
    const { ledger, raw } = await freshLedger();
    const [queued, running] = lifecycle();
    await ledger.record(running as Job, "d-2");
    const before = await raw("JOB#github#1001", "JOB");
    expect((await ledger.record(queued as Job, "d-1")).outcome).toBe("unchanged");
    expect(await raw("JOB#github#1001", "JOB")).toEqual(before);
  });

  it("merges concurrent writes to one job without losing any", async () => {
    const { ledger } = await freshLedger();
    const events = lifecycle();
    await Promise.all(events.map((event, i) => ledger.record(event, `c-${i}`)));
    const expected = events.reduce<Job | undefined>((job, event) => applyEvent(job, event), undefined);
    // Whichever write first ran it on its instance decided its store's origin: none, for an
    // instance the registry does not know, as of the time it started.
    expect(await ledger.get({ source: "github", id: "1001" })).toEqual({
      ...expected,
      store: { origin: null, instanceId: "i-0123456789abcdef0", at: "2026-01-01T10:00:20.000Z" },
    });
  });
});
