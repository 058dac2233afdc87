import { AutoScalingClient } from "@aws-sdk/client-auto-scaling";
import { EC2Client } from "@aws-sdk/client-ec2";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import { beforeEach, describe, expect, it } from "vitest";
import { FakeClock } from "../src/clock";
import { stageTags, tagKeys } from "../src/deploy";
import type { FleetInstance, FleetObservation, FleetPort } from "../src/fleet";
import { createAwsFleet } from "../src/fleet-aws";
import { type PoolConfig, poolConfigSchema } from "../src/pools";
import { SIMULATED_RUNNER_CONFIG_PREFIX, SimulatedFleet } from "../src/simulation/fleet";
import { FakeAws, installFakeAws, mockedClients } from "./support/auto-scaling-fake";

/**
 * One suite, two drivers of the fleet port: the simulated fleet (local mode, end-to-end tests) and
 * the AWS driver over the stateful model of Auto Scaling and EC2. Every scenario drives the port
 * only, lets the fleet act, and checks what the port then observes, so that what local mode shows
 * is what AWS does (as terraform-aws-github-runner checks each compute provider with one suite).
 */

const pool: PoolConfig = poolConfigSchema.parse({
  name: "x86",
  labels: ["nix", "x86_64-linux"],
  architecture: "x86_64",
  instanceTypes: ["c6a.xlarge"],
  maxInstances: 10,
  // The port's contract over an Auto Scaling warm group: its warm pool is AWS's.
  warm: { market: "on-demand" },
});
const other: PoolConfig = { ...pool, name: "arm" };

interface Driver {
  fleet: FleetPort;
  /** The fleet does what it was asked: boots, stops, scale-in, replacements, warm-pool refills. */
  settle(): Promise<void>;
  /** EC2 reclaims an instance (a spot interruption, its notice over). */
  interrupt(id: string): Promise<void>;
  /** Where the driver puts runner configs. */
  runnerConfigPrefix: string;
  /** The agent on `instanceId` reads a parameter with its own credentials: the value, or nothing. */
  readRunnerConfig(instanceId: string, parameter: string): Promise<string | undefined>;
  /** The runner config parameters that exist. */
  parameters(): string[];
}

interface DriverKind {
  name: string;
  create(seed: number): Driver;
}

const clients = mockedClients();

const drivers: DriverKind[] = [
  {
    name: "the simulated fleet",
    create(seed) {
      const clock = new FakeClock();
      const fleet = new SimulatedFleet({ pools: [pool, other], clock, seed });
      const settle = () => clock.advance(15 * 60_000);
      return {
        fleet,
        settle,
        async interrupt(id) {
          await fleet.interrupt(id);
          await settle();
        },
        runnerConfigPrefix: SIMULATED_RUNNER_CONFIG_PREFIX,
        readRunnerConfig: async (instanceId, parameter) => fleet.readRunnerConfig(instanceId, parameter),
        parameters: () => fleet.runnerConfigParameters(),
      };
    },
  },
  {
    name: "the AWS driver over the Auto Scaling model",
    create(seed) {
      const clock = new FakeClock();
      const now = () => new Date(clock.now());
      const aws = new FakeAws({ seed, now });
      for (const { name, maxInstances, burst } of [pool, other]) {
        const tags = (group: string) => ({
          ...stageTags("test"),
          [tagKeys.pool]: name,
          [tagKeys.group]: group,
        });
        aws.group({ name: `hearth-${name}-warm`, max: maxInstances, tags: tags("warm") });
        aws.group({
          name: `hearth-${name}-burst`,
          max: maxInstances,
          onDemandPercent: Math.round((1 - burst.spotShare) * 100),
          tags: tags("burst"),
        });
      }
      installFakeAws(aws, clients);
      const fleet = createAwsFleet({
        autoScaling: new AutoScalingClient({ region: "us-east-1" }),
        ec2: new EC2Client({ region: "us-east-1" }),
        ssm: new SSMClient({ region: "us-east-1" }),
        groups: {
          x86: { warm: "hearth-x86-warm", burst: "hearth-x86-burst" },
          arm: { warm: "hearth-arm-warm", burst: "hearth-arm-burst" },
        },
        runnerConfigPrefix: "/hearth/test/runners",
        stage: "test",
        account: "123456789012",
        partition: "aws",
        now,
      });
      const settle = async () => {
        await clock.advance(15 * 60_000);
        aws.settle();
      };
      return {
        fleet,
        settle,
        async interrupt(id) {
          aws.interrupt(id);
          await settle();
        },
        runnerConfigPrefix: "/hearth/test/runners",
        async readRunnerConfig(instanceId, parameter) {
          try {
            const out = await aws
              .instanceSsm(instanceId)
              .send(new GetParameterCommand({ Name: parameter, WithDecryption: true }));
            return out.Parameter?.Value;
          } catch (error) {
            // IAM's answer to another instance's parameter, or to one that is gone.
            if (["AccessDeniedException", "ParameterNotFound"].includes((error as Error).name))
              return undefined;
            throw error;
          }
        },
        parameters: () => [...aws.parameters.keys()].sort(),
      };
    },
  },
];

