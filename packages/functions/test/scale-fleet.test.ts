import type { FleetPort } from "@hearth/core/fleet";
import { SimulatedFleet } from "@hearth/core/simulation/fleet";
import { type ForgeJob, githubDelivery, workflowJobPayload } from "@hearth/core/simulation/forge";
import { afterEach, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import { describeJobs, githubJob, pass, secrets, send, startTestHearth } from "./support/local";
import { autoScalingPools } from "./support/pools";

/** ScaleFleet's ASL as local mode runs it: retries, failures, and when a webhook starts a run. */

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

const job = (id: string): ForgeJob => githubJob(id, "5");

async function queue(h: LocalHearth, now: number, ...jobs: ForgeJob[]) {
  for (const each of jobs) {
    const request = githubDelivery(
      workflowJobPayload(each, "queued", { createdAt: new Date(now).toISOString() }),
      secrets,
    );
    expect((await send(h, request)).status).toBe(202);
  }
  await h.idle();
}

/** The simulated fleet, with `setCapacity` failing as told. */
function faultyFleet(sim: SimulatedFleet, fail: () => Error | undefined): FleetPort {
  return {
    observe: (pool) => sim.observe(pool),
    lookup: (id) => sim.lookup(id),
    release: (pool, ids, stillIdle) => sim.release(pool, ids, stillIdle),
    handRunnerConfig: (handOver) => sim.handRunnerConfig(handOver),
    withdrawRunnerConfig: (parameter) => sim.withdrawRunnerConfig(parameter),
    detach: (pool, id) => sim.detach(pool, id),
    terminate: (id) => sim.terminate(id),
    exists: (id) => sim.exists(id),
    async setCapacity(pool, target) {
      const error = fail();
      if (error) throw error;
      return sim.setCapacity(pool, target);
    },
  };
}

describe("ScaleFleet", () => {
  it("retries a throttled step, then applies the plan", async () => {
    const { FakeClock } = await import("@hearth/core/clock");
    const clock = new FakeClock();
    const sim = new SimulatedFleet({ pools: autoScalingPools, clock, initialWarmPool: 1 });
    let throttles = 2;
    const throttled = () => {
      if (throttles-- <= 0) return undefined;
      return Object.assign(new Error("Rate exceeded"), { name: "Throttling" });
    };
    ({ hearth } = await startTestHearth({
      clock,
      fleet: faultyFleet(sim, throttled),
      pools: autoScalingPools,
    }));
    await queue(hearth, clock.now(), job("1"));
    expect(throttles).toBe(-1); // two throttled attempts, then the one that went through
    expect(sim.callLog).toContain("SetDesiredCapacity(group=sim-x86_64-warm, desired=1)");
    expect((await hearth.journal.latest(5)).map((entry) => entry.kind)).toEqual(["decision"]);
  });

  it("catches a failure, journals it, and frees the pool for the next run", async () => {
    const { FakeClock } = await import("@hearth/core/clock");
    const clock = new FakeClock();
    const sim = new SimulatedFleet({ pools: autoScalingPools, clock, initialWarmPool: 1 });
    let broken = true;
    const denied = () =>
      broken
        ? Object.assign(new Error("not authorized to SetDesiredCapacity"), { name: "AccessDenied" })
        : undefined;
    ({ hearth } = await startTestHearth({ clock, fleet: faultyFleet(sim, denied), pools: autoScalingPools }));
    await queue(hearth, clock.now(), job("2"));
    const [failure] = await hearth.journal.latest(5);
    expect(failure).toMatchObject({ kind: "error", pool: "x86_64" });
    expect(failure?.reason).toContain("ScaleFleet failed: AccessDenied");
    // The lease was released: the next tick starts a run, and with the fault gone it scales.
    broken = false;
    await hearth.tick();
    await hearth.idle();
    expect(sim.callLog).toContain("SetDesiredCapacity(group=sim-x86_64-warm, desired=1)");
  });

  /**
   * Two jobs, one after the other, with one stopped instance (two slots): the runs started after each
   * webhook, and the jobs' statuses 35 s later.
   */
  async function twoJobs(placement: "any" | "warm-first") {
    const pools = autoScalingPools.map((pool) => ({ ...pool, placement }));
    const started = await startTestHearth({ initialWarmPool: 1, pools });
    hearth = started.hearth;
    const { clock } = started;
    await describeJobs(hearth, [job("3"), job("4")], 600);
    await queue(hearth, clock.now(), job("3"));
    const afterFirst = hearth.scaleFleet.executions;
    await queue(hearth, clock.now(), job("4"));
    const afterSecond = hearth.scaleFleet.executions;
    await pass(hearth, clock, 35);
    const statuses = await Promise.all(
      [job("3"), job("4")].map(async (j) => (await hearth?.ledger.get(j))?.status),
    );
    return { runs: [afterFirst, afterSecond], statuses };
  }

  it("under placement any, starts no run for a job that capacity already booting can take", async () => {
    // The resumed instance has two slots; the second job takes the spare one.
    expect(await twoJobs("any")).toEqual({ runs: [1, 1], statuses: ["running", "running"] });
  });

  it("under warm-first placement, starts a run for each job: only a run resumes the store warm for it", async () => {
    // A spare slot is left, but it covers no job: the run decides whether a warm store resumes.
    expect(await twoJobs("warm-first")).toEqual({ runs: [1, 2], statuses: ["running", "running"] });
  });
});

describe("the simulated fleet under a spot interruption", () => {
  it("warns the agent, drains the instance, terminates it two minutes later, and loses its job", async () => {
    const started = await startTestHearth({ initialWarmPool: 0 });
    hearth = started.hearth;
    const { clock } = started;
    const fleet = hearth.simulation?.fleet;
    if (!fleet) throw new Error("expected the simulated fleet");
    await describeJobs(hearth, [job("5")], 3600);
    await queue(hearth, clock.now(), job("5"));
    await pass(hearth, clock, 90); // a cold spot launch boots in 75 s and takes the job
    const spot = fleet
      .all()
      .find((instance) => instance.market === "spot" && instance.lifecycle === "in-service");
    if (!spot) throw new Error("expected a spot instance in service");
    expect(await hearth.ledger.get(job("5"))).toMatchObject({ status: "running", instanceId: spot.id });

    await fleet.interrupt(spot.id);
    await hearth.idle();
    expect((await hearth.registry.get(spot.id))?.runner).toBe("draining");
    expect((await hearth.journal.latest(10)).some((entry) => entry.kind === "interruption")).toBe(true);

    await pass(hearth, clock, 125);
    expect(fleet.get(spot.id)).toBeUndefined();
    // The forge sees the runner go away under the job.
    expect(await hearth.ledger.get(job("5"))).toMatchObject({ status: "completed", conclusion: "failure" });
  });
});
