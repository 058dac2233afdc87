import { randomUUID } from "node:crypto";
import {
  AutoScalingClient,
  SetDesiredCapacityCommand,
  SetInstanceProtectionCommand,
} from "@aws-sdk/client-auto-scaling";
import { EC2Client } from "@aws-sdk/client-ec2";
import { SSMClient } from "@aws-sdk/client-ssm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { CapacityTarget, FleetPort } from "../src/fleet";
import { createAwsFleet } from "../src/fleet-aws";
import { createInstanceRegistry, type InstanceRegistry } from "../src/instances";
import type { Job } from "../src/jobs";
import { createJournal } from "../src/journal";
import { createLeases } from "../src/leases";
import { createLedger } from "../src/ledger";
import { type EmbeddedDynamo, localDynamoClients, startEmbeddedDynamo } from "../src/local";
import type { PoolPlan } from "../src/planner";
import {
  createRetryHolds,
  createRetryRecords,
  HOLD_MAX_SECONDS,
  holdState,
  type RetryDeps,
  retryAfterJobRecorded,
  retryHeld,
} from "../src/retries";
import { afterIteration, apply, createScalingRecords, observe, type ScalingDeps } from "../src/scaling";
import { ensureTable, type Store } from "../src/table";
import { FakeAws, installFakeAws, mockedClients } from "./support/auto-scaling-fake";
import {
  mutations as autoScalingMutations,
  BURST,
  iid,
  minutesAgo,
  NOW,
  pool,
  WARM,
} from "./support/aws-fleet-fixtures";
import { heartbeat } from "./support/heartbeats";
import { jobEvent } from "./support/jobs";

/**
 * ScaleFleet's Observe and Apply steps (`scaling/observe.ts`, `scaling/apply.ts`) over the AWS
 * driver: the instance registry in embedded DynamoDB, Auto Scaling and EC2 behind the SDK fake the
 * driver's own tests use. The driver alone is tested in fleet-aws.test.ts.
 */

const clients = mockedClients();
const { autoScaling } = clients;

const inputs = {
  setProtection: () =>
    autoScaling.commandCalls(SetInstanceProtectionCommand).map((call) => call.args[0].input),
  setDesired: () => autoScaling.commandCalls(SetDesiredCapacityCommand).map((call) => call.args[0].input),
};

const mutations = () => autoScalingMutations(autoScaling);

let aws: FakeAws;
let fleet: FleetPort;
beforeEach(() => {
  aws = new FakeAws({ now: () => NOW });
  installFakeAws(aws, clients);
  fleet = createAwsFleet({
    autoScaling: new AutoScalingClient({ region: "us-east-1" }),
    ec2: new EC2Client({ region: "us-east-1" }),
    ssm: new SSMClient({ region: "us-east-1" }),
    groups: { x86: { warm: WARM, burst: BURST } },
    runnerConfigPrefix: "/hearth/runner-config/",
    stage: "test",
    account: "123456789012",
    partition: "aws",
    now: () => NOW,
  });
});

const [busyWarm, idleWarm, drainingBurst, idleBurst] = [iid(0xa), iid(0xb), iid(0xc), iid(0xd)];
const launched = minutesAgo(45);

/** Warm: a busy and an idle instance; burst: a draining (spot warning) and an idle one. */
function fleetWithBusyAndDraining() {
  const warm = aws.group({
    name: WARM,
    max: 10,
    desired: 2,
    warmPool: {
      MinSize: 3,
      MaxGroupPreparedCapacity: 5,
      PoolState: "Stopped",
      InstanceReusePolicy: { ReuseOnScaleIn: true },
    },
  });
  const burst = aws.group({ name: BURST, max: 20, desired: 2, onDemandPercent: 0 });
  warm.instances = [
    // Left unprotected by an earlier release, then it took a job: it must be protected again.
    { id: busyWarm, state: "InService", protected: false, launchTime: launched },
    { id: idleWarm, state: "InService", protected: true, launchTime: launched },
  ];
  burst.instances = [
    { id: drainingBurst, state: "InService", protected: true, spot: true, launchTime: launched },
    { id: idleBurst, state: "InService", protected: true, spot: true, launchTime: launched },
  ];
  return { warm, burst };
}

