import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GitLabJobs, TagsUnavailable } from "../src/gitlab-api";
import { createLeases } from "../src/leases";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { defaultPools } from "../src/pools";
import { createScalingRecords } from "../src/scaling";
import { afterJobRecorded } from "../src/scaling/after-recorded";
import { ensureTable } from "../src/table";
import { jobEvent } from "./support/jobs";

/**
 * What follows a recorded job: a GitLab job whose tags are not known yet asks its own pool, and no
 * other, for capacity; one whose tags cannot be known is routed as untagged.
 */

let dynamo: EmbeddedDynamo;
beforeAll(async () => {
  dynamo = await startEmbeddedDynamo();
});
afterAll(() => dynamo.close());

/** The tag lookup's budget: short where GitLab never answers, ample where it does (a loaded machine). */
async function setUp(gitlab: GitLabJobs | undefined, lookupBudgetMs = 100) {
  const { client, documents } = localDynamoClients(dynamo.endpoint);
  const tableName = `after-${randomUUID()}`;
  await ensureTable(client, tableName);
  const store = { client: documents, tableName, now: () => new Date() };
  const ledger = createLedger(store);
  const scalingRecords = createScalingRecords(store);
  // The untagged pool has a spare slot: a job routed there takes it and starts nothing.
  await scalingRecords.put({
    pool: "x86_64",
    at: new Date().toISOString(),
    desiredWarm: 1,
    desiredBurst: 0,
    warmPoolSize: 0,
    queued: 0,
    spareSlots: 1,
    reason: "one instance up",
  });
  const started: string[] = [];
  const deps = {
    pools: defaultPools,
    ledger,
    leases: createLeases(store),
    scalingRecords,
    gitlab,
    startScaleFleet: async (pool: string) => {
      started.push(pool);
    },
    holder: () => randomUUID(),
    lookupBudgetMs,
  };
  const { job } = await ledger.record(
    jobEvent({ source: "gitlab", id: "77", projectId: "5", labels: [], labelsKnown: false }),
  );
  if (!job) throw new Error("not recorded");
  return { deps, job, started, scalingRecords };
}

describe("afterJobRecorded", () => {
  it("looks a GitLab job's tags up and starts its own pool's run", async () => {
    const { deps, job, started, scalingRecords } = await setUp(
      { tagList: async () => ["nix", "aarch64-linux"] },
      10_000,
    );
    expect(await afterJobRecorded(deps, job)).toEqual({
      kind: "requested",
      pool: "aarch64",
      outcome: "started",
      tags: "looked_up",
    });
    expect(started).toEqual(["aarch64"]);
    expect((await scalingRecords.get("x86_64"))?.spareSlots).toBe(1);
  });

  it("asks no pool when GitLab does not answer within the budget: the tick looks again", async () => {
    const { deps, job, started, scalingRecords } = await setUp({ tagList: () => new Promise(() => {}) });
    expect(await afterJobRecorded(deps, job)).toMatchObject({ kind: "tags_pending" });
    expect(started).toEqual([]);
    expect((await scalingRecords.get("x86_64"))?.spareSlots).toBe(1);
  });

  it("routes a job whose tags cannot be known as untagged", async () => {
    for (const gitlab of [
      undefined,
      { tagList: (_: string, id: string) => Promise.reject(new TagsUnavailable(id)) },
    ]) {
      const { deps, job, started, scalingRecords } = await setUp(gitlab);
      expect(await afterJobRecorded(deps, job)).toEqual({
        kind: "requested",
        pool: "x86_64",
        outcome: "covered",
        tags: "unknown",
      });
      expect(started).toEqual([]);
      expect((await scalingRecords.get("x86_64"))?.spareSlots).toBe(0);
    }
  });
});