const ids = (instances: readonly FleetInstance[]) => instances.map((i) => i.id).sort();
const where = (observation: FleetObservation, test: (i: FleetInstance) => boolean) =>
  observation.instances.filter(test);
const inService = (o: FleetObservation, group: "warm" | "burst") =>
  where(o, (i) => i.group === group && i.lifecycle === "in-service");
const stopped = (o: FleetObservation) => where(o, (i) => i.group === "warm" && i.lifecycle === "stopped");
const idle = async () => true;

describe.each(drivers)("the fleet port: $name", (kind) => {
  let driver: Driver;
  let fleet: FleetPort;
  beforeEach(() => {
    driver = kind.create(1);
    fleet = driver.fleet;
  });

  it("launches new instances when the warm pool is empty, protected from scale-in from the start", async () => {
    await fleet.setCapacity(pool, { warm: 2, burst: 3, warmPoolSize: 0 });
    await driver.settle();
    const seen = await fleet.observe(pool);
    expect(inService(seen, "warm")).toHaveLength(2);
    expect(inService(seen, "burst")).toHaveLength(3);
    expect(stopped(seen)).toEqual([]);
    expect(seen.instances.every((i) => i.protectedFromScaleIn && i.pool === "x86")).toBe(true);
    // The warm group runs on-demand; the burst group at the pool's spot share (all spot by default).
    expect(inService(seen, "warm").every((i) => i.market === "on-demand")).toBe(true);
    expect(inService(seen, "burst").every((i) => i.market === "spot")).toBe(true);
    expect(seen.groups.map((g) => [g.group, g.desired, g.warmPoolSize])).toEqual([
      ["warm", 2, 0],
      ["burst", 3, null],
    ]);
    // Nothing spills into another pool.
    expect((await fleet.observe(other)).instances).toEqual([]);
  });

  it("resumes stopped warm-pool instances first: they keep their identity, and the pool refills", async () => {
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 2 });
    await driver.settle();
    const parked = ids(stopped(await fleet.observe(pool)));
    expect(parked).toHaveLength(2);

    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 2 });
    await driver.settle();
    const seen = await fleet.observe(pool);
    const [resumed] = inService(seen, "warm");
    expect(inService(seen, "warm")).toHaveLength(1);
    expect(parked).toContain(resumed?.id);
    expect(resumed?.protectedFromScaleIn).toBe(true);
    // The warm pool is back at its size: the other stopped instance, and one new one.
    const nowStopped = ids(stopped(seen));
    expect(nowStopped).toHaveLength(2);
    expect(nowStopped.filter((id) => parked.includes(id))).toHaveLength(1);

    // Both stopped instances resume before anything new launches.
    await fleet.setCapacity(pool, { warm: 3, burst: 0, warmPoolSize: 0 });
    await driver.settle();
    const after = await fleet.observe(pool);
    expect(ids(inService(after, "warm"))).toEqual([...nowStopped, resumed?.id].sort());
    expect(stopped(after)).toEqual([]);
  });

  it("releases only the chosen idle instances: a busy one is refused and stays, protected", async () => {
    await fleet.setCapacity(pool, { warm: 3, burst: 2, warmPoolSize: 0 });
    await driver.settle();
    const before = await fleet.observe(pool);
    const [idleWarm, busyWarm, keptWarm] = ids(inService(before, "warm"));
    const [idleBurst, keptBurst] = ids(inService(before, "burst"));
    const busy = new Set([busyWarm]);

    const result = await fleet.release(
      pool,
      [idleWarm, busyWarm, idleBurst, "i-0000000000000dead"].filter((id): id is string => !!id),
      async (id) => !busy.has(id),
    );
    expect([...result.released].sort()).toEqual([idleWarm, idleBurst].sort());
    expect([...result.refused].sort()).toEqual([busyWarm, "i-0000000000000dead"].sort());

    // Desired capacity drops by what was released; the warm pool makes room for the released one.
    await fleet.setCapacity(pool, { warm: 2, burst: 1, warmPoolSize: 1 });
    await driver.settle();
    const seen = await fleet.observe(pool);
    expect(ids(inService(seen, "warm"))).toEqual([busyWarm, keptWarm].sort());
    expect(ids(inService(seen, "burst"))).toEqual([keptBurst]);
    expect(
      seen.instances.filter((i) => i.lifecycle === "in-service").every((i) => i.protectedFromScaleIn),
    ).toBe(true);
    // The warm group's instance went back into the warm pool, store and all; the burst one is gone.
    expect(ids(stopped(seen))).toEqual([idleWarm]);
    expect(seen.instances.map((i) => i.id)).not.toContain(idleBurst);
  });

  it("removes nothing when desired capacity drops without a release: every instance is protected", async () => {
    await fleet.setCapacity(pool, { warm: 2, burst: 2, warmPoolSize: 0 });
    await driver.settle();
    const before = ids((await fleet.observe(pool)).instances);
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 0 });
    await driver.settle();
    const seen = await fleet.observe(pool);
    expect(ids(seen.instances.filter((i) => i.lifecycle === "in-service"))).toEqual(before);
  });

  it("refuses to release an instance in the warm pool, of another pool, or unknown", async () => {
    await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 1 });
    await fleet.setCapacity(other, { warm: 1, burst: 0, warmPoolSize: 0 });
    await driver.settle();
    const [parked] = ids(stopped(await fleet.observe(pool)));
    const [foreign] = ids((await fleet.observe(other)).instances);
    const asked = [parked, foreign, "i-0000000000000beef"].filter((id): id is string => !!id);
    const result = await fleet.release(pool, asked, idle);
    expect(result.released).toEqual([]);
    expect([...result.refused].sort()).toEqual([...asked].sort());
    const foreignNow = (await fleet.observe(other)).instances.find((i) => i.id === foreign);
    expect(foreignNow?.protectedFromScaleIn).toBe(true);
  });

  it("replaces an interrupted instance while desired capacity says so", async () => {
    await fleet.setCapacity(pool, { warm: 0, burst: 2, warmPoolSize: 0 });
    await driver.settle();
    const before = ids(inService(await fleet.observe(pool), "burst"));
    const [reclaimed, survivor] = before;
    await driver.interrupt(reclaimed as string);
    const seen = await fleet.observe(pool);
    const burst = ids(inService(seen, "burst"));
    expect(burst).toHaveLength(2);
    expect(burst).toContain(survivor);
    expect(seen.instances.map((i) => i.id)).not.toContain(reclaimed);
    expect(inService(seen, "burst").every((i) => i.protectedFromScaleIn)).toBe(true);
    expect(await fleet.lookup(reclaimed as string)).toBeUndefined();
  });

  it("detaches an instance without lowering desired: one replacement, and the instance runs on until terminated", async () => {
    await fleet.setCapacity(pool, { warm: 0, burst: 2, warmPoolSize: 0 });
    await driver.settle();
    const [atRisk, survivor] = ids(inService(await fleet.observe(pool), "burst"));
    const calls = await fleet.detach(pool, atRisk as string);
    expect(calls).toEqual([expect.stringMatching(/^DetachInstances\(.*decrement=false/)]);
    // Done once: a second detach (a retried step, an escalated notice) changes nothing.
    expect(await fleet.detach(pool, atRisk as string)).toEqual([]);
    await driver.settle();
    const seen = await fleet.observe(pool);
    const burst = ids(inService(seen, "burst"));
    // Exactly one replacement: desired capacity is unchanged and the detached instance is not counted.
    expect(burst).toHaveLength(2);
    expect(burst).toContain(survivor);
    expect(burst).not.toContain(atRisk);
    expect(seen.groups.find((g) => g.group === "burst")?.desired).toBe(2);
    expect(await fleet.lookup(atRisk as string)).toBeUndefined();
    expect(await fleet.exists(atRisk as string)).toBe(true);
    // An instance still in its group is never terminated directly: the group would replace it.
    await expect(fleet.terminate(survivor as string)).rejects.toThrow(/still in/);
    expect(await fleet.exists(survivor as string)).toBe(true);

    expect(await fleet.terminate(atRisk as string)).toEqual([
      expect.stringMatching(/^TerminateInstances\(instances=/),
    ]);
    await driver.settle();
    expect(await fleet.exists(atRisk as string)).toBe(false);
    // Nothing launches for it: the group already replaced it.
    expect(ids(inService(await fleet.observe(pool), "burst"))).toEqual(burst);
  });

  it("lists the pool's instances by Hearth's tags: in its groups, in its warm pool, and detached until terminated", async () => {
    await fleet.setCapacity(pool, { warm: 1, burst: 1, warmPoolSize: 1 });
    await fleet.setCapacity(other, { warm: 0, burst: 1, warmPoolSize: 0 });
    await driver.settle();
    const observed = await fleet.observe(pool);
    const tagged = await (fleet.tagged as NonNullable<FleetPort["tagged"]>)(pool);
    expect(ids(tagged)).toEqual(ids(observed.instances));
    expect(tagged.every((i) => i.pool === "x86")).toBe(true);
    const parked = stopped(observed)[0];
    expect(tagged.find((i) => i.id === parked?.id)?.lifecycle).toBe("stopped");
    const [detached] = ids(inService(observed, "burst"));
    await fleet.detach(pool, detached as string);
    await driver.settle();
    const afterDetach = await (fleet.tagged as NonNullable<FleetPort["tagged"]>)(pool);
    // No group holds it now; EC2 still runs it, with the tags it launched with.
    expect((await fleet.observe(pool)).instances.map((i) => i.id)).not.toContain(detached);
    expect(afterDetach.find((i) => i.id === detached)).toMatchObject({
      pool: "x86",
      lifecycle: "in-service",
    });
    await fleet.terminate(detached as string);
    await driver.settle();
    expect(ids(await (fleet.tagged as NonNullable<FleetPort["tagged"]>)(pool))).not.toContain(detached);
  });

  it("detaches only an instance of the pool's groups", async () => {
    await fleet.setCapacity(other, { warm: 0, burst: 1, warmPoolSize: 0 });
    await driver.settle();
    const [foreign] = ids((await fleet.observe(other)).instances);
    await expect(fleet.detach(pool, foreign as string)).rejects.toThrow(/not in a group of pool x86/);
    expect(await fleet.lookup(foreign as string)).toBeDefined();
    // Unknown to every group: nothing to detach.
    expect(await fleet.detach(pool, "i-0000000000000beef")).toEqual([]);
    expect(await fleet.exists("i-0000000000000beef")).toBe(false);
  });

  it("looks up an instance of one of its groups, and nothing else", async () => {
    await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 0 });
    await driver.settle();
    const [instance] = inService(await fleet.observe(pool), "warm");
    expect(await fleet.lookup(instance?.id as string)).toMatchObject({
      id: instance?.id,
      pool: "x86",
      group: "warm",
      lifecycle: "in-service",
      protectedFromScaleIn: true,
    });
    expect(await fleet.lookup("i-0000000000000beef")).toBeUndefined();
  });

  it("lets AWS choose which stopped instance resumes: across seeds, not always the same one", async () => {
    const firstOfThree = new Set<number>();
    for (let seed = 1; seed <= 12; seed++) {
      const { fleet, settle } = kind.create(seed);
      await fleet.setCapacity(pool, { warm: 0, burst: 0, warmPoolSize: 3 });
      await settle();
      const parked = ids(stopped(await fleet.observe(pool)));
      await fleet.setCapacity(pool, { warm: 1, burst: 0, warmPoolSize: 0 });
      await settle();
      const [resumed] = inService(await fleet.observe(pool), "warm");
      firstOfThree.add(parked.indexOf(resumed?.id as string));
    }
    expect(firstOfThree.has(-1)).toBe(false);
    expect(firstOfThree.size).toBeGreaterThan(1);
  });

  describe("runner configs", () => {
    const secret = "eyJqaXQiOiJzZWNyZXQtY29uZmlnLWZvci1zbG90LTAifQ==";
    let mine: string;
    let theirs: string;
    beforeEach(async () => {
      await fleet.setCapacity(pool, { warm: 2, burst: 0, warmPoolSize: 0 });
      await driver.settle();
      [mine = "", theirs = ""] = ids(inService(await fleet.observe(pool), "warm"));
    });

    it("hands a config that only its own instance can read, and never returns the value", async () => {
      const handed = await fleet.handRunnerConfig({
        instanceId: mine,
        slot: 0,
        runnerId: 101,
        encodedJitConfig: secret,
      });
      expect(handed.parameter).toBe(`${driver.runnerConfigPrefix}/${mine}/0-101`);
      expect(handed.calls.length).toBeGreaterThan(0);
      expect(handed.calls.join("\n")).toContain(handed.parameter);
      expect(JSON.stringify(handed)).not.toContain(secret);
      expect(await driver.readRunnerConfig(mine, handed.parameter)).toBe(secret);
      // Another instance of the fleet asks for it by its exact name: nothing.
      expect(await driver.readRunnerConfig(theirs, handed.parameter)).toBeUndefined();
    });

    it("gives each runner of an instance its own parameter", async () => {
      const first = await fleet.handRunnerConfig({
        instanceId: mine,
        slot: 0,
        runnerId: 1,
        encodedJitConfig: "a-config",
      });
      const second = await fleet.handRunnerConfig({
        instanceId: mine,
        slot: 1,
        runnerId: 2,
        encodedJitConfig: "b-config",
      });
      // The slot's next runner, after the first one's job.
      const next = await fleet.handRunnerConfig({
        instanceId: mine,
        slot: 0,
        runnerId: 3,
        encodedJitConfig: "c-config",
      });
      expect(new Set([first.parameter, second.parameter, next.parameter]).size).toBe(3);
      expect(await driver.readRunnerConfig(mine, second.parameter)).toBe("b-config");
      expect(await driver.readRunnerConfig(mine, next.parameter)).toBe("c-config");
    });

    it("hands a retried config once: the same parameter, readable as before", async () => {
      const handOver = { instanceId: mine, slot: 1, runnerId: 77, encodedJitConfig: secret };
      const first = await fleet.handRunnerConfig(handOver);
      const again = await fleet.handRunnerConfig(handOver);
      expect(again.parameter).toBe(first.parameter);
      expect(JSON.stringify(again)).not.toContain(secret);
      expect(driver.parameters()).toEqual([first.parameter]);
      expect(await driver.readRunnerConfig(mine, first.parameter)).toBe(secret);
      expect(await driver.readRunnerConfig(theirs, first.parameter)).toBeUndefined();
    });

    it("withdraws a config: nobody reads it after, and a second withdrawal is fine", async () => {
      const { parameter } = await fleet.handRunnerConfig({
        instanceId: mine,
        slot: 0,
        runnerId: 5,
        encodedJitConfig: secret,
      });
      const calls = await fleet.withdrawRunnerConfig(parameter);
      expect(calls.join("\n")).toContain(parameter);
      expect(await driver.readRunnerConfig(mine, parameter)).toBeUndefined();
      expect(driver.parameters()).toEqual([]);
      expect((await fleet.withdrawRunnerConfig(parameter)).length).toBeGreaterThan(0);
    });

    it("refuses a malformed hand-over or withdrawal, and changes nothing", async () => {
      await expect(
        fleet.handRunnerConfig({ instanceId: "i-../../x", slot: 0, runnerId: 1, encodedJitConfig: secret }),
      ).rejects.toThrow(/is not an instance id/);
      await expect(
        fleet.handRunnerConfig({ instanceId: mine, slot: 0, runnerId: -1, encodedJitConfig: secret }),
      ).rejects.toThrow(/not a runner id/);
      await expect(
        fleet.handRunnerConfig({ instanceId: mine, slot: 0, runnerId: 1, encodedJitConfig: "" }),
      ).rejects.toThrow(/the config is empty/);
      await expect(fleet.withdrawRunnerConfig("/hearth/test/pools/x86/credentials")).rejects.toThrow(
        /not a runner config parameter/,
      );
      expect(driver.parameters()).toEqual([]);
    });
  });
});
