import { describe, expect, it } from "vitest";
import { FakeClock } from "../src/clock";
import { lazyFleet } from "../src/fleet";
import { type PoolConfig, poolConfigSchema } from "../src/pools";
import { SimulatedFleet } from "../src/simulation/fleet";

/**
 * What the simulated fleet does with runner configs beyond the fleet port's contract: it keeps them
 * across a restart of local mode (in its snapshot), and a terminated instance's go with it.
 */

const pool: PoolConfig = poolConfigSchema.parse({
  name: "x86",
  labels: ["nix"],
  architecture: "x86_64",
  instanceTypes: ["c6a.xlarge"],
  maxInstances: 4,
});

async function runningFleet() {
  const clock = new FakeClock();
  const fleet = new SimulatedFleet({ pools: [pool], clock });
  await fleet.setCapacity(pool, { warm: 0, burst: 2, warmPoolSize: 0 });
  await clock.advance(15 * 60_000);
  const [first = "", second = ""] = fleet
    .all()
    .map((i) => i.id)
    .sort();
  return { clock, fleet, first, second };
}

describe("the simulated fleet's runner configs", () => {
  it("are kept in its snapshot, and restored with it", async () => {
    const { fleet, first } = await runningFleet();
    const { parameter } = await fleet.handRunnerConfig({
      instanceId: first,
      slot: 0,
      runnerId: 9,
      encodedJitConfig: "jit-config",
    });
    const snapshot = JSON.parse(JSON.stringify(fleet.snapshot()));
    const restored = new SimulatedFleet({ pools: [pool], clock: new FakeClock() });
    await restored.restore(snapshot);
    expect(restored.readRunnerConfig(first, parameter)).toBe("jit-config");

    // A snapshot written before runner configs existed restores with none.
    const { parameters: _none, ...older } = snapshot;
    await restored.restore(older);
    expect(restored.runnerConfigParameters()).toEqual([]);
  });

  it("are deleted with a terminated instance, and only its own", async () => {
    const { clock, fleet, first, second } = await runningFleet();
    const gone = await fleet.handRunnerConfig({
      instanceId: first,
      slot: 0,
      runnerId: 1,
      encodedJitConfig: "a",
    });
    const kept = await fleet.handRunnerConfig({
      instanceId: second,
      slot: 0,
      runnerId: 2,
      encodedJitConfig: "b",
    });
    await fleet.interrupt(first);
    await clock.advance(5 * 60_000);
    expect(fleet.get(first)).toBeUndefined();
    expect(fleet.runnerConfigParameters()).toEqual([kept.parameter]);
    expect(fleet.snapshot().parameters).not.toHaveProperty(gone.parameter);
    expect(fleet.readRunnerConfig(second, kept.parameter)).toBe("b");
  });
});

describe("a lazily loaded fleet", () => {
  it("hands and withdraws runner configs through the driver it loads, loaded once", async () => {
    const { fleet, first } = await runningFleet();
    let loads = 0;
    const lazy = lazyFleet(async () => {
      loads += 1;
      return fleet;
    });
    const { parameter } = await lazy.handRunnerConfig({
      instanceId: first,
      slot: 1,
      runnerId: 3,
      encodedJitConfig: "c",
    });
    expect(fleet.readRunnerConfig(first, parameter)).toBe("c");
    await lazy.withdrawRunnerConfig(parameter);
    expect(fleet.runnerConfigParameters()).toEqual([]);
    expect(loads).toBe(1);
  });
});
