import { randomUUID } from "node:crypto";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createInstanceRegistry, type Heartbeat } from "../src/instances";
import { cacheKeyOf, type JobEvent } from "../src/jobs";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { BINARY_CACHE_WINDOW_SECONDS, classifyOrigin, createStoreKnowledge } from "../src/stores";
import { ensureTable } from "../src/table";
import { countingClient } from "./support/counting-client";
import { heartbeat } from "./support/heartbeats";
import { jobEvent } from "./support/jobs";
import { A, ARM, B, STRANGER, type StoreWorld, storeWorld } from "./support/store-world";

/**
 * Where a job's store came from: decided by the ledger when the job starts on an instance, from what
 * the instance's store holds (the keys of the jobs that completed on it, merged with its agent's
 * report) and what the pool finished within the binary cache's window.
 */

let dynamo: EmbeddedDynamo;
beforeAll(async () => {
  dynamo = await startEmbeddedDynamo();
});
afterAll(() => dynamo.close());

const OTHER_POOL = ARM;
type World = StoreWorld;
const world = () => storeWorld(dynamo, "2026-01-01T10:00:00.000Z");

/** A GitHub job's life on an instance: its key is `acme/app/ci / <name>`, which its runner never sees. */
async function run(
  w: World,
  id: string,
  instanceId: string,
  at: { start: string; end?: string },
  overrides: Partial<JobEvent> = {},
) {
  const runner = { id: "7", name: `hearth-${instanceId}-1` };
  await w.ledger.record(jobEvent({ id, ...overrides }));
  const started = await w.ledger.record(
    jobEvent({ id, status: "running", startedAt: at.start, runner, instanceId, ...overrides }),
  );
  if (at.end === undefined) return started.job;
  const done = await w.ledger.record(
    jobEvent({
      id,
      status: "completed",
      conclusion: "success",
      startedAt: at.start,
      finishedAt: at.end,
      runner,
      instanceId,
      ...overrides,
    }),
  );
  return done.job;
}

const originOf = async (w: World, id: string) => (await w.ledger.get({ source: "github", id }))?.store;

const beat = (instanceId: string, cacheKeys: string[]): Heartbeat =>
  heartbeat(instanceId, { cacheKeys, protocol: 3 });

