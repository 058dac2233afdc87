import { describe, expect, it } from "vitest";
import { FakeClock } from "../src/clock";
import { INTERRUPTED_STORE_WAIT_MS } from "../src/fleet";
import type { Interruption } from "../src/instances";
import { type PoolConfig, poolConfigSchema } from "../src/pools";
import { type SimulatedAwsEvent, SimulatedFleet, type SimulatedInstance } from "../src/simulation/fleet";

/**
 * The simulated fleet's warm group for `warm.market: spot`: kept by Hearth through EC2 (persistent
 * spot instances started and stopped by id), not by an Auto Scaling warm pool.
 */

const poolOf = (market: "spot" | "on-demand"): PoolConfig =>
  poolConfigSchema.parse({
    name: "x86",
    labels: ["nix"],
    architecture: "x86_64",
    instanceTypes: ["c6a.xlarge"],
    maxInstances: 10,
    warm: { warmPoolSize: 10, market },
    boot: { coldSeconds: 75, warmSeconds: 25 },
  });
const pool = poolOf("spot");

function fleetWith(options: { stopped?: number; spotStartSuccess?: number; seed?: number } = {}) {
  const clock = new FakeClock();
  const fleet = new SimulatedFleet({
    pools: [pool],
    clock,
    initialWarmPool: options.stopped ?? 0,
    spotStartSuccess: options.spotStartSuccess ?? 1,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
  });
  const left: Array<{ id: string; how: string }> = [];
  const notices: Array<{ id: string; notice: Interruption }> = [];
  const events: SimulatedAwsEvent[] = [];
  fleet.subscribe({
    leaving: (instance, how) => {
      left.push({ id: instance.id, how });
    },
    interrupted: (instance, notice) => {
      notices.push({ id: instance.id, notice });
    },
    awsEvent: (event) => {
      events.push(event);
    },
  });
  return { clock, fleet, left, notices, events };
}

const ids = (instances: readonly SimulatedInstance[]) => instances.map((instance) => instance.id).sort();
const withState = (fleet: SimulatedFleet, lifecycle: SimulatedInstance["lifecycle"]) =>
  ids(fleet.all().filter((instance) => instance.lifecycle === lifecycle));
/** Calls made since `from` (an index into the call log). */
const callsSince = (fleet: SimulatedFleet, from: number) => fleet.callLog.slice(from);

