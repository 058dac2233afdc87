import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FakeClock } from "../src/clock";
import { createInstanceRegistry, type Heartbeat, type InstanceRegistry } from "../src/instances";
import {
  type Claimed,
  claimInterruption,
  createInterruptionRecords,
  type DrainProgress,
  drainInterrupted,
  type InterruptionDeps,
  type InterruptionNotice,
  interruptionEvent,
  parseInterruptionEvents,
  REBALANCE_DETAIL_TYPE,
  settleInterrupted,
  WARNING_DETAIL_TYPE,
} from "../src/interruptions";
import { createJournal, type Journal } from "../src/journal";
import { createLeases } from "../src/leases";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { type PoolConfig, poolConfigSchema } from "../src/pools";
import { createRunnerRecords, type RunnerDeps, type RunnerRecords } from "../src/runners";
import { createScalingRecords } from "../src/scaling";
import { SimulatedFleet } from "../src/simulation/fleet";
import { ensureTable } from "../src/table";
import { heartbeat } from "./support/heartbeats";

/**
 * HandleInterruption's steps over real parts: the table in embedded DynamoDB and the simulated fleet
 * (which detaches and replaces as Auto Scaling does; the AWS driver's side is the fleet contract
 * suite and the workflow test in packages/functions).
 */

const pool: PoolConfig = poolConfigSchema.parse({
  name: "x86",
  labels: ["nix"],
  architecture: "x86_64",
  instanceTypes: ["c6a.xlarge"],
  warm: { market: "on-demand" },
});

const event = (kind: "warning" | "rebalance", instanceId: string, time: string) =>
  interruptionEvent({ kind, instanceId, time, id: randomUUID(), account: "123456789012" });

describe("spot events in EventBridge's shapes", () => {
  const id = "i-0123456789abcdef0";
  it("read a warning (deadline two minutes after its time) and a rebalance recommendation, one or a list", () => {
    const [warning] = parseInterruptionEvents(event("warning", id, "2026-12-01T10:00:00Z"));
    expect(warning).toEqual({
      kind: "warning",
      instanceId: id,
      action: "terminate",
      at: "2026-12-01T10:00:00.000Z",
      deadline: "2026-12-01T10:02:00.000Z",
      source: "eventbridge",
    });
    const both = parseInterruptionEvents([
      event("rebalance", id, "2026-12-01T09:59:00Z"),
      event("warning", id, "2026-12-01T10:00:00Z"),
    ]);
    expect(both.map((n) => [n.kind, n.deadline])).toEqual([
      ["rebalance", null],
      ["warning", "2026-12-01T10:02:00.000Z"],
    ]);
  });

  it("refuse other detail-types, sources, bad ids and lists, naming the problem", () => {
    const good = event("warning", id, "2026-12-01T10:00:00Z");
    const refused = (body: unknown) => () => parseInterruptionEvents(body);
    expect(refused({ ...good, "detail-type": "EC2 Instance State-change Notification" })).toThrow(
      /detail-type "EC2 Instance State-change Notification" is not one Hearth handles/,
    );
    expect(refused({ ...good, source: "aws.s3" })).toThrow(/source/);
    expect(refused({ ...good, detail: { "instance-id": "i-xyz", "instance-action": "terminate" } })).toThrow(
      /detail.instance-id: not an EC2 instance id/,
    );
    expect(refused({ ...good, detail: { "instance-id": id, "instance-action": "explode" } })).toThrow(
      /instance-action/,
    );
    expect(
      refused({ ...good, resources: ["arn:aws:ec2:us-east-1:123456789012:instance/i-0000000000000beef"] }),
    ).toThrow(/resources do not name instance/);
    expect(refused([good, { ...good, time: "yesterday" }])).toThrow(/event 1 at time/);
    expect(refused([])).toThrow(/no event/);
    expect(refused(Array.from({ length: 101 }, () => good))).toThrow(/at most 100 events/);
    expect(refused("warning")).toThrow(/the event at \(root\)/);
    expect(good["detail-type"]).toBe(WARNING_DETAIL_TYPE);
    expect(event("rebalance", id, good.time)["detail-type"]).toBe(REBALANCE_DETAIL_TYPE);
  });
});