describe("ScaleFleet's observe and apply over the AWS driver never release a busy or draining instance", () => {
  let embedded: EmbeddedDynamo | undefined;
  beforeAll(async () => {
    embedded = await startEmbeddedDynamo();
  });
  afterAll(async () => {
    await embedded?.close();
  });

  let clock = NOW;
  async function scalingDeps(): Promise<{ deps: ScalingDeps; registry: InstanceRegistry; store: Store }> {
    const { client, documents } = localDynamoClients(embedded?.endpoint ?? "");
    const tableName = `fleet-aws-${randomUUID()}`;
    await ensureTable(client, tableName);
    const store = { client: documents, tableName, now: () => clock };
    const registry = createInstanceRegistry(store);
    const deps: ScalingDeps = {
      pools: [pool()],
      ledger: createLedger({ client: documents, tableName, now: () => clock }),
      registry,
      journal: createJournal(store),
      leases: createLeases(store),
      scalingRecords: createScalingRecords(store),
      fleet,
      now: () => clock,
    };
    return { deps, registry, store };
  }

  const beat = heartbeat;

  async function registerAll(registry: InstanceRegistry) {
    for (const [id, group, market] of [
      [busyWarm, "warm", "on-demand"],
      [idleWarm, "warm", "on-demand"],
      [drainingBurst, "burst", "spot"],
      [idleBurst, "burst", "spot"],
    ] as const) {
      await registry.register({
        id,
        pool: "x86",
        group,
        market,
        az: "us-east-1a",
        launchedAt: launched.toISOString(),
        slots: 2,
      });
    }
    clock = new Date(NOW.getTime() - 10_000);
    await registry.heartbeat(
      busyWarm,
      beat(busyWarm, { runner: "busy", runningJobs: [{ source: "github", id: "501" }] }),
    );
    await registry.heartbeat(idleWarm, beat(idleWarm));
    await registry.heartbeat(
      drainingBurst,
      beat(drainingBurst, {
        interruption: { action: "terminate", time: new Date(NOW.getTime() + 110_000).toISOString() },
      }),
    );
    await registry.heartbeat(idleBurst, beat(idleBurst));
    clock = NOW;
  }

  /** What a broken planner might say: release everything, and count none of it. */
  const wrongPlan = (release: string[]): PoolPlan => ({
    pool: "x86",
    desiredWarm: 0,
    desiredBurst: 0,
    warmPoolSize: 3,
    release,
    resumeStores: [],
    reason: "a planner bug releases every instance",
    recheckAt: null,
    counts: { queued: 0, rehome: 0, freeSlots: 0, resume: 0, launch: 0, reserve: 0 },
  });

  it("apply unprotects only the idle instances, and desired capacity keeps counting the others", async () => {
    const { warm, burst } = fleetWithBusyAndDraining();
    const { deps, registry } = await scalingDeps();
    await registerAll(registry);

    const observation = await observe(deps, "x86", 0);
    expect(Object.fromEntries(observation.instances.map((i) => [i.id, i.state]))).toEqual({
      [busyWarm]: "ready",
      [idleWarm]: "ready",
      [drainingBurst]: "draining",
      [idleBurst]: "ready",
    });
    clock = new Date(NOW.getTime() + 5_000);
    const applied = await apply(deps, observation, wrongPlan([busyWarm, idleWarm, drainingBurst, idleBurst]));

    // No SetInstanceProtection(false) ever names the busy or the draining instance…
    const unprotected = inputs.setProtection().filter((input) => input.ProtectedFromScaleIn === false);
    expect(unprotected.flatMap((input) => input.InstanceIds ?? [])).not.toContain(busyWarm);
    expect(unprotected.flatMap((input) => input.InstanceIds ?? [])).not.toContain(drainingBurst);
    // …the busy one, found unprotected, is protected again before anything is unprotected…
    expect(inputs.setProtection()).toEqual([
      { AutoScalingGroupName: WARM, InstanceIds: [busyWarm], ProtectedFromScaleIn: true },
      { AutoScalingGroupName: WARM, InstanceIds: [idleWarm], ProtectedFromScaleIn: false },
      { AutoScalingGroupName: BURST, InstanceIds: [idleBurst], ProtectedFromScaleIn: false },
    ]);
    // …and desired capacity drops by the released instances only: the plan's 0 plus the kept one.
    expect(inputs.setDesired()).toEqual([
      { AutoScalingGroupName: WARM, DesiredCapacity: 1, HonorCooldown: false },
      { AutoScalingGroupName: BURST, DesiredCapacity: 1, HonorCooldown: false },
    ]);
    expect(mutations().indexOf("SetDesiredCapacity")).toBeGreaterThan(
      mutations().lastIndexOf("SetInstanceProtection"),
    );
    expect(applied.released).toEqual([idleWarm, idleBurst]);
    expect(applied.refused).toEqual([busyWarm, drainingBurst]);
    expect(warm.instances.find((i) => i.id === busyWarm)?.protected).toBe(true);
    expect(burst.instances.find((i) => i.id === drainingBurst)?.protected).toBe(true);
    expect(warm.desired).toBe(1);
    expect(burst.desired).toBe(1);
  });

  it("a spot warm group Hearth keeps: apply stops only the idle instance, and starts the stores the plan names after retries' on-demand capacity", async () => {
    aws.group({ name: BURST, max: 20, onDemandPercent: 0, subnets: ["subnet-a", "subnet-b"] });
    const warmTags = {
      "hearth:app": "hearth",
      "hearth:stage": "test",
      "hearth:pool": "x86",
      "hearth:group": "warm",
    };
    const kept = (state: "running" | "stopped", minutes: number) => {
      const instance = aws.runInstance({
        subnet: "subnet-a",
        instanceType: "c6a.xlarge",
        tags: warmTags,
        spot: true,
      });
      const requestId = `sir-${minutes}`;
      aws.spotRequests.set(requestId, {
        id: requestId,
        type: "persistent",
        state: "active",
        instanceId: instance.id,
        tags: {},
        launch: { subnet: "subnet-a", instanceType: "c6a.xlarge", tags: warmTags },
      });
      Object.assign(instance, { ec2State: state, launchTime: minutesAgo(minutes), spotRequestId: requestId });
      return instance;
    };
    const [busy, idle, older, newer] = [
      kept("running", 45),
      kept("running", 45),
      kept("stopped", 300),
      kept("stopped", 30),
    ];
    const { deps, registry } = await scalingDeps();
    const spotPool = pool({ warm: { warmPoolSize: 10, minReady: 0, market: "spot" } });
    deps.pools = [spotPool];
    for (const id of [busy.id, idle.id]) {
      await registry.register({
        id,
        pool: "x86",
        group: "warm",
        market: "spot",
        az: "us-east-1a",
        launchedAt: minutesAgo(45).toISOString(),
        slots: 2,
      });
    }
    clock = new Date(NOW.getTime() - 10_000);
    await registry.heartbeat(
      busy.id,
      beat(busy.id, { runner: "busy", runningJobs: [{ source: "github", id: "501" }] }),
    );
    await registry.heartbeat(idle.id, beat(idle.id));
    clock = NOW;

    const observation = await observe(deps, "x86", 0);
    expect(Object.fromEntries(observation.instances.map((i) => [i.id, i.state]))).toEqual({
      [busy.id]: "ready",
      [idle.id]: "ready",
      [older.id]: "stopped",
      [newer.id]: "stopped",
    });
    clock = new Date(NOW.getTime() + 5_000);
    const plan = wrongPlan([busy.id, idle.id]);
    // The driver hears how many of the named stores the plan counts as started.
    const targets: CapacityTarget[] = [];
    const setCapacity = deps.fleet.setCapacity.bind(deps.fleet);
    deps.fleet.setCapacity = (p, target) => {
      targets.push(target);
      return setCapacity(p, target);
    };
    const applied = await apply(deps, observation, {
      ...plan,
      desiredWarm: 2,
      warmPoolSize: 2,
      resumeStores: [older.id, newer.id],
      counts: { ...plan.counts, resume: 1, launchForRetries: 1 },
    });
    expect(targets).toMatchObject([{ resume: [older.id, newer.id], resumes: 1, onDemand: 1 }]);
    expect(applied.released).toEqual([idle.id]);
    expect(applied.refused).toEqual([busy.id]);
    expect([busy.ec2State, idle.ec2State]).toEqual(["running", "stopping"]);
    // In service: the busy one; the plan's 2 plus the kept busy one make 3: one on-demand launch for
    // retries, then the first store the plan names. Its second store stays stopped, in the pool.
    expect(applied.calls).toEqual([
      `StopInstances(instances=${idle.id})`,
      "RunInstances(subnet=subnet-b, count=1, market=on-demand)",
      `StartInstances(instances=${older.id})`,
    ]);
    expect([older.ec2State, newer.ec2State]).toEqual(["pending", "stopped"]);
    expect(aws.ec2Instances.filter((i) => !i.spot).map((i) => i.ec2State)).toEqual(["pending"]);
  });

  it("observe quiets a resumed instance's record, unless its agent has reported since the resume", async () => {
    fleetWithBusyAndDraining();
    const { deps, registry } = await scalingDeps();
    const before = new Date(launched.getTime() - 3_600_000).toISOString();
    for (const id of [idleWarm, idleBurst]) {
      await registry.register({
        id,
        pool: "x86",
        group: "warm",
        market: "on-demand",
        az: "us-east-1a",
        launchedAt: before,
        slots: 2,
      });
    }
    // idleBurst last reported before the fleet's launch time (a resume since), idleWarm after it.
    clock = new Date(launched.getTime() - 60_000);
    await registry.heartbeat(idleBurst, beat(idleBurst));
    clock = new Date(launched.getTime() + 30_000);
    await registry.heartbeat(idleWarm, beat(idleWarm));
    clock = NOW;
    await observe(deps, "x86", 0);
    expect(await registry.get(idleWarm)).toMatchObject({
      runner: "ready",
      lastHeartbeatAt: new Date(launched.getTime() + 30_000).toISOString(),
    });
    expect(await registry.get(idleBurst)).toMatchObject({
      runner: "booting",
      lastHeartbeatAt: null,
      launchedAt: launched.toISOString(),
    });
  });

  it("observe tries a held pool's waiting retry, and says the pool holds its spot runners", async () => {
    fleetWithBusyAndDraining();
    const { deps: scaling, registry, store } = await scalingDeps();
    // One retry per job: the first is the last, held, and planned on demand.
    const deps = { ...scaling, pools: scaling.pools.map((p) => ({ ...p, retryInterrupted: 1 })) };
    await registerAll(registry);
    const retried: string[] = [];
    const runs: string[] = [];
    const retries: RetryDeps = {
      ledger: deps.ledger,
      registry,
      journal: deps.journal,
      records: createRetryRecords(store),
      holds: createRetryHolds(store),
      pools: deps.pools,
      // GitLab's API: a finished job's retry is a new job.
      forges: {
        gitlab: {
          retryJob: async (_project, job) => {
            retried.push(job);
            return { id: "9000", status: "pending" };
          },
        },
      },
      now: () => clock,
      requestRun: async (p) => runs.push(p),
    };
    const held: ScalingDeps = {
      ...deps,
      hold: { state: (p) => holdState(retries, p), retryPending: (p) => retryHeld(retries, p) },
    };
    const { job } = await deps.ledger.record(
      jobEvent({
        source: "gitlab",
        id: "77",
        projectId: "5",
        status: "completed",
        conclusion: "failure",
        finishedAt: NOW.toISOString(),
        interruption: { at: NOW.toISOString(), instanceId: drainingBurst },
      }),
    );
    expect(await retryAfterJobRecorded(retries, job as Job)).toEqual({ kind: "held", pool: "x86" });
    // The idle spot instance has not confirmed: the run asks nothing, and plans the pool held.
    const first = await observe(held, "x86", 0);
    expect(first.held).toBe(true);
    expect(retried).toEqual([]);
    // It stopped claiming: the next run asks the retry (and a run for it), and still holds until it runs.
    clock = new Date(NOW.getTime() + 15_000);
    await registry.heartbeat(idleBurst, beat(idleBurst, { protocol: 3, claiming: false }));
    const second = await observe(held, "x86", 1);
    expect(retried).toEqual(["77"]);
    expect(runs).toEqual(["x86"]);
    expect(second.held).toBe(true);
    expect(second.queuedRetries).toBe(1);
    // Its burst group's slots are no spare for a webhook's job (one slot busy, one retry queued).
    const target = { warm: 2, burst: 2 };
    expect(afterIteration(second, target, 2, 0).spareSlots).toBe(4 - 1 - 1);
    expect(afterIteration({ ...second, held: false }, target, 2, 0).spareSlots).toBe(8 - 1 - 1);
    // Past its limit, the hold ends: the run plans as for a pool that holds nothing.
    clock = new Date(NOW.getTime() + HOLD_MAX_SECONDS * 1000 + 1000);
    expect((await observe(held, "x86", 2)).held).toBeUndefined();
    clock = NOW;
  });

  it("apply keeps an instance that took a job after the plan was made", async () => {
    const { warm } = fleetWithBusyAndDraining();
    const { deps, registry } = await scalingDeps();
    await registerAll(registry);
    const observation = await observe(deps, "x86", 0);
    // Planned idle; the agent reports a job before apply gets to it.
    clock = new Date(NOW.getTime() + 3_000);
    await registry.heartbeat(
      idleWarm,
      beat(idleWarm, { runner: "busy", runningJobs: [{ source: "gitlab", id: "77" }] }),
    );
    clock = new Date(NOW.getTime() + 5_000);
    const applied = await apply(deps, observation, {
      ...wrongPlan([idleWarm]),
      desiredWarm: 1,
      desiredBurst: 2,
    });

    expect(inputs.setProtection()).toEqual([
      // The busy instance was found unprotected: protected again, never the reverse.
      { AutoScalingGroupName: WARM, InstanceIds: [busyWarm], ProtectedFromScaleIn: true },
    ]);
    expect(applied).toMatchObject({ released: [], refused: [idleWarm] });
    // Nothing released, so nothing may leave: the warm group keeps both instances.
    expect(inputs.setDesired()).toEqual([]);
    expect(warm.desired).toBe(2);
  });

  describe("the two-phase release (agents of protocol 2)", () => {
    /** Warm: idleWarm, busyWarm; burst: idleBurst. Every agent speaks protocol 2 and claims. */
    async function setUp() {
      const { warm, burst } = fleetWithBusyAndDraining();
      warm.instances = warm.instances.map((i) => ({ ...i, protected: true }));
      burst.instances = burst.instances.filter((i) => i.id === idleBurst);
      burst.desired = 1;
      const { deps, registry } = await scalingDeps();
      for (const [id, group, market] of [
        [busyWarm, "warm", "on-demand"],
        [idleWarm, "warm", "on-demand"],
        [idleBurst, "burst", "spot"],
      ] as const) {
        await registry.register({
          id,
          pool: "x86",
          group,
          market,
          az: "us-east-1a",
          launchedAt: launched.toISOString(),
          slots: 2,
        });
      }
      clock = new Date(NOW.getTime() - 10_000);
      await registry.heartbeat(
        busyWarm,
        beat(busyWarm, {
          protocol: 2,
          claiming: true,
          runner: "busy",
          runningJobs: [{ source: "github", id: "501" }],
        }),
      );
      await registry.heartbeat(idleWarm, beat(idleWarm, { protocol: 2, claiming: true }));
      await registry.heartbeat(idleBurst, beat(idleBurst, { protocol: 2, claiming: true }));
      clock = NOW;
      return { warm, burst, deps, registry };
    }

    /** The planner's plan: release these, keep the rest. */
    const planReleasing = (release: string[], desiredWarm: number, desiredBurst: number): PoolPlan => ({
      ...wrongPlan(release),
      desiredWarm,
      desiredBurst,
      reason: "idle past its timeout",
    });
    const later = (ms: number) => {
      clock = new Date(clock.getTime() + ms);
    };
    const unprotected = () =>
      inputs
        .setProtection()
        .filter((input) => input.ProtectedFromScaleIn === false)
        .flatMap((input) => input.InstanceIds ?? []);

    it("phase one marks the instance and keeps it counted; phase two releases it once its agent confirmed", async () => {
      const { warm, deps, registry } = await setUp();
      const plan = planReleasing([idleWarm], 1, 1);
      const first = await apply(deps, await observe(deps, "x86", 0), plan);
      expect(first).toMatchObject({ released: [], refused: [], releasing: [idleWarm], settled: false });
      expect(unprotected()).toEqual([]);
      // Desired keeps counting the marked instance: nothing may leave yet. The warm group's size stays
      // the plan's (1 in service + 3 stopped): the pool waits for the marked store, launching none.
      expect(warm.desired).toBe(2);
      expect(warm.warmPool?.MaxGroupPreparedCapacity).toBe(4);
      // Its slots are no spare for a new job: 2 instances that claim, 4 slots, 1 busy.
      expect((await deps.scalingRecords.get("x86"))?.spareSlots).toBe(3);
      expect((await registry.get(idleWarm))?.releasing).toMatchObject({
        confirmedAt: null,
        releasedAt: null,
      });
      expect((await deps.journal.latest(10)).find((e) => e.kind === "decision")?.details).toMatchObject({
        releasing: idleWarm,
      });

      // Heard, but the agent still claimed when it sent this one: not confirmed, not released.
      later(5_000);
      await registry.heartbeat(idleWarm, beat(idleWarm, { protocol: 2, claiming: true }));
      later(5_000);
      const waiting = await apply(deps, await observe(deps, "x86", 1), plan);
      expect(waiting).toMatchObject({ released: [], releasing: [idleWarm], settled: false });
      expect(unprotected()).toEqual([]);

      // It stopped claiming and says so: the next Apply lets it go.
      later(1_000);
      await registry.heartbeat(idleWarm, beat(idleWarm, { protocol: 2, claiming: false }));
      later(5_000);
      const second = await apply(deps, await observe(deps, "x86", 2), plan);
      expect(second).toMatchObject({ released: [idleWarm], releasing: [] });
      expect(unprotected()).toEqual([idleWarm]);
      expect(warm.desired).toBe(1);
      expect(warm.warmPool?.MaxGroupPreparedCapacity).toBe(4);
      expect((await registry.get(idleWarm))?.releasing?.releasedAt).toBe(clock.toISOString());
    });

    it("a claiming: false sent before the mark confirms nothing", async () => {
      const { deps, registry } = await setUp();
      await registry.heartbeat(idleWarm, beat(idleWarm, { protocol: 2, claiming: false }));
      const plan = planReleasing([idleWarm], 1, 1);
      await apply(deps, await observe(deps, "x86", 0), plan);
      later(5_000);
      const again = await apply(deps, await observe(deps, "x86", 1), plan);
      expect(again).toMatchObject({ released: [], releasing: [idleWarm] });
      expect(unprotected()).toEqual([]);
    });

    it("an instance that takes a job while marked loses its mark and stays", async () => {
      const { warm, deps, registry } = await setUp();
      const plan = planReleasing([idleWarm], 1, 1);
      await apply(deps, await observe(deps, "x86", 0), plan);
      later(3_000);
      await registry.heartbeat(
        idleWarm,
        beat(idleWarm, {
          protocol: 2,
          claiming: true,
          runner: "busy",
          runningJobs: [{ source: "gitlab", id: "7" }],
        }),
      );
      expect((await registry.get(idleWarm))?.releasing).toBeNull();
      // Even a plan that (wrongly) releases it again cannot mark a busy instance.
      later(5_000);
      const next = await apply(deps, await observe(deps, "x86", 1), plan);
      expect(next).toMatchObject({ released: [], refused: [idleWarm], releasing: [] });
      expect(unprotected()).toEqual([]);
      expect(warm.desired).toBe(2);
    });

    it("a mark the plan no longer wants is cleared, even once confirmed, and the instance stays", async () => {
      const { warm, deps, registry } = await setUp();
      await apply(deps, await observe(deps, "x86", 0), planReleasing([idleWarm, idleBurst], 1, 0));
      later(2_000);
      await registry.heartbeat(idleWarm, beat(idleWarm, { protocol: 2, claiming: false }));
      expect((await registry.get(idleWarm))?.releasing?.confirmedAt).not.toBeNull();
      // A job arrived for the pool: the plan keeps everything now.
      later(5_000);
      const kept = await apply(deps, await observe(deps, "x86", 1), planReleasing([], 2, 1));
      expect(kept.unmarked.sort()).toEqual([idleBurst, idleWarm].sort());
      expect((await registry.get(idleWarm))?.releasing).toBeNull();
      expect((await registry.get(idleBurst))?.releasing).toBeNull();
      expect(unprotected()).toEqual([]);
      expect(warm.desired).toBe(2);
      expect((await deps.journal.latest(10)).find((e) => e.kind === "decision")?.details).toMatchObject({
        unmarked: expect.stringContaining(idleWarm),
      });
    });

    it("a released instance keeps its mark when the plan stops naming it", async () => {
      const { deps, registry } = await setUp();
      const plan = planReleasing([idleBurst], 2, 0);
      await apply(deps, await observe(deps, "x86", 0), plan);
      later(2_000);
      await registry.heartbeat(idleBurst, beat(idleBurst, { protocol: 2, claiming: false }));
      later(5_000);
      expect((await apply(deps, await observe(deps, "x86", 1), plan)).released).toEqual([idleBurst]);
      later(5_000);
      const after = await apply(deps, await observe(deps, "x86", 2), planReleasing([], 2, 0));
      expect(after.unmarked).toEqual([]);
      expect((await registry.get(idleBurst))?.releasing?.releasedAt).not.toBeNull();
    });

    it("an agent of protocol 1 cannot confirm: its instance is released in one phase, as before", async () => {
      const { warm, deps, registry } = await setUp();
      await registry.heartbeat(idleWarm, beat(idleWarm, { protocol: 1 }));
      const applied = await apply(deps, await observe(deps, "x86", 0), planReleasing([idleWarm], 1, 1));
      expect(applied).toMatchObject({ released: [idleWarm], releasing: [] });
      expect(unprotected()).toEqual([idleWarm]);
      expect(warm.desired).toBe(1);
      expect((await registry.get(idleWarm))?.releasing).toBeNull();
    });
  });
});