describe("store origins", () => {
  it("a job's first run on an instance is cold; its key is then the instance's, and the next is warm", async () => {
    const w = await world();
    await run(w, "1", A, { start: "2026-01-01T10:00:10.000Z", end: "2026-01-01T10:05:00.000Z" });
    expect(await originOf(w, "1")).toEqual({
      origin: "cold",
      instanceId: A,
      at: "2026-01-01T10:00:10.000Z",
    });
    // The key is the ledger's, `cacheKeyOf(job)`, with GitHub's `workflow / job` name.
    const key = cacheKeyOf({ project: "acme/app", name: "ci / build" });
    expect((await w.registry.get(A))?.cacheKeys).toEqual([key]);
    expect((await w.registry.get(A))?.finishedCacheKeys).toEqual([key]);

    await run(w, "2", A, { start: "2026-01-01T10:06:00.000Z" });
    expect((await originOf(w, "2"))?.origin).toBe("warm");
  });

  it("a job whose key another instance of the pool finished within the cache's window is substituted", async () => {
    const w = await world();
    await run(w, "1", A, { start: "2026-01-01T10:00:10.000Z", end: "2026-01-01T10:05:00.000Z" });
    await run(w, "2", B, { start: "2026-01-01T10:06:00.000Z" });
    expect((await originOf(w, "2"))?.origin).toBe("substituted");
    // Another pool's instance: the pool's cache is not its own.
    await run(w, "3", OTHER_POOL, { start: "2026-01-01T10:06:00.000Z" });
    expect((await originOf(w, "3"))?.origin).toBe("cold");
    // Past the window, the cache is not counted on.
    const late = new Date(Date.parse("2026-01-01T10:05:00.000Z") + BINARY_CACHE_WINDOW_SECONDS * 1000 + 1000);
    await run(w, "4", B, { start: late.toISOString() }, { name: "ci / build" });
    expect((await originOf(w, "4"))?.origin).toBe("cold");
  });

  it("is decided once: later events, and a replayed start, leave it as it was", async () => {
    const w = await world();
    await run(w, "1", B, { start: "2026-01-01T10:00:10.000Z" });
    expect((await originOf(w, "1"))?.origin).toBe("cold");
    // Meanwhile A finishes a job of the same key: the running job's origin does not change.
    await run(w, "2", A, { start: "2026-01-01T10:00:20.000Z", end: "2026-01-01T10:01:00.000Z" });
    const replay = await w.ledger.record(
      jobEvent({
        id: "1",
        status: "running",
        startedAt: "2026-01-01T10:00:10.000Z",
        runner: { id: "7", name: `hearth-${B}-1` },
        instanceId: B,
      }),
    );
    expect(replay.outcome).toBe("unchanged");
    await w.ledger.record(
      jobEvent({
        id: "1",
        status: "completed",
        conclusion: "success",
        startedAt: "2026-01-01T10:00:10.000Z",
        finishedAt: "2026-01-01T10:09:00.000Z",
        instanceId: B,
      }),
    );
    expect((await originOf(w, "1"))?.origin).toBe("cold");
    // A replayed completion adds nothing twice.
    const before = await w.registry.get(B);
    await w.ledger.record(
      jobEvent({
        id: "1",
        status: "completed",
        conclusion: "success",
        finishedAt: "2026-01-01T10:09:00.000Z",
        instanceId: B,
      }),
    );
    expect((await w.registry.get(B))?.finishedCacheKeys).toEqual(before?.finishedCacheKeys);
  });

  it("a stopped and resumed store keeps its keys; a heartbeat does not take them away", async () => {
    const w = await world();
    await run(w, "1", A, { start: "2026-01-01T10:00:10.000Z", end: "2026-01-01T10:05:00.000Z" });
    await w.registry.parked(A);
    await w.registry.resumed(A, "2026-01-01T12:00:00.000Z");
    // The runner image reports no keys (no cache-keys.json); an image that does adds its own.
    await w.registry.heartbeat(A, beat(A, ["from-the-image"]));
    const record = await w.registry.get(A);
    const key = cacheKeyOf({ project: "acme/app", name: "ci / build" });
    expect(record?.cacheKeys).toEqual([key, "from-the-image"]);
    await w.registry.heartbeat(A, beat(A, []));
    expect((await w.registry.get(A))?.cacheKeys).toEqual([key]);
    await run(w, "2", A, { start: "2026-01-01T12:01:00.000Z" });
    expect((await originOf(w, "2"))?.origin).toBe("warm");
  });

  it("a key an agent reports makes its store warm too", async () => {
    const w = await world();
    const key = cacheKeyOf({ project: "acme/app", name: "ci / build" });
    await w.registry.heartbeat(B, beat(B, [key]));
    await run(w, "1", B, { start: "2026-01-01T10:00:10.000Z" });
    expect((await originOf(w, "1"))?.origin).toBe("warm");
  });

  it("a terminated instance's keys go with it: a job of its key on a new instance is substituted", async () => {
    const w = await world();
    await run(w, "1", A, { start: "2026-01-01T10:00:10.000Z", end: "2026-01-01T10:05:00.000Z" });
    await w.registry.forget(A);
    expect(await w.registry.get(A)).toBeUndefined();
    // Its id comes back in the registry (a heartbeat of a new life): it holds nothing.
    await w.registry.register({
      id: A,
      pool: "x86_64",
      group: "burst",
      market: "spot",
      az: "eu-west-1a",
      launchedAt: "2026-01-01T11:00:00.000Z",
      slots: 2,
    });
    expect((await w.registry.get(A))?.cacheKeys).toEqual([]);
    await run(w, "2", A, { start: "2026-01-01T11:01:00.000Z" });
    expect((await originOf(w, "2"))?.origin).toBe("substituted");
  });

  it("a job on an instance Hearth does not know gets no origin, and adds no key anywhere", async () => {
    const w = await world();
    const job = await run(w, "1", STRANGER, {
      start: "2026-01-01T10:00:10.000Z",
      end: "2026-01-01T10:05:00.000Z",
    });
    expect(job?.store).toEqual({ origin: null, instanceId: STRANGER, at: "2026-01-01T10:00:10.000Z" });
    expect(await w.registry.get(STRANGER)).toBeUndefined();
    const knowledge = createStoreKnowledge({
      client: localDynamoClients(dynamo.endpoint).documents,
      tableName: w.tableName,
    });
    expect(await knowledge.lastFinished("x86_64", cacheKeyOf(job ?? { project: "", name: "" }))).toBe(
      undefined,
    );
  });

  it("a job whose name is not known yet (first seen in a heartbeat) is decided once its key is", async () => {
    const w = await world();
    await run(w, "9", A, { start: "2026-01-01T10:00:10.000Z", end: "2026-01-01T10:05:00.000Z" });
    // GitLab: the heartbeat reports the job before any webhook names it.
    const first = await w.ledger.record(
      jobEvent({ source: "gitlab", id: "5", project: "", name: "", status: "running", instanceId: A }),
    );
    expect(first.job?.store).toBeUndefined();
    await w.ledger.record(
      jobEvent({
        source: "gitlab",
        id: "5",
        status: "running",
        name: "ci / build",
        startedAt: "2026-01-01T10:06:00.000Z",
      }),
    );
    expect((await w.ledger.get({ source: "gitlab", id: "5" }))?.store?.origin).toBe("warm");
  });
});

