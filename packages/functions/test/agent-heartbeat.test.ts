import type { FakeClock } from "@hearth/core/clock";
import { acceptHeartbeat, instanceFromAssumedRoleArn } from "@hearth/core/heartbeat";
import { partialEvent } from "@hearth/core/jobs";
import type { SimulatedInstance } from "@hearth/core/simulation/fleet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import { startTestHearth } from "./support/local";

let hearth: LocalHearth;
let clock: FakeClock;
let instances: SimulatedInstance[];

beforeAll(async () => {
  ({ hearth, clock } = await startTestHearth({ initialWarmPool: 2 }));
  instances = hearth.simulation?.fleet.all() ?? [];
});
afterAll(() => hearth.close());

const beat = (instanceId: string, fields: Record<string, unknown> = {}) => ({
  instanceId,
  runner: "ready",
  slots: 2,
  runningJobs: [],
  cacheKeys: ["acme/app/build"],
  storeBytes: 1_000_000,
  interruption: null,
  ...fields,
});

async function post(body: unknown, token?: string) {
  const response = await fetch(`${hearth.url}/agent/heartbeat`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return {
    status: response.status,
    body: (await response.json()) as { error?: { code: string; message: string } },
  };
}

describe("POST /agent/heartbeat", () => {
  it("accepts an instance's own heartbeat and records it", async () => {
    const [instance] = instances;
    if (!instance) throw new Error("no instance");
    const running = { source: "github", id: "555" };
    const health = { freeDiskBytes: 2_000_000_000, pushQueueDepth: 4, pushLagSeconds: 5_400 };
    const result = await post(
      beat(instance.id, { runner: "busy", runningJobs: [running], ...health }),
      instance.token,
    );
    expect(result.status).toBe(200);
    const record = await hearth.registry.get(instance.id);
    expect(record).toMatchObject({
      runner: "busy",
      runningJobs: [running],
      cacheKeys: ["acme/app/build"],
      ...health,
    });
    // The tick sums up the pool's stores (what the alarms watch): this one is the worst.
    const summary = await hearth.tick();
    await hearth.idle();
    expect(summary.stores.find((stores) => stores.pool === instance.pool)).toMatchObject({
      pushLagSeconds: 5_400,
      freeDiskBytes: 2_000_000_000,
    });
    // The store's size and free disk reach the status page's instance card. The instance is one of
    // the warm pool's, stopped as the fleet sees it: its push lag, frozen while stopped, is not shown.
    const status = (await (await fetch(`${hearth.url}/api/status`)).json()) as {
      instances: {
        id: string;
        storeBytes: number | null;
        freeDiskBytes: number | null;
        pushLagSeconds: number | null;
      }[];
    };
    expect(status.instances.find((view) => view.id === instance.id)).toMatchObject({
      state: "stopped",
      storeBytes: 1_000_000,
      freeDiskBytes: 2_000_000_000,
      pushLagSeconds: null,
    });
    // The instance is the authority on what it runs: the ledger learns the job is running there.
    expect(await hearth.ledger.get({ source: "github", id: "555" })).toMatchObject({
      status: "running",
      instanceId: instance.id,
    });
  });

  it("refuses a caller without credentials with 401 before reading the body, and one speaking for another instance with 403", async () => {
    const [a, b] = instances;
    if (!a || !b) throw new Error("no instances");
    for (const token of [undefined, "forged-token"]) {
      const anonymous = await post(beat(a.id), token);
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.error?.code).toBe("unauthenticated");
      // A malformed body is not looked at: the schema's details are for instances only.
      const malformed = await post(beat(a.id, { slots: 0 }), token);
      expect(malformed.status).toBe(401);
      expect(malformed.body.error?.message).not.toContain("slots");
    }
    const other = await post(beat(b.id), a.token);
    expect(other.status).toBe(403);
    expect(other.body.error?.code).toBe("forbidden");
  });

  it("answers a malformed heartbeat with 400 and a reason", async () => {
    const [a] = instances;
    if (!a) throw new Error("no instance");
    expect((await post("{not json", a.token)).status).toBe(400);
    const invalid = await post(beat(a.id, { slots: 0 }), a.token);
    expect(invalid.status).toBe(400);
    expect(invalid.body.error?.message).toContain("slots");
    const badJob = await post(beat(a.id, { runningJobs: [{ source: "jenkins", id: "1" }] }), a.token);
    expect(badJob.status).toBe(400);
  });

  it("refuses an instance that is not part of the fleet (403)", async () => {
    const deps = {
      registry: hearth.registry,
      ledger: hearth.ledger,
      journal: hearth.journal,
      pools: hearth.pools,
      fleet: { lookup: async () => undefined },
    };
    const result = await acceptHeartbeat(deps, "i-0ffffffffffffffff", beat("i-0ffffffffffffffff"));
    expect(result).toMatchObject({ kind: "rejected", code: "unknown_instance" });
    // A domain result: the route, not core, says which HTTP status it is.
    expect(result).not.toHaveProperty("status");
    expect(await hearth.registry.get("i-0ffffffffffffffff")).toBeUndefined();
  });

  it("never counts more slots than the pool gives an instance", async () => {
    const [a] = instances;
    if (!a) throw new Error("no instance");
    expect((await post(beat(a.id, { slots: 64 }), a.token)).status).toBe(200);
    const pool = hearth.pools.find((p) => p.name === a.pool);
    expect((await hearth.registry.get(a.id))?.slots).toBe(pool?.slotsPerInstance);
  });

  it("lets an instance claim neither another instance's job nor a finished one", async () => {
    const [a, b] = instances;
    if (!a || !b) throw new Error("no instances");
    const theirs = { source: "gitlab", id: "9001" } as const;
    const done = { source: "gitlab", id: "9002" } as const;
    // `b` runs 9001; 9002 finished on `b`. Instance ids compare as strings: claim with the larger.
    const [low, high] = [a, b].sort((x, y) => x.id.localeCompare(y.id)) as [typeof a, typeof b];
    expect((await post(beat(low.id, { runner: "busy", runningJobs: [theirs] }), low.token)).status).toBe(200);
    await hearth.ledger.record(partialEvent(done, { status: "completed", conclusion: "success" }));
    const claim = await post(beat(high.id, { runner: "busy", runningJobs: [theirs, done] }), high.token);
    expect(claim.status).toBe(200);
    expect(await hearth.ledger.get(theirs)).toMatchObject({ status: "running", instanceId: low.id });
    expect(await hearth.ledger.get(done)).toMatchObject({ status: "completed", instanceId: null });
    await post(beat(low.id), low.token);
    await post(beat(high.id), high.token);
  });

  it("lets an instance claim a queued job only if the job's pool is its own", async () => {
    const x86 = instances.find((instance) => instance.pool === "x86_64");
    if (!x86) throw new Error("no x86_64 instance");
    const forArm = { source: "github", id: "9101" } as const;
    const forX86 = { source: "github", id: "9102" } as const;
    const queued = (labels: string[]) => ({ status: "queued" as const, labels, labelsKnown: true });
    await hearth.ledger.record(partialEvent(forArm, queued(["nix", "aarch64-linux"])));
    await hearth.ledger.record(partialEvent(forX86, queued(["nix", "x86_64-linux"])));
    const claim = await post(beat(x86.id, { runner: "busy", runningJobs: [forArm, forX86] }), x86.token);
    expect(claim.status).toBe(200);
    expect(await hearth.ledger.get(forArm)).toMatchObject({ status: "queued", instanceId: null });
    expect(await hearth.ledger.get(forX86)).toMatchObject({ status: "running", instanceId: x86.id });
    await post(beat(x86.id), x86.token);
  });

  it("journals a spot interruption notice once", async () => {
    const [, b] = instances;
    if (!b) throw new Error("no instance");
    const notice = { action: "terminate", time: new Date(clock.now() + 120_000).toISOString() };
    expect((await post(beat(b.id, { interruption: notice }), b.token)).status).toBe(200);
    expect((await post(beat(b.id, { interruption: notice }), b.token)).status).toBe(200);
    // The agent's report, once (HandleInterruption, which the report starts, journals what it does).
    const reports = (await hearth.journal.latest(20)).filter(
      (entry) => entry.kind === "interruption" && /got a spot terminate notice/.test(entry.reason),
    );
    expect(reports).toHaveLength(1);
    expect((await hearth.registry.get(b.id))?.runner).toBe("draining");
  });

  it("journals each runner the agent stopped while it ran a job once, with the instance, slot, runner and reason", async () => {
    const [a] = instances;
    if (!a) throw new Error("no instance");
    const at = new Date(clock.now()).toISOString();
    const stopped = [
      { slot: 1, runnerId: 30114, reason: "max-job-time", at },
      { slot: null, runnerId: 812, reason: "interruption-deadline", at },
    ];
    // Sent again when the agent did not get the first answer: journaled once all the same.
    for (let i = 0; i < 2; i++) {
      expect((await post(beat(a.id, { protocol: 1, stoppedRunners: stopped }), a.token)).status).toBe(200);
    }
    const entries = (await hearth.journal.latest(50)).filter(
      (entry) => entry.kind === "runner" && entry.details.instance === a.id,
    );
    expect(
      entries.map((entry) => entry.details).sort((x, y) => String(x.reason).localeCompare(String(y.reason))),
    ).toEqual([
      { instance: a.id, slot: null, runnerId: 812, reason: "interruption-deadline", at },
      { instance: a.id, slot: 1, runnerId: 30114, reason: "max-job-time", at },
    ]);
    expect(entries.map((entry) => entry.reason).sort()).toEqual([
      `${a.id} stopped gitlab-runner's jobs (runner 812): its job could not finish before the spot interruption's deadline`,
      `${a.id} stopped runner 30114 of slot 1: its job ran past the pool's maxJobMinutes`,
    ]);
    // A list that is not one is refused, and changes nothing.
    const refused = await post(
      beat(a.id, { protocol: 1, stoppedRunners: [{ slot: 1, runnerId: 1, reason: "bored", at }] }),
      a.token,
    );
    expect(refused.status).toBe(400);
  });
});

