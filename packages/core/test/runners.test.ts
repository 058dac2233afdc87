import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { RunnerScope } from "../src/github-api";
import { createGitHubClient } from "../src/github-api/client";
import { MintingBudget, runnersFor } from "../src/github-api/runners";
import { acceptHeartbeat, type HeartbeatDeps } from "../src/heartbeat";
import { createInstanceRegistry, type Heartbeat, type InstanceRegistry } from "../src/instances";
import type { Job } from "../src/jobs";
import { createJournal, type Journal } from "../src/journal";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import { type PoolConfig, poolConfigSchema } from "../src/pools";
import {
  createRetryHolds,
  createRetryRecords,
  holdState,
  type RetryDeps,
  retryAfterJobRecorded,
  retryHeld,
} from "../src/retries";
import {
  createRunnerRecords,
  gitlabSystemId,
  type RunnerConfigHandOverPort,
  type RunnerDeps,
  type RunnerRecords,
  retireInstanceRunners,
  retryRemovals,
  tendSlotRunners,
} from "../src/runners";
import { storePlacement } from "../src/stores/placement";
import { ensureTable, type Store } from "../src/table";
import { FakeGitHub } from "./support/fake-github";
import { heartbeat } from "./support/heartbeats";
import { jobEvent } from "./support/jobs";

/**
 * Runner identity's control-plane half (`runners/`): minting a GitHub just-in-time runner per free
 * slot, the hand-over, picking up, retiring, and deleting by recorded id, against the fake GitHub
 * built from GitHub's OpenAPI description (through Hearth's real client) and embedded DynamoDB.
 */

const scope: RunnerScope = { repository: "acme/widgets" };
const instanceId = "i-0123456789abcdef0";

const pool = (overrides: Record<string, unknown> = {}): PoolConfig =>
  poolConfigSchema.parse({
    name: "x86",
    labels: ["nix", "x86_64-linux"],
    architecture: "x86_64",
    instanceTypes: ["c6a.xlarge"],
    slotsPerInstance: 2,
    github: scope,
    ...overrides,
  });

/** The fleet's hand-over, as the contract gives it: one parameter per runner, readable by its instance. */
class HandOver implements RunnerConfigHandOverPort {
  readonly parameters = new Map<string, { instanceId: string; value: string }>();
  failNext = false;
  async handRunnerConfig(handOver: {
    instanceId: string;
    slot: number;
    runnerId: number;
    encodedJitConfig: string;
  }) {
    if (this.failNext) {
      this.failNext = false;
      throw new Error("PutParameter failed: ThrottlingException");
    }
    const parameter = `/hearth/test/runners/${handOver.instanceId}/${handOver.slot}-${handOver.runnerId}`;
    if (this.parameters.has(parameter)) throw new Error(`ParameterAlreadyExists: ${parameter}`);
    this.parameters.set(parameter, { instanceId: handOver.instanceId, value: handOver.encodedJitConfig });
    return { parameter, calls: [`PutParameter(name=${parameter}, type=SecureString)`] };
  }
  async withdrawRunnerConfig(parameter: string) {
    this.parameters.delete(parameter);
    return [`DeleteParameter(name=${parameter})`];
  }
}

/** GitLab's managers API as the control plane uses it, stateful. */
class Managers {
  readonly managers = new Set<string>();
  failing = false;
  readonly deleted: Array<{ token: string; systemId: string }> = [];
  async deleteManager(token: string, systemId: string): Promise<"deleted" | "already-gone"> {
    if (this.failing) throw new Error("DELETE /runners/managers answered 502");
    this.deleted.push({ token, systemId });
    return this.managers.delete(systemId) ? "deleted" : "already-gone";
  }
  async runnerId(): Promise<number> {
    return 812;
  }
}

let embedded: EmbeddedDynamo | undefined;
beforeAll(async () => {
  embedded = await startEmbeddedDynamo();
});
afterAll(async () => {
  await embedded?.close();
});