describe("store origins decided late or under concurrent writes", () => {
  it("a job whose start is recorded only with its end counts no key finished after it started", async () => {
    const w = await world();
    // Job 1 starts on A at 10:00:10; its `in_progress` is lost. Meanwhile job 2, of the same key, runs
    // on A's other slot and completes at 10:03, and job 3 on B completes at 10:04.
    await run(w, "2", A, { start: "2026-01-01T10:00:20.000Z", end: "2026-01-01T10:03:00.000Z" });
    expect((await originOf(w, "2"))?.origin).toBe("cold");
    const runner = { id: "7", name: `hearth-${A}-2` };
    await w.ledger.record(jobEvent({ id: "1" }));
    await w.ledger.record(
      jobEvent({
        id: "1",
        status: "completed",
        conclusion: "success",
        startedAt: "2026-01-01T10:00:10.000Z",
        finishedAt: "2026-01-01T10:05:00.000Z",
        runner,
        instanceId: A,
      }),
    );
    // A's store held the key only from 10:03, and the pool finished it first at 10:03: cold at 10:00:10.
    expect((await originOf(w, "1"))?.origin).toBe("cold");
    await run(w, "3", B, { start: "2026-01-01T10:01:00.000Z" });
    expect((await originOf(w, "3"))?.origin).toBe("cold");
  });

  it("a completion whose write is retried after a concurrent one does not see its own key", async () => {
    const { client, documents } = localDynamoClients(dynamo.endpoint);
    const tableName = `stores-${randomUUID()}`;
    await ensureTable(client, tableName);
    const now = () => new Date("2026-01-01T10:10:00.000Z");
    const registry = createInstanceRegistry({ client: documents, tableName, now });
    await registry.register({
      id: A,
      pool: "x86_64",
      group: "warm",
      market: "on-demand",
      az: "eu-west-1a",
      launchedAt: "2026-01-01T09:00:00.000Z",
      slots: 2,
    });
    const plain = createLedger({ client: documents, tableName, now });
    const runner = { id: "7", name: `hearth-${A}-1` };
    const start = "2026-01-01T10:00:10.000Z";
    let interleaved = false;
    // The first write of job 9 meets a concurrent record of its start (a heartbeat's, say), which
    // lands first: the completion's write then fails its condition and is tried again.
    const racing = {
      send: async (command: unknown) => {
        if (!interleaved && command instanceof PutCommand && command.input.Item?.id === "9") {
          interleaved = true;
          await plain.record(
            jobEvent({ id: "9", status: "running", startedAt: start, runner, instanceId: A }),
          );
        }
        return documents.send(command as never);
      },
    } as unknown as typeof documents;
    const ledger = createLedger({ client: racing, tableName, now });
    await plain.record(jobEvent({ id: "9" }));
    interleaved = false;
    await ledger.record(
      jobEvent({
        id: "9",
        status: "completed",
        conclusion: "success",
        startedAt: start,
        finishedAt: "2026-01-01T10:05:00.000Z",
        runner,
        instanceId: A,
      }),
    );
    expect(interleaved).toBe(true);
    const job = await plain.get({ source: "github", id: "9" });
    expect(job).toMatchObject({ status: "completed", store: { origin: "cold", instanceId: A } });
    expect((await registry.get(A))?.finishedCacheKeys).toEqual([
      cacheKeyOf({ project: "acme/app", name: "ci / build" }),
    ]);
  });

  it("names a key too long for a store's record by a hash of the whole", () => {
    const long = cacheKeyOf({ project: "acme/app", name: "x".repeat(2000) });
    const other = cacheKeyOf({ project: "acme/app", name: `${"x".repeat(1999)}y` });
    expect(long.length).toBeLessThanOrEqual(300);
    expect(other).not.toBe(long);
    expect(cacheKeyOf({ project: "acme/app", name: "ci / build" })).toBe("acme/app/ci / build");
  });
});