describe("an agent's spot notice", () => {
  it("starts HandleInterruption at its first report, and again only for a warning after a rebalance", async () => {
    // One no other test reports for.
    const instance = instances[2];
    if (!instance) throw new Error("no instance");
    const name = (kind: string) => `${instance.id}-${kind}`;
    const rebalance = { action: "rebalance", time: new Date(clock.now()).toISOString() };
    const warning = { action: "terminate", time: new Date(clock.now() + 120_000).toISOString() };
    expect((await post(beat(instance.id, { interruption: rebalance }), instance.token)).status).toBe(200);
    expect(hearth.handleInterruption.executions.filter((e) => e.startsWith(instance.id))).toEqual([
      name("rebalance"),
    ]);
    expect((await post(beat(instance.id, { interruption: rebalance }), instance.token)).status).toBe(200);
    expect((await post(beat(instance.id, { interruption: warning }), instance.token)).status).toBe(200);
    expect((await post(beat(instance.id, { interruption: warning }), instance.token)).status).toBe(200);
    expect(hearth.handleInterruption.executions.filter((e) => e.startsWith(instance.id))).toEqual([
      name("rebalance"),
      name("warning"),
    ]);
    // The record keeps the stronger notice: the warning, with its deadline.
    expect((await hearth.registry.get(instance.id))?.interruption).toEqual(warning);
  });
});

describe("the caller's instance from IAM", () => {
  it("is the session name of an EC2 instance profile's assumed role", () => {
    expect(
      instanceFromAssumedRoleArn(
        "arn:aws:sts::123456789012:assumed-role/hearth-production-runner/i-0abc123def4567890",
      ),
    ).toBe("i-0abc123def4567890");
    expect(
      instanceFromAssumedRoleArn("arn:aws-us-gov:sts::123456789012:assumed-role/runner/i-0abc123d"),
    ).toBe("i-0abc123d");
    expect(instanceFromAssumedRoleArn("arn:aws:iam::123456789012:user/alice")).toBeNull();
    expect(instanceFromAssumedRoleArn("arn:aws:sts::123456789012:assumed-role/runner/alice")).toBeNull();
    expect(instanceFromAssumedRoleArn(undefined)).toBeNull();
  });

  it("is nobody when the role is not in the fleet's account", () => {
    const arn = "arn:aws:sts::210987654321:assumed-role/attacker/i-0abc123def4567890";
    expect(instanceFromAssumedRoleArn(arn, "123456789012")).toBeNull();
    expect(instanceFromAssumedRoleArn(arn, "210987654321")).toBe("i-0abc123def4567890");
  });
});