let github: FakeGitHub;
let clock: number;
let handOver: HandOver;
let managers: Managers;
let records: RunnerRecords;
let journal: Journal;
let registry: InstanceRegistry;
let deps: RunnerDeps;
let authFailures: string[];
let storeOf: () => { client: ReturnType<typeof localDynamoClients>["documents"]; tableName: string };

beforeEach(async () => {
  clock = Date.parse("2026-12-01T10:00:00Z");
  github = await new FakeGitHub({ now: () => clock }).start();
  github.install("acme");
  const { client, documents } = localDynamoClients(embedded?.endpoint ?? "");
  const tableName = `runners-${randomUUID()}`;
  await ensureTable(client, tableName);
  const store = { client: documents, tableName, now: () => new Date(clock) };
  storeOf = () => store;
  records = createRunnerRecords(store);
  journal = createJournal(store);
  registry = createInstanceRegistry(store);
  handOver = new HandOver();
  managers = new Managers();
  authFailures = [];
  const githubClient = createGitHubClient({
    credentials: { kind: "app", appId: github.appId, privateKey: github.privateKey },
    baseUrl: github.baseUrl,
    retryAfterBaseMs: 1,
    writeSpacingMs: 0,
    now: () => clock,
  });
  const budget = new MintingBudget({ now: () => clock });
  deps = {
    records,
    fleet: handOver,
    github: (s) => runnersFor(githubClient, s, budget),
    gitlab: { managers, tokenOf: (name) => (name === "x86" ? "glrt-pool-token-secret" : undefined) },
    journal,
    now: () => new Date(clock),
    authFailed: (error, name) => authFailures.push(`${name}: ${error.message}`),
  };
});

afterEach(async () => {
  await github.stop();
  expect(github.violations).toEqual([]);
});

const instance = { id: instanceId, slots: 2 };
const registered = () => github.runnersOf("acme/widgets");

/** Every journal entry, record and instruction as text: no JIT config may be in any of them. */
async function everythingKept(configs: unknown): Promise<string> {
  return JSON.stringify([await journal.latest(200), await records.ofInstance(instanceId), configs]);
}