describe("HandleInterruption's steps", () => {
  let embedded: EmbeddedDynamo | undefined;
  beforeAll(async () => {
    embedded = await startEmbeddedDynamo();
  });
  afterAll(async () => {
    await embedded?.close();
  });

  let clock: FakeClock;
  let fleet: SimulatedFleet;
  let registry: InstanceRegistry;
  let journal: Journal;
  let deps: InterruptionDeps;
  let runnerRecords: RunnerRecords;
  let started: string[];
  let marked: Array<{ instanceId: string; pool: string }>;
  let spot: [string, string];
  let warm: string;
  const now = () => new Date(clock.now());

  beforeEach(async () => {
    clock = new FakeClock(Date.parse("2026-12-01T10:00:00Z"));
    fleet = new SimulatedFleet({ pools: [pool], clock, seed: 1 });
    const { client, documents } = localDynamoClients(embedded?.endpoint ?? "");
    const tableName = `interruptions-${randomUUID()}`;
    await ensureTable(client, tableName);
    const store = { client: documents, tableName, now };
    registry = createInstanceRegistry(store);
    journal = createJournal(store);
    runnerRecords = createRunnerRecords(store);
    started = [];
    marked = [];
    const runners: RunnerDeps = {
      records: runnerRecords,
      fleet,
      github: undefined,
      gitlab: undefined,
      journal,
      now,
    };
    deps = {
      pools: [pool],
      registry,
      records: createInterruptionRecords(store),
      fleet,
      journal,
      leases: createLeases(store),
      scalingRecords: createScalingRecords(store),
      runners,
      startScaleFleet: async (p) => {
        started.push(p);
      },
      holder: () => randomUUID(),
      onJobsInterrupted: async (input) => {
        marked.push({ instanceId: input.instanceId, pool: input.pool });
      },
      now,
    };
    await fleet.setCapacity(pool, { warm: 1, burst: 2, warmPoolSize: 0 });
    await clock.advance(pool.boot.coldSeconds * 1000);
    const seen = await fleet.observe(pool);
    for (const instance of seen.instances) await registry.register({ ...instance, slots: 2 });
    spot = seen.instances.filter((i) => i.group === "burst").map((i) => i.id) as [string, string];
    warm = seen.instances.find((i) => i.group === "warm")?.id as string;
  });

  const notice = (kind: "warning" | "rebalance", instanceId = spot[0]): InterruptionNotice =>
    parseInterruptionEvents(event(kind, instanceId, now().toISOString()))[0] as InterruptionNotice;

  /** Claim, and Drain if claimed: what an execution does before it waits. */
  async function begin(n: InterruptionNotice): Promise<{ claimed: Claimed; progress?: DrainProgress }> {
    const claimed = await claimInterruption(deps, n);
    if (!claimed.handled) return { claimed };
    return { claimed, progress: await drainInterrupted(deps, n, claimed) };
  }

  const beat = heartbeat;
  const detaches = () => fleet.callLog.filter((call) => call.startsWith("DetachInstances"));
  const burstInService = async () =>
    (await fleet.observe(pool)).instances.filter((i) => i.group === "burst").map((i) => i.id);

  it("a warning drains, marks the jobs, detaches, replaces once, asks for a run and retires idle runners", async () => {
    const [atRisk] = spot;
    await runnerRecords.put({
      instanceId: atRisk,
      slot: 0,
      pool: pool.name,
      name: `hearth-${atRisk}-0`,
      scope: { repository: "acme/app" },
      runnerId: 11,
      state: "listening",
      parameter: null,
      job: null,
      since: now().toISOString(),
    });
    await runnerRecords.put({
      instanceId: atRisk,
      slot: 1,
      pool: pool.name,
      name: `hearth-${atRisk}-1`,
      scope: { repository: "acme/app" },
      runnerId: 12,
      state: "running",
      parameter: null,
      job: { source: "github", id: "7" },
      since: now().toISOString(),
    });
    // EC2 reclaims the instance two minutes after its warning.
    await fleet.interrupt(atRisk);
    const { claimed, progress } = await begin(notice("warning"));
    expect(claimed).toMatchObject({ handled: true, pool: "x86", previous: null });
    expect((await registry.get(atRisk))?.interruption).toEqual({
      action: "terminate",
      time: new Date(clock.now() + 120_000).toISOString(),
    });
    expect(marked).toEqual([{ instanceId: atRisk, pool: "x86" }]);
    expect(detaches()).toHaveLength(1);
    // The group launched one replacement; the detached instance is in no group.
    const burst = await burstInService();
    expect(burst).toHaveLength(2);
    expect(burst).not.toContain(atRisk);
    expect(await fleet.lookup(atRisk)).toBeUndefined();
    expect(started).toEqual(["x86"]);
    // The idle slot's runner is retired now; the busy one stays until the instance is gone.
    expect((await runnerRecords.ofInstance(atRisk)).map((r) => r.slot)).toEqual([1]);
    expect(progress?.waitSeconds).toBe(120);
    const [entry] = await journal.latest(1);
    expect(entry).toMatchObject({ kind: "interruption", pool: "x86" });
    expect(entry?.calls).toEqual(expect.arrayContaining([expect.stringMatching(/^DetachInstances/)]));

    // Before the deadline it is still there; then EC2 reclaims it: Settle retires everything and forgets it.
    expect(await settleInterrupted(deps, notice("warning"), progress as DrainProgress)).toMatchObject({
      done: false,
      waitSeconds: 30,
    });
    await clock.advance(120_000);
    const settled = await settleInterrupted(deps, notice("warning"), progress as DrainProgress);
    expect(settled).toMatchObject({ done: true, outcome: "gone" });
    expect(await registry.get(atRisk)).toBeUndefined();
    expect(await runnerRecords.ofInstance(atRisk)).toEqual([]);
  });

  it("handles each notice once: duplicates and a late rebalance after the warning do nothing", async () => {
    await begin(notice("warning"));
    for (const again of [notice("warning"), notice("warning"), notice("rebalance"), notice("rebalance")]) {
      expect(await begin(again)).toEqual({
        claimed: expect.objectContaining({ handled: false, reason: "repeated" }),
      });
    }
    expect(detaches()).toHaveLength(1);
    expect(marked).toHaveLength(1);
    expect(started).toEqual(["x86"]);
    expect((await registry.get(spot[0]))?.interruption?.action).toBe("terminate");
  });

  it("a warning after a rebalance escalates: jobs marked and the deadline set, no second detach", async () => {
    const first = await begin(notice("rebalance"));
    expect(first.claimed.handled).toBe(true);
    expect(marked).toEqual([]);
    expect((await registry.get(spot[0]))?.interruption?.action).toBe("rebalance");
    const second = await begin(notice("warning"));
    expect(second.claimed).toMatchObject({ handled: true, previous: "rebalance" });
    expect(marked).toHaveLength(1);
    expect((await registry.get(spot[0]))?.interruption?.action).toBe("terminate");
    expect(detaches()).toHaveLength(1);
    expect(await burstInService()).toHaveLength(2);
    // The rebalance's own execution leaves the instance to the warning's.
    const settled = await settleInterrupted(deps, notice("rebalance"), first.progress as DrainProgress);
    expect(settled).toMatchObject({ done: true, outcome: "superseded" });
    expect(await fleet.exists(spot[0])).toBe(true);
  });

  it("ignores an instance that is not Hearth's, and an on-demand one, journaling each once", async () => {
    const foreign = "i-0000000000000beef";
    expect((await begin(notice("warning", foreign))).claimed).toMatchObject({
      handled: false,
      reason: "not-hearth",
    });
    expect((await begin(notice("warning", foreign))).claimed).toMatchObject({
      handled: false,
      reason: "repeated",
    });
    expect((await begin(notice("warning", warm))).claimed).toMatchObject({
      handled: false,
      reason: "on-demand",
      pool: "x86",
    });
    const entries = await journal.latest(10);
    expect(entries.map((e) => e.reason).sort()).toEqual(
      [
        `ignored a spot warning for ${foreign}: not a Hearth instance`,
        `ignored a spot warning for ${warm}: an on-demand instance (warm group)`,
      ].sort(),
    );
    expect(detaches()).toEqual([]);
    expect(started).toEqual([]);
    expect((await registry.get(warm))?.interruption).toBeNull();
  });

  it("a spot warm store (warm.market: spot) drains on its warning and stops, store kept; a rebalance is left alone", async () => {
    // The warm group is Hearth's own: nothing to detach from, and the instance stops, not terminates.
    const spotPool = poolConfigSchema.parse({ ...pool, warm: { market: "spot" } });
    deps.pools = [spotPool];
    deps.fleet = new Proxy(fleet, {
      get(target, name) {
        if (name === "detach") return async () => [];
        const value = Reflect.get(target, name);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const member = await fleet.lookup(warm);
    await registry.forget(warm);
    await registry.register({ ...(member as NonNullable<typeof member>), market: "spot", slots: 2 });
    await registry.heartbeat(warm, beat(warm, { cacheKeys: ["acme/app#build"] }));
    await runnerRecords.put({
      instanceId: warm,
      slot: 0,
      pool: pool.name,
      name: `hearth-${warm}-0`,
      scope: { repository: "acme/app" },
      runnerId: 21,
      state: "running",
      parameter: null,
      job: { source: "github", id: "8" },
      since: now().toISOString(),
    });

    expect((await begin(notice("rebalance", warm))).claimed).toMatchObject({
      handled: false,
      reason: "stops-on-interruption",
    });
    expect((await registry.get(warm))?.interruption).toBeNull();
    const { claimed, progress } = await begin(notice("warning", warm));
    expect(claimed).toMatchObject({ handled: true, pool: "x86" });
    expect(marked).toEqual([{ instanceId: warm, pool: "x86" }]);
    expect(started).toEqual(["x86"]);
    expect((await journal.latest(10)).map((entry) => entry.reason)).toContainEqual(
      expect.stringMatching(/drained, replacement requested; it stops, store kept/),
    );
    // Still running before its deadline.
    expect(await settleInterrupted(deps, notice("warning", warm), progress as DrainProgress)).toMatchObject({
      done: false,
    });
    // EC2 stops it (as a stop into the warm pool looks to the fleet port).
    await fleet.release(pool, [warm], async () => true);
    await fleet.setCapacity(pool, { warm: 0, burst: 2, warmPoolSize: 1 });
    await clock.advance(120_000);
    expect((await fleet.lookup(warm))?.lifecycle).toBe("stopped");
    const settled = await settleInterrupted(deps, notice("warning", warm), progress as DrainProgress);
    expect(settled).toMatchObject({ done: true, outcome: "stopped" });
    // Its record stays, with its store's keys; its runners are gone, as on any stop.
    expect((await registry.get(warm))?.cacheKeys).toEqual(["acme/app#build"]);
    expect(await runnerRecords.ofInstance(warm)).toEqual([]);
    expect(detaches()).toEqual([]);
    // A stop ends the notice: when the instance runs again, it is not draining.
    await registry.parked(warm);
    expect((await registry.get(warm))?.interruption).toBeNull();
    // A late duplicate of that warning is still one notice; EC2 starts the store again, and a
    // warning for that new run is handled in full.
    const late = parseInterruptionEvents(
      event("warning", warm, new Date(clock.now() - 200_000).toISOString()),
    )[0] as InterruptionNotice;
    expect((await begin(late)).claimed).toMatchObject({ handled: false, reason: "repeated" });
    await clock.advance(3_600_000);
    const again = await begin(notice("warning", warm));
    expect(again.claimed).toMatchObject({ handled: true, previous: null });
    expect(marked).toEqual([
      { instanceId: warm, pool: "x86" },
      { instanceId: warm, pool: "x86" },
    ]);
  });

  it("a rebalance never terminates a busy instance; once drained and idle it does", async () => {
    const [atRisk] = spot;
    const { progress } = await begin(notice("rebalance"));
    let state = progress as DrainProgress;
    const step = async (runningJobs: Heartbeat["runningJobs"]) => {
      await clock.advance(15_000);
      await registry.heartbeat(atRisk, beat(atRisk, { runningJobs }));
      await clock.advance(15_000);
      state = await settleInterrupted(deps, notice("rebalance"), state);
    };
    for (let i = 0; i < 6; i++) await step([{ source: "gitlab", id: "42" }]);
    expect(state).toMatchObject({ done: false, outcome: "waiting" });
    expect(await fleet.exists(atRisk)).toBe(true);
    // Idle: the first beat after the drain was answered "drain"; the next one confirms it.
    await step([]);
    expect(state.done).toBe(false);
    expect(await fleet.exists(atRisk)).toBe(true);
    await step([]);
    expect(state).toMatchObject({ done: true, outcome: "terminated" });
    expect(await fleet.exists(atRisk)).toBe(false);
    expect(await registry.get(atRisk)).toBeUndefined();
    expect(fleet.callLog.filter((c) => c.startsWith("TerminateInstances"))).toHaveLength(1);
  });

  it("gives up after the pool's job time limit and a grace, and says so", async () => {
    const { progress } = await begin(notice("rebalance"));
    await clock.advance((360 + 16) * 60_000);
    const state = await settleInterrupted(deps, notice("rebalance"), progress as DrainProgress);
    expect(state).toMatchObject({ done: true, outcome: "gave-up" });
    expect((await journal.latest(1))[0]?.reason).toMatch(/still there 376 minutes after its rebalance/);
    expect(await fleet.exists(spot[0])).toBe(true);
  });
});