/** A client that runs `before` once, ahead of the first job write matching `when`. */
function interleaving(
  documents: ReturnType<typeof localDynamoClients>["documents"],
  when: (item: Record<string, unknown>) => boolean,
  before: () => Promise<unknown>,
) {
  let done = false;
  const client = {
    send: async (command: unknown) => {
      if (
        !done &&
        command instanceof PutCommand &&
        command.input.Item?.kind === "job" &&
        when(command.input.Item)
      ) {
        done = true;
        await before();
      }
      return documents.send(command as never);
    },
  } as unknown as typeof documents;
  return { client, interleaved: () => done };
}

describe("store bookkeeping on a job's start and end", () => {
  const runner = { id: "7", name: `hearth-${A}-1` };
  const started = (id: string, name: string, start: string) =>
    jobEvent({ id, name, status: "running", startedAt: start, runner, instanceId: A });
  const completed = (id: string, name: string, start: string, end: string) =>
    jobEvent({
      id,
      name,
      status: "completed",
      conclusion: "success",
      startedAt: start,
      finishedAt: end,
      runner,
      instanceId: A,
    });

  it("reads the instance's store with the job itself, in one call, then writes", async () => {
    const w = await world();
    const { documents } = localDynamoClients(dynamo.endpoint);
    const { client: counting, sent } = countingClient(documents);
    const ledger = createLedger({ client: counting, tableName: w.tableName, now: w.store.now });
    const calls = async (record: () => Promise<unknown>) => {
      sent.length = 0;
      await record();
      return [...sent];
    };
    await ledger.record(jobEvent({ id: "1" }));
    // A's pool is not known yet: the pool's record of the key is read once the store is found cold.
    expect(await calls(() => ledger.record(started("1", "ci / build", "2026-01-01T10:00:10.000Z")))).toEqual([
      "BatchGetCommand",
      "GetCommand",
      "PutCommand",
    ]);
    // The job, then the instance's record and the pool's record of the key, at once.
    expect(
      await calls(() =>
        ledger.record(completed("1", "ci / build", "2026-01-01T10:00:10.000Z", "2026-01-01T10:05:00.000Z")),
      ),
    ).toEqual(["BatchGetCommand", "PutCommand", "PutCommand", "PutCommand"]);
    // A's pool known: the pool's record of the key is read with the job and the instance.
    await ledger.record(jobEvent({ id: "2", name: "ci / test" }));
    expect(await calls(() => ledger.record(started("2", "ci / test", "2026-01-01T10:06:00.000Z")))).toEqual([
      "BatchGetCommand",
      "PutCommand",
    ]);
    expect((await originOf(w, "1"))?.origin).toBe("cold");
    expect((await originOf(w, "2"))?.origin).toBe("cold");
    expect((await w.registry.get(A))?.finishedCacheKeys).toEqual([
      cacheKeyOf({ project: "acme/app", name: "ci / build" }),
    ]);
  });

  it("a completion whose instance changed since the job was read writes on a fresh read of it", async () => {
    const w = await world();
    const { documents } = localDynamoClients(dynamo.endpoint);
    await run(w, "1", A, { start: "2026-01-01T10:00:10.000Z", end: "2026-01-01T10:05:00.000Z" });
    await w.ledger.record(jobEvent({ id: "2", name: "ci / test" }));
    await w.ledger.record(started("2", "ci / test", "2026-01-01T10:06:00.000Z"));
    // A heartbeat lands between the completion's read of A and its write.
    const { client, interleaved } = interleaving(
      documents,
      (item) => item.id === "2" && item.status === "completed",
      () => w.registry.heartbeat(A, beat(A, ["from-the-image"])),
    );
    const ledger = createLedger({ client, tableName: w.tableName, now: w.store.now });
    await ledger.record(completed("2", "ci / test", "2026-01-01T10:06:00.000Z", "2026-01-01T10:08:00.000Z"));
    expect(interleaved()).toBe(true);
    const record = await w.registry.get(A);
    const keys = ["ci / test", "ci / build"].map((name) => cacheKeyOf({ project: "acme/app", name }));
    expect(record?.finishedCacheKeys).toEqual(keys);
    expect(record?.reportedCacheKeys).toEqual(["from-the-image"]);
    expect(record?.lastHeartbeatAt).not.toBeNull();
    expect((await w.ledger.get({ source: "github", id: "2" }))?.store?.origin).toBe("cold");
  });

  it("a completion never brings back an instance forgotten since the job was read", async () => {
    const w = await world();
    const { documents } = localDynamoClients(dynamo.endpoint);
    await w.ledger.record(jobEvent({ id: "1" }));
    await w.ledger.record(started("1", "ci / build", "2026-01-01T10:00:10.000Z"));
    // A is terminated between the completion's read of it and its write.
    const { client, interleaved } = interleaving(
      documents,
      (item) => item.id === "1" && item.status === "completed",
      () => w.registry.forget(A),
    );
    const ledger = createLedger({ client, tableName: w.tableName, now: w.store.now });
    const done = await ledger.record(
      completed("1", "ci / build", "2026-01-01T10:00:10.000Z", "2026-01-01T10:05:00.000Z"),
    );
    expect(interleaved()).toBe(true);
    expect(done.job?.status).toBe("completed");
    expect(await w.registry.get(A)).toBeUndefined();
  });
});

describe("classifyOrigin", () => {
  const at = new Date("2026-01-08T10:00:00.000Z");
  it("warm over substituted over cold", () => {
    expect(classifyOrigin(["k"], "k", "2026-01-08T09:00:00.000Z", at)).toBe("warm");
    expect(classifyOrigin([], "k", "2026-01-08T09:00:00.000Z", at)).toBe("substituted");
    expect(classifyOrigin([], "k", "2026-01-01T10:00:00.000Z", at)).toBe("substituted");
    expect(classifyOrigin([], "k", "2026-01-01T09:59:59.000Z", at)).toBe("cold");
    expect(classifyOrigin(["other"], "k", undefined, at)).toBe("cold");
  });
});