describe("a slot's GitHub runner", () => {
  it("is minted for each free slot, recorded, and handed over where only its instance reads it", async () => {
    const result = await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });

    expect(registered().map((r) => [r.name, r.labels])).toEqual([
      [`hearth-${instanceId}-0`, ["nix", "x86_64-linux", "self-hosted", "x64"]],
      [`hearth-${instanceId}-1`, ["nix", "x86_64-linux", "self-hosted", "x64"]],
    ]);
    const ids = registered().map((r) => r.id);
    expect(result.configs).toEqual([
      { slot: 0, runnerId: ids[0], name: `hearth-${instanceId}-0`, parameter: expect.any(String) },
      { slot: 1, runnerId: ids[1], name: `hearth-${instanceId}-1`, parameter: expect.any(String) },
    ]);
    // The parameter holds exactly the config GitHub gave, for this instance.
    for (const [index, config] of result.configs.entries()) {
      expect(handOver.parameters.get(config.parameter)).toEqual({
        instanceId,
        value: registered()[index]?.encodedJitConfig,
      });
    }
    expect((await records.ofInstance(instanceId)).map((r) => [r.slot, r.runnerId, r.state])).toEqual([
      [0, ids[0], "handed"],
      [1, ids[1], "handed"],
    ]);
    const kept = await everythingKept(result.configs);
    for (const runner of registered()) expect(kept).not.toContain(runner.encodedJitConfig);
  });

  it("is minted once per slot, however many heartbeats ask at once", async () => {
    const results = await Promise.all(
      Array.from({ length: 4 }, () =>
        tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true }),
      ),
    );
    expect(registered()).toHaveLength(2);
    expect(results.reduce((sum, r) => sum + r.minted, 0)).toBe(2);
    // A later heartbeat is told the same configs again until they are picked up.
    const again = await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });
    expect(again.minted).toBe(0);
    expect(again.configs.map((c) => c.runnerId)).toEqual(registered().map((r) => r.id));
  });

  it("is withdrawn once picked up, follows its job, and is replaced by a new runner after it", async () => {
    const first = await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });
    const [zero, one] = first.configs as [(typeof first.configs)[0], (typeof first.configs)[0]];
    const listening = await tendSlotRunners(deps, {
      instance,
      pool: pool(),
      reported: [
        { slot: 0, runnerId: zero.runnerId, state: "listening" },
        { slot: 1, runnerId: one.runnerId, state: "running", job: { source: "github", id: "77" } },
      ],
      mayMint: true,
    });
    // Consumed: nothing left to pick up, and the parameters are gone.
    expect(listening.configs).toEqual([]);
    expect([...handOver.parameters.keys()]).toEqual([]);
    expect((await records.ofInstance(instanceId)).map((r) => [r.state, r.job])).toEqual([
      ["listening", null],
      ["running", { source: "github", id: "77" }],
    ]);

    // Slot 1's runner served its job: it is deleted by its id, and the slot gets a new runner.
    const after = await tendSlotRunners(deps, {
      instance,
      pool: pool(),
      reported: [
        { slot: 0, runnerId: zero.runnerId, state: "listening" },
        { slot: 1, runnerId: one.runnerId, state: "exited" },
      ],
      mayMint: true,
    });
    expect(after.retired).toBe(1);
    const ids = registered().map((r) => r.id);
    expect(ids).toContain(zero.runnerId);
    expect(ids).not.toContain(one.runnerId);
    expect(after.configs.map((c) => c.slot)).toEqual([1]);
    expect(after.configs[0]?.runnerId).not.toBe(one.runnerId);
  });

  it("of another instance is never touched by what an instance reports, nor handed to it", async () => {
    const mine = await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });
    const other = { id: "i-0fedcba9876543210", slots: 2 };
    // Another instance claims this one's runners exited, and asks: it gets only configs of its own.
    const answer = await tendSlotRunners(deps, {
      instance: other,
      pool: pool(),
      reported: mine.configs.map((config) => ({
        slot: config.slot,
        runnerId: config.runnerId,
        state: "exited" as const,
      })),
      mayMint: true,
    });
    expect(answer.retired).toBe(0);
    expect(answer.configs.every((config) => config.name.startsWith(`hearth-${other.id}-`))).toBe(true);
    expect(answer.configs.map((c) => c.parameter)).not.toContain(mine.configs[0]?.parameter);
    expect((await records.ofInstance(instanceId)).map((r) => [r.runnerId, r.state])).toEqual(
      mine.configs.map((config) => [config.runnerId, "handed"]),
    );
    for (const config of mine.configs) expect(registered().map((r) => r.id)).toContain(config.runnerId);
  });

  it("is not minted while the instance drains, nor for a pool that registers no GitHub runner", async () => {
    await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: false });
    await tendSlotRunners(deps, { instance, pool: pool({ github: undefined }), reported: [], mayMint: true });
    expect(registered()).toEqual([]);
  });

  it("that its agent no longer reports, or never picked up, is retired and the slot minted again", async () => {
    const first = await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });
    const [zero, one] = first.configs.map((c) => c.runnerId);
    // Slot 0 picked up; slot 1's config lies unclaimed.
    await tendSlotRunners(deps, {
      instance,
      pool: pool(),
      reported: [{ slot: 0, runnerId: zero as number, state: "listening" }],
      mayMint: true,
    });
    clock += 11 * 60_000;
    // The agent restarted: it holds no runner any more.
    const later = await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });
    expect(later.retired).toBe(2);
    const ids = registered().map((r) => r.id);
    expect(ids).not.toContain(zero);
    expect(ids).not.toContain(one);
    expect(later.configs.map((c) => c.slot)).toEqual([0, 1]);
  });

  it("whose hand-over fails is deleted again, not left registered", async () => {
    handOver.failNext = true;
    const result = await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });
    // Slot 0's hand-over failed: its runner is gone; slot 1 was minted and handed.
    expect(result.configs.map((c) => c.slot)).toEqual([1]);
    expect(registered().map((r) => r.name)).toEqual([`hearth-${instanceId}-1`]);
    const errors = (await journal.latest(20)).filter((e) => e.kind === "error");
    expect(errors[0]?.reason).toMatch(/slot 0.*PutParameter failed/);
  });
});