describe("the simulated fleet's spot warm group (warm.market: spot)", () => {
  it("observes what runs as the group's size and what is stopped as its warm pool, all on spot", async () => {
    const { clock, fleet } = fleetWith({ stopped: 3 });
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 2 });
    await clock.advance(60_000);
    const observed = await fleet.observe(pool);
    const warm = observed.groups.find((group) => group.group === "warm");
    expect(warm).toMatchObject({ desired: 1, warmPoolSize: 2 });
    expect(observed.instances.map((instance) => instance.market)).toEqual(["spot", "spot", "spot"]);
    // No Auto Scaling call for a group that is no Auto Scaling group.
    expect(fleet.callLog.some((call) => /SetDesiredCapacity|PutWarmPool/.test(call))).toBe(false);
  });

  it("starts first the on-demand launches, then the stores the plan names in its order, then the most recently launched, then launches spot", async () => {
    const { clock, fleet } = fleetWith();
    // Four stores, launched one after the other (each boots once and stops), so that which is most
    // recent is known.
    for (let n = 1; n <= 4; n++) {
      await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: n });
      await clock.advance(90_000);
    }
    const [a, b, c, d] = ids(fleet.all()) as [string, string, string, string];
    expect(withState(fleet, "stopped")).toEqual([a, b, c, d]);

    const from = fleet.callLog.length;
    await fleet.setCapacity(pool, { warm: 7, burst: 0, warmPoolSize: 0, resume: [c, a], onDemand: 1 });
    expect(callsSince(fleet, from)).toEqual([
      "RunInstances(group=sim-x86-warm, market=on-demand, count=1)",
      `StartInstances(instances=${c})`,
      `StartInstances(instances=${a})`,
      // Then the rest, most recent launch first.
      `StartInstances(instances=${d})`,
      `StartInstances(instances=${b})`,
      "RunInstances(group=sim-x86-warm, market=spot, count=2)",
    ]);
    const launched = fleet.all().filter((instance) => ![a, b, c, d].includes(instance.id));
    expect(launched.map((instance) => instance.market).sort()).toEqual(["on-demand", "spot", "spot"]);
    // Started stores resume in the warm boot time; new instances take the cold one.
    await clock.advance(25_000);
    expect(withState(fleet, "in-service")).toEqual([a, b, c, d]);
    await clock.advance(50_000);
    expect(withState(fleet, "in-service")).toHaveLength(7);
  });

  it("tries the next store when a start finds no spot capacity, and keeps the store it could not start", async () => {
    const { fleet } = fleetWith({ stopped: 3, spotStartSuccess: 0 });
    const [a, b, c] = ids(fleet.all()) as [string, string, string];
    const from = fleet.callLog.length;
    // The plan counts `a` started: a warm pool of the other two.
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 2, resume: [a] });
    expect(callsSince(fleet, from)).toEqual([
      `StartInstances(instances=${a}, failed=InsufficientInstanceCapacity)`,
      expect.stringMatching(/^StartInstances\(instances=i-\w+, failed=InsufficientInstanceCapacity\)$/),
      expect.stringMatching(/^StartInstances\(instances=i-\w+, failed=InsufficientInstanceCapacity\)$/),
      "RunInstances(group=sim-x86-warm, market=spot, count=1)",
    ]);
    // All three stores are kept: none is terminated as extra because its start failed.
    expect(withState(fleet, "stopped")).toEqual([a, b, c]);
    expect(withState(fleet, "pending")).toHaveLength(1);
  });

  it("keeps a named store it had no need to start, when the plan counted it started", async () => {
    const { fleet } = fleetWith({ stopped: 4, spotStartSuccess: 1 });
    const [a, b, c, d] = ids(fleet.all()) as [string, string, string, string];
    // One store in service already: the group counts it, where the plan (say, as it drains before
    // its detach) does not, and asked for one more in service, `a`, with a warm pool of the others.
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 3, resume: [d] });
    const from = fleet.callLog.length;
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 2, resume: [a], resumes: 1 });
    // Nothing to start, and nothing terminated in place of `a`.
    expect(callsSince(fleet, from)).toEqual([]);
    expect(withState(fleet, "stopped")).toEqual([a, b, c]);
  });

  it("launches nothing in place of stores started for warmth that find no spot capacity", async () => {
    const { fleet } = fleetWith({ stopped: 3, spotStartSuccess: 0 });
    const [a, b, c] = ids(fleet.all()) as [string, string, string];
    const from = fleet.callLog.length;
    // Three to start, two for warmth only: none starts, and one new instance stands in.
    await fleet.setCapacity(pool, { warm: 3, burst: 0, warmPoolSize: 0, resume: [a, b, c], optional: 2 });
    expect(callsSince(fleet, from).filter((call) => call.startsWith("RunInstances"))).toEqual([
      "RunInstances(group=sim-x86-warm, market=spot, count=1)",
    ]);
    expect(withState(fleet, "pending")).toHaveLength(1);
  });

  it("finds spot capacity for a start with the configured probability, replayed by its seed", async () => {
    const failures = async (seed: number) => {
      const { clock, fleet } = fleetWith({ stopped: 1, spotStartSuccess: 0.9, seed });
      const id = ids(fleet.all())[0] as string;
      let failed = 0;
      for (let n = 0; n < 200; n++) {
        const from = fleet.callLog.length;
        await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 0, resume: [id] });
        if (callsSince(fleet, from)[0]?.includes("InsufficientInstanceCapacity")) failed++;
        // Back to stopped, for the next try: released, or the new launch terminated.
        const running = fleet.all().find((instance) => instance.lifecycle === "pending");
        if (running?.id === id) {
          await clock.advance(25_000);
          await fleet.release(pool, [id], async () => true);
        } else if (running) await fleet.terminate(running.id);
        await clock.advance(10_000);
      }
      return failed;
    };
    const first = await failures(7);
    expect(first).toBeGreaterThan(5);
    expect(first).toBeLessThan(40);
    expect(await failures(7)).toBe(first);
  });

  it("stops a released warm instance, store kept, and does nothing when more run than the target", async () => {
    const { clock, fleet, left } = fleetWith({ stopped: 1 });
    const [a] = ids(fleet.all()) as [string];
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 0, resume: [a] });
    await clock.advance(30_000);
    expect(fleet.get(a)?.lifecycle).toBe("in-service");

    let from = fleet.callLog.length;
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 1 });
    // Only a release stops an instance; the warm pool counts nothing stopped to add one for... yet.
    expect(fleet.get(a)?.lifecycle).toBe("in-service");
    expect(callsSince(fleet, from)).toEqual([
      "RunInstances(group=sim-x86-warm, market=spot, count=1, afterBoot=stop)",
    ]);

    from = fleet.callLog.length;
    const refused = await fleet.release(pool, [a], async () => false);
    expect(refused.refused).toEqual([a]);
    const released = await fleet.release(pool, [a], async () => true);
    expect(released).toEqual({ released: [a], refused: [], calls: [`StopInstances(instances=${a})`] });
    expect(left).toEqual([{ id: a, how: "stopped" }]);
    await clock.advance(10_000);
    expect(fleet.get(a)?.lifecycle).toBe("stopped");
    expect(fleet.get(a)?.protectedFromScaleIn).toBe(true);

    // An on-demand instance (capacity for a retried job) is terminated instead: the group keeps spot stores.
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 2, onDemand: 1 });
    await clock.advance(90_000);
    const onDemand = fleet.all().find((instance) => instance.market === "on-demand") as SimulatedInstance;
    expect(onDemand.lifecycle).toBe("in-service");
    expect((await fleet.release(pool, [onDemand.id], async () => true)).calls).toEqual([
      `TerminateInstances(instances=${onDemand.id})`,
    ]);
    expect(fleet.get(onDemand.id)).toBeUndefined();
    expect(left).toContainEqual({ id: onDemand.id, how: "terminated" });
  });

  it("keeps the stopped stores at the warm pool size: terminates first the never used, then the least recently used, none named", async () => {
    const { clock, fleet, left } = fleetWith({ stopped: 4 });
    const [never, longAgo, lately, named] = ids(fleet.all()) as [string, string, string, string];
    // `longAgo` serves, then `lately`; each goes back to stopped.
    for (const id of [longAgo, lately]) {
      await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 3, resume: [id] });
      await clock.advance(30_000);
      await fleet.release(pool, [id], async () => true);
      await clock.advance(60_000);
    }
    expect(withState(fleet, "stopped")).toEqual([never, longAgo, lately, named]);

    const from = fleet.callLog.length;
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 1, resume: [named] });
    expect(callsSince(fleet, from)).toEqual([
      `CancelSpotInstanceRequests(instances=${never}+${longAgo}+${lately})`,
      `TerminateInstances(instances=${never}+${longAgo}+${lately})`,
    ]);
    expect(ids(fleet.all())).toEqual([named]);
    // Nothing was running on them.
    expect(left.filter((leaving) => leaving.how === "terminated")).toEqual([]);
  });

  it("launches new stores that boot once and stop when fewer are stopped than the warm pool size", async () => {
    const { clock, fleet } = fleetWith({ stopped: 1 });
    const from = fleet.callLog.length;
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 3 });
    expect(callsSince(fleet, from)).toEqual([
      "RunInstances(group=sim-x86-warm, market=spot, count=2, afterBoot=stop)",
    ]);
    // Booting counts: asked again, nothing more launches.
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 3 });
    expect(fleet.callLog.length).toBe(from + 1);
    await clock.advance(90_000);
    expect(withState(fleet, "stopped")).toHaveLength(3);
  });

  it("stops an instance at its interruption's deadline, store kept, launches no replacement, and only EC2 starts it again", async () => {
    const { clock, fleet, left, notices, events } = fleetWith({ stopped: 2 });
    const [a, b] = ids(fleet.all()) as [string, string];
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 1, resume: [a] });
    await clock.advance(30_000);

    await fleet.interrupt(a, "stop");
    expect(notices).toEqual([
      { id: a, notice: { action: "stop", time: new Date(clock.now() + 120_000).toISOString() } },
    ]);
    expect(events.map((event) => [event["detail-type"], event.detail["instance-action"]])).toEqual([
      ["EC2 Spot Instance Interruption Warning", "stop"],
    ]);
    await clock.advance(119_000);
    expect(fleet.get(a)?.lifecycle).toBe("in-service");
    await clock.advance(1_000);
    expect(left).toEqual([{ id: a, how: "stopped" }]);
    await clock.advance(10_000);
    expect(fleet.get(a)).toMatchObject({ lifecycle: "stopped", stoppedByInterruption: true });
    expect(ids(fleet.all())).toEqual([a, b]);
    // The port shows it as EC2 does (its state reason), and only it: the planner leaves it to EC2.
    const seen = (await fleet.observe(pool)).instances;
    expect(seen.filter((i) => i.stoppedByInterruption).map((i) => i.id)).toEqual([a]);
    expect((await fleet.lookup(a))?.stoppedByInterruption).toBe(true);

    // Hearth cannot start it: the plan's choice goes to the next store. The plan sizes the warm pool
    // without it (none of the warm pool: it waits for EC2), so nothing is parked in b's place.
    const from = fleet.callLog.length;
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 0, resume: [a] });
    expect(callsSince(fleet, from)).toEqual([`StartInstances(instances=${b})`]);
    expect(fleet.get(a)?.lifecycle).toBe("stopped");

    // Capacity returns: EC2 starts it, with its store, no call of Hearth's.
    const calls = fleet.callLog.length;
    await fleet.capacityReturns(a);
    expect(fleet.callLog.length).toBe(calls);
    await clock.advance(25_000);
    expect(fleet.get(a)).toMatchObject({ lifecycle: "in-service", stoppedByInterruption: false });
  });

  /** One store, started, then stopped by a spot interruption (its deadline passed). */
  async function interruptedStore() {
    const { clock, fleet } = fleetWith({ stopped: 1 });
    const [a] = ids(fleet.all()) as [string];
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 0, resume: [a] });
    await clock.advance(30_000);
    await fleet.interrupt(a, "stop");
    await clock.advance(130_000);
    return { clock, fleet, a };
  }

  it("parks a store in place of one an interruption stopped, and gives that one up an hour after its last start", async () => {
    const { clock, fleet, a } = await interruptedStore();
    expect(fleet.get(a)).toMatchObject({ lifecycle: "stopped", stoppedByInterruption: true });
    expect((await fleet.observe(pool)).groups.find((g) => g.group === "warm")?.warmPoolSize).toBe(0);
    // A warm pool of one: the interrupted store is none of it, so a new one is parked.
    let from = fleet.callLog.length;
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 1 });
    expect(callsSince(fleet, from)).toEqual([
      "RunInstances(group=sim-x86-warm, market=spot, count=1, afterBoot=stop)",
    ]);
    // Within the hour it waits for EC2; past it, it is given up (request cancelled first).
    await clock.advance(INTERRUPTED_STORE_WAIT_MS - 200_000);
    from = fleet.callLog.length;
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 1 });
    expect(callsSince(fleet, from)).toEqual([]);
    await clock.advance(60_000);
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 1 });
    expect(callsSince(fleet, from)).toEqual([
      `CancelSpotInstanceRequests(instances=${a})`,
      `TerminateInstances(instances=${a})`,
    ]);
    expect(await fleet.exists(a)).toBe(false);
  });

  it("refuses capacityReturns for an instance no interruption stopped, changing nothing", async () => {
    const { fleet } = fleetWith({ stopped: 1 });
    const [a] = ids(fleet.all()) as [string];
    const before = JSON.stringify(fleet.snapshot());
    await expect(fleet.capacityReturns(a)).rejects.toThrow(/not stopped by an interruption/);
    await expect(fleet.capacityReturns("i-0000000000000dead")).rejects.toThrow(/not an instance/);
    expect(JSON.stringify(fleet.snapshot())).toBe(before);
  });

  it("has nothing to detach a warm instance from, and terminates one after cancelling its spot request", async () => {
    const { clock, fleet, left } = fleetWith({ stopped: 1 });
    const [a] = ids(fleet.all()) as [string];
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 0, resume: [a] });
    await clock.advance(30_000);
    expect(await fleet.detach(pool, a)).toEqual([]);
    expect(fleet.get(a)?.detached).toBeUndefined();
    expect(await fleet.lookup(a)).toMatchObject({ id: a, group: "warm", market: "spot" });
    expect(await fleet.terminate(a)).toEqual([
      `CancelSpotInstanceRequests(instances=${a})`,
      `TerminateInstances(instances=${a})`,
    ]);
    expect(left).toEqual([{ id: a, how: "terminated" }]);
    expect(await fleet.exists(a)).toBe(false);
  });

  it("keeps an interruption's stop across a snapshot and restore", async () => {
    const { clock, fleet, a } = await interruptedStore();

    const restored = new SimulatedFleet({ pools: [pool], clock, spotStartSuccess: 1 });
    await restored.restore(JSON.parse(JSON.stringify(fleet.snapshot())));
    expect(restored.get(a)).toMatchObject({ lifecycle: "stopped", stoppedByInterruption: true });
    const from = restored.callLog.length;
    await restored.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 0, resume: [a] });
    expect(callsSince(restored, from)).toEqual(["RunInstances(group=sim-x86-warm, market=spot, count=1)"]);
    await restored.capacityReturns(a);
    expect(restored.get(a)?.lifecycle).toBe("pending");
  });

  it("refuses a start probability outside 0 to 1", () => {
    expect(
      () => new SimulatedFleet({ pools: [pool], clock: new FakeClock(), spotStartSuccess: 1.5 }),
    ).toThrow(/spotStartSuccess is a probability/);
  });

  it("leaves an on-demand pool's warm group to Auto Scaling, as before", async () => {
    const onDemand = poolOf("on-demand");
    const clock = new FakeClock();
    const fleet = new SimulatedFleet({ pools: [onDemand], clock, initialWarmPool: 2 });
    await fleet.setCapacity(onDemand, {
      warm: 1,
      burst: 0,
      warmPoolSize: 1,
      resume: ["i-00000000000000001"],
    });
    expect(fleet.callLog).toEqual([
      "SetDesiredCapacity(group=sim-x86-warm, desired=1)",
      "PutWarmPool(group=sim-x86-warm, minSize=1)",
    ]);
    await clock.advance(30_000);
    const running = fleet.all().find((instance) => instance.lifecycle === "in-service") as SimulatedInstance;
    expect(running.market).toBe("on-demand");
    expect(await fleet.release(onDemand, [running.id], async () => true)).toMatchObject({
      calls: [`SetInstanceProtection(instances=${running.id}, protected=false)`],
    });
    // An interruption of it terminates it, and the group replaces it.
    await fleet.interrupt(running.id, "stop");
    await fleet.setCapacity(onDemand, { warm: 1, burst: 0, warmPoolSize: 0 });
    await clock.advance(120_000);
    expect(fleet.get(running.id)).toBeUndefined();
  });
});