describe("when GitHub refuses", () => {
  it("a revoked App key is journaled and counted, and nothing is left half-minted", async () => {
    github.revokeAppKey();
    const result = await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });
    expect(result.configs).toEqual([]);
    expect(authFailures).toHaveLength(1);
    expect(authFailures[0]).toMatch(/^x86: /);
    expect(await records.ofInstance(instanceId)).toEqual([]);
    const errors = (await journal.latest(20)).filter((e) => e.kind === "error");
    expect(errors).toHaveLength(1);
    const kept = JSON.stringify(errors);
    expect(kept).not.toContain(github.privateKey.slice(40, 80));
  });
});

describe("an instance leaving service", () => {
  it("stopped: its runners are deleted by id and their configs withdrawn; its GitLab manager stays", async () => {
    await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });
    managers.managers.add(gitlabSystemId(instanceId));
    const done = await retireInstanceRunners(deps, { instanceId, pool: "x86", how: "stopped" });
    expect(done.retired).toBe(2);
    expect(registered()).toEqual([]);
    expect(handOver.parameters.size).toBe(0);
    expect(await records.ofInstance(instanceId)).toEqual([]);
    expect(managers.deleted).toEqual([]);
  });

  it("terminated: its GitLab manager is deleted with the pool's token and its system_id", async () => {
    managers.managers.add(gitlabSystemId(instanceId));
    await retireInstanceRunners(deps, { instanceId, pool: "x86", how: "terminated" });
    expect(managers.deleted).toEqual([
      { token: "glrt-pool-token-secret", systemId: gitlabSystemId(instanceId) },
    ]);
    expect(managers.managers.size).toBe(0);
    const kept = JSON.stringify(await journal.latest(20));
    expect(kept).toContain(gitlabSystemId(instanceId));
    expect(kept).not.toContain("glrt-pool-token-secret");
  });

  it("a busy runner is owed, and deleted once its job is done", async () => {
    const first = await tendSlotRunners(deps, { instance, pool: pool(), reported: [], mayMint: true });
    const busy = first.configs[0]?.runnerId as number;
    github.markBusy("acme/widgets", busy);
    await retireInstanceRunners(deps, { instanceId, pool: "x86", how: "terminated" });
    expect(registered().map((r) => r.id)).toEqual([busy]);
    expect((await records.removals()).map((r) => [r.forge, r.instanceId, r.lastError])).toEqual([
      ["github", instanceId, "busy with a job"],
    ]);

    // Not before its time; still busy at the first retry; deleted after.
    expect(await retryRemovals(deps, "x86")).toEqual({ done: 0, owed: 0 });
    clock += 61_000;
    expect(await retryRemovals(deps, "x86")).toEqual({ done: 0, owed: 1 });
    github.markBusy("acme/widgets", busy, false);
    clock += 121_000;
    expect(await retryRemovals(deps, "x86")).toEqual({ done: 1, owed: 0 });
    expect(registered()).toEqual([]);
    expect(await records.removals()).toEqual([]);
  });

  it("a manager GitLab could not delete is owed and retried", async () => {
    managers.failing = true;
    await retireInstanceRunners(deps, { instanceId, pool: "x86", how: "terminated" });
    expect((await records.removals()).map((r) => r.forge)).toEqual(["gitlab"]);
    managers.failing = false;
    clock += 61_000;
    expect(await retryRemovals(deps, "x86")).toEqual({ done: 1, owed: 0 });
    expect(managers.deleted.map((d) => d.systemId)).toEqual([gitlabSystemId(instanceId)]);
  });
});

describe("the heartbeat's answer", () => {
  const beat = (overrides: Partial<Heartbeat> = {}): Heartbeat => heartbeat(instanceId, overrides);

  function heartbeatDeps(market: "spot" | "on-demand" = "on-demand"): HeartbeatDeps {
    return {
      registry,
      ledger: createLedger(storeOf() as never),
      journal,
      fleet: {
        lookup: async (id) =>
          id === instanceId
            ? {
                id,
                pool: "x86",
                group: market === "spot" ? "burst" : "warm",
                market,
                az: "us-east-1a",
                lifecycle: "in-service",
                launchedAt: new Date(clock).toISOString(),
                protectedFromScaleIn: true,
                instanceType: "c6a.xlarge",
              }
            : undefined,
      } as HeartbeatDeps["fleet"],
      pools: [pool()],
      runners: deps,
    };
  }

  it("holds a version-3 agent whose store placement keeps quiet: no runner minted, no config, until a job is its to take", async () => {
    const ledger = createLedger(storeOf() as never);
    const placed = (): HeartbeatDeps => ({
      ...heartbeatDeps(),
      ledger,
      placement: storePlacement({ ledger, registry, pools: [pool()], now: () => new Date(clock) }),
    });
    // Nothing queued: no store listens.
    const idle = await acceptHeartbeat(placed(), instanceId, beat({ protocol: 3, slotRunners: [] }));
    expect(idle).toMatchObject({ protocol: 3, instructions: { hold: true, runnerConfigs: [] } });
    expect(registered()).toEqual([]);
    // A job of the pool is queued and this is its only store: it listens, and its slots get runners.
    await ledger.record(jobEvent({ queuedAt: new Date(clock).toISOString() }));
    clock += 15_000;
    const placedHere = await acceptHeartbeat(placed(), instanceId, beat({ protocol: 3, slotRunners: [] }));
    expect(placedHere).toMatchObject({ instructions: { hold: false } });
    expect(placedHere.kind === "accepted" && placedHere.instructions?.runnerConfigs.length).toBe(2);
    expect(registered()).toHaveLength(2);
  });

  it("does not place a version-2 agent, which cannot hold its slots", async () => {
    const ledger = createLedger(storeOf() as never);
    const placed: HeartbeatDeps = {
      ...heartbeatDeps(),
      ledger,
      placement: storePlacement({ ledger, registry, pools: [pool()], now: () => new Date(clock) }),
    };
    const answer = await acceptHeartbeat(placed, instanceId, beat({ protocol: 2, slotRunners: [] }));
    expect(answer.kind === "accepted" && answer.instructions).not.toHaveProperty("hold");
    expect(registered()).toHaveLength(2);
  });

  it("gives a version-0 agent no instructions and mints nothing for it", async () => {
    const result = await acceptHeartbeat(heartbeatDeps(), instanceId, beat());
    expect(result).toMatchObject({ kind: "accepted", protocol: 0, instructions: null });
    expect(registered()).toEqual([]);
  });

  it("tells a version-1 agent where its slots' configs are, and to drain once warned", async () => {
    const answer = await acceptHeartbeat(heartbeatDeps(), instanceId, beat({ protocol: 1, slotRunners: [] }));
    expect(answer.kind).toBe("accepted");
    if (answer.kind !== "accepted") return;
    expect(answer.protocol).toBe(1);
    expect(answer.instructions?.drain).toBe(false);
    expect(answer.instructions?.runnerConfigs.map((c) => c.slot)).toEqual([0, 1]);

    const warned = await acceptHeartbeat(
      heartbeatDeps(),
      instanceId,
      beat({
        protocol: 1,
        interruption: { action: "terminate", time: new Date(clock + 120_000).toISOString() },
      }),
    );
    expect(warned).toMatchObject({ kind: "accepted", instructions: { drain: true } });
  });

  it("tells a version-2 agent to release once marked, mints nothing, and hands no config then", async () => {
    const first = await acceptHeartbeat(heartbeatDeps(), instanceId, beat({ protocol: 2, slotRunners: [] }));
    expect(first).toMatchObject({ kind: "accepted", protocol: 2, instructions: { release: false } });
    // Both slots got a runner; the agent has not picked the configs up yet.
    expect(registered()).toHaveLength(2);
    const marked = await registry.markReleasing(instanceId, () => true);
    expect(marked?.releasing).toMatchObject({ confirmedAt: null, releasedAt: null });
    const before = registered();
    // Still claiming (it had not heard yet): the answer withholds the configs it has not picked up.
    const asked = await acceptHeartbeat(heartbeatDeps(), instanceId, beat({ protocol: 2, slotRunners: [] }));
    expect(asked).toMatchObject({ instructions: { release: true, runnerConfigs: [] } });
    expect((await registry.get(instanceId))?.releasing?.confirmedAt).toBeNull();
    // The agent stopped slot 0's runner (it had picked it up): retired, and no runner minted instead.
    const [slot0] = first.kind === "accepted" ? (first.instructions?.runnerConfigs ?? []) : [];
    const confirmed = await acceptHeartbeat(
      heartbeatDeps(),
      instanceId,
      beat({
        protocol: 2,
        slotRunners: [{ slot: 0, runnerId: slot0?.runnerId ?? 0, state: "exited" }],
        claiming: false,
      }),
    );
    expect(confirmed).toMatchObject({ instructions: { release: true, runnerConfigs: [] } });
    expect((await registry.get(instanceId))?.releasing?.confirmedAt).toBe(new Date(clock).toISOString());
    expect(registered()).toHaveLength(before.length - 1);
  });

  it("takes the mark away when the instance reports a job, and mints again", async () => {
    await acceptHeartbeat(heartbeatDeps(), instanceId, beat({ protocol: 2, slotRunners: [] }));
    await registry.markReleasing(instanceId, () => true);
    const busy = await acceptHeartbeat(
      heartbeatDeps(),
      instanceId,
      beat({ protocol: 2, runner: "busy", runningJobs: [{ source: "gitlab", id: "9" }], claiming: false }),
    );
    expect(busy).toMatchObject({ instructions: { release: false } });
    expect((await registry.get(instanceId))?.releasing).toBeNull();
  });

  it("says nothing of a release to a version-1 agent", async () => {
    await acceptHeartbeat(heartbeatDeps(), instanceId, beat({ protocol: 1, slotRunners: [] }));
    await registry.markReleasing(instanceId, () => true);
    const answer = await acceptHeartbeat(heartbeatDeps(), instanceId, beat({ protocol: 1, slotRunners: [] }));
    expect(answer.kind === "accepted" && answer.instructions).not.toHaveProperty("release");
  });

  it("answers a newer agent in this control plane's version", async () => {
    const answer = await acceptHeartbeat(heartbeatDeps(), instanceId, beat({ protocol: 7, slotRunners: [] }));
    expect(answer).toMatchObject({ kind: "accepted", protocol: 3 });
  });

  describe("while the pool holds its spot runners for a retry", () => {
    /** Retries over the same table, with GitLab's retry call kept: the forge's boundary. */
    function held() {
      const store = storeOf() as unknown as Store;
      const asked: string[] = [];
      const retries: RetryDeps = {
        ledger: createLedger(store),
        registry,
        journal,
        records: createRetryRecords(store),
        holds: createRetryHolds(store),
        // One retry per job: the first is the last, and held.
        pools: [{ ...pool(), retryInterrupted: 1 }],
        forges: {
          gitlab: {
            retryJob: async (_project, job) => {
              asked.push(job);
              return { id: "9000", status: "pending" };
            },
          },
        },
        now: () => new Date(clock),
      };
      const hold = {
        state: (p: string) => holdState(retries, p),
        retryPending: (p: string) => retryHeld(retries, p),
      };
      const failed = async () => {
        const { job } = await retries.ledger.record(
          jobEvent({
            source: "gitlab",
            id: "77",
            projectId: "5",
            status: "completed",
            conclusion: "failure",
            finishedAt: new Date(clock).toISOString(),
            interruption: { at: new Date(clock).toISOString(), instanceId: "i-0fedcba9876543210" },
          }),
        );
        return retryAfterJobRecorded(retries, job as Job);
      };
      return { retries, hold, asked, failed };
    }

    it("answers a spot agent of version 3 hold, mints it nothing, and asks the retry once it stopped claiming", async () => {
      const { hold, asked, failed } = held();
      const spotDeps = (): HeartbeatDeps => ({ ...heartbeatDeps("spot"), hold });
      const first = await acceptHeartbeat(spotDeps(), instanceId, beat({ protocol: 3, slotRunners: [] }));
      expect(first).toMatchObject({ protocol: 3, instructions: { hold: false } });
      expect(registered()).toHaveLength(2);
      expect(await failed()).toEqual({ kind: "held", pool: "x86" });
      // Held: no config handed, no runner minted for the slot it gives back, nothing asked yet.
      const [slot0] = first.kind === "accepted" ? (first.instructions?.runnerConfigs ?? []) : [];
      clock += 5_000;
      const asked1 = await acceptHeartbeat(
        spotDeps(),
        instanceId,
        beat({ protocol: 3, slotRunners: [{ slot: 0, runnerId: slot0?.runnerId ?? 0, state: "exited" }] }),
      );
      expect(asked1).toMatchObject({ instructions: { hold: true, runnerConfigs: [] } });
      expect(registered()).toHaveLength(1);
      expect(asked).toEqual([]);
      // It stopped claiming: the trigger after its beat finds the gate open and asks the retry.
      clock += 5_000;
      const confirmed = await acceptHeartbeat(
        spotDeps(),
        instanceId,
        beat({ protocol: 3, slotRunners: [], claiming: false }),
      );
      expect(confirmed).toMatchObject({ instructions: { hold: true, runnerConfigs: [] } });
      expect(asked).toEqual(["77"]);
      expect(registered()).toHaveLength(1);
    });

    it("says nothing of the hold to a version-2 agent, but mints it nothing; an on-demand agent is not held", async () => {
      const { hold, failed } = held();
      const spotDeps = (): HeartbeatDeps => ({ ...heartbeatDeps("spot"), hold });
      await acceptHeartbeat(spotDeps(), instanceId, beat({ protocol: 2, slotRunners: [] }));
      expect(registered()).toHaveLength(2);
      expect(await failed()).toEqual({ kind: "held", pool: "x86" });
      // The slot its agent gave back (its runner exited) gets no new runner while the pool holds.
      clock += 5_000;
      const old = await acceptHeartbeat(
        spotDeps(),
        instanceId,
        beat({
          protocol: 2,
          slotRunners: [{ slot: 0, runnerId: registered()[0]?.id ?? 0, state: "exited" }],
        }),
      );
      expect(old).toMatchObject({ protocol: 2, instructions: { runnerConfigs: [] } });
      expect(old.kind === "accepted" && old.instructions).not.toHaveProperty("hold");
      expect(registered()).toHaveLength(1);
      await registry.forget(instanceId);
      const onDemand = await acceptHeartbeat(
        { ...heartbeatDeps("on-demand"), hold },
        instanceId,
        beat({ protocol: 3, slotRunners: [] }),
      );
      expect(onDemand).toMatchObject({ instructions: { hold: false } });
      // Slot 0 gets its runner again (slot 1 still holds the one handed before).
      expect(registered()).toHaveLength(2);
    });
  });

  it("refuses a heartbeat that reports a slot twice, and records nothing of it", async () => {
    const answer = await acceptHeartbeat(
      heartbeatDeps(),
      instanceId,
      beat({
        protocol: 1,
        slotRunners: [
          { slot: 0, runnerId: 5, state: "listening" },
          { slot: 0, runnerId: 6, state: "listening" },
        ],
      }),
    );
    expect(answer).toMatchObject({ kind: "rejected", code: "invalid_heartbeat" });
    expect(await registry.get(instanceId)).toBeUndefined();
  });
});
