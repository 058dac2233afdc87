import { FakeClock } from "@hearth/core/clock";
import type { FleetPort } from "@hearth/core/fleet";
import { defaultPools } from "@hearth/core/pools";
import { LEASE_SECONDS, scaleLease } from "@hearth/core/scaling";
import { SimulatedFleet } from "@hearth/core/simulation/fleet";
import { type ForgeJob, githubDelivery, workflowJobPayload } from "@hearth/core/simulation/forge";
import { afterEach, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import type { Logger } from "../src/log";
import { githubJob, secrets, send, startTestHearth } from "./support/local";

/** A ScaleFleet run that died without reaching Finish or its Catch: how long its lease holds a pool. */

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

const job = (id: string): ForgeJob => githubJob(id, "9");

function capture() {
  const lines: Array<{ message: string; fields?: Record<string, unknown> }> = [];
  const log: Logger = {
    info: (message, fields) => lines.push({ message, fields }),
    warn: (message, fields) => lines.push({ message, fields }),
    error: (message, fields) => lines.push({ message, fields }),
  };
  return { lines, log };
}

async function queue(h: LocalHearth, clock: FakeClock, id: string) {
  const request = githubDelivery(
    workflowJobPayload(job(id), "queued", { createdAt: new Date(clock.now()).toISOString() }),
    secrets,
  );
  expect((await send(h, request)).status).toBe(202);
  await h.idle();
}

describe("the ScaleFleet lease", () => {
  it("outlives a dead run by at most 90 s, and a webhook that finds it held says so once", async () => {
    expect(LEASE_SECONDS).toBe(90);
    const clock = new FakeClock();
    const { lines, log } = capture();
    ({ hearth } = await startTestHearth({ clock, log, initialWarmPool: 1 }));
    // A run took the pool's lease and died (its Lambda or its host killed): it never renews it.
    expect(await hearth.leases.acquire(scaleLease("x86_64"), "dead-run", LEASE_SECONDS)).toBe(true);

    await queue(hearth, clock, "1");
    await queue(hearth, clock, "2");
    expect(hearth.scaleFleet.executions).toBe(0);
    const said = lines.filter((line) => line.message.includes("already holds the pool's lease"));
    expect(said).toHaveLength(1);
    expect(said[0]?.fields).toMatchObject({ pool: "x86_64", holder: "dead-run", seconds: 90 });

    // Past the bound, the next tick (or webhook) starts a run, which scales for the queue.
    await clock.advance((LEASE_SECONDS + 1) * 1000);
    await hearth.tick();
    await hearth.idle();
    expect(hearth.scaleFleet.executions).toBeGreaterThan(0);
    const decisions = (await hearth.journal.latest(5)).filter((entry) => entry.kind === "decision");
    expect(decisions.map((entry) => entry.pool)).toContain("x86_64");
  });

  it("a run that loses its lease while it works stops without applying", async () => {
    const clock = new FakeClock();
    const sim = new SimulatedFleet({ pools: defaultPools, clock, initialWarmPool: 1 });
    let steal: (() => Promise<void>) | undefined;
    // While this run observes, it stalls past its lease, and another run takes the pool.
    const fleet: FleetPort = {
      async observe(pool) {
        const seen = await sim.observe(pool);
        await steal?.();
        return seen;
      },
      lookup: (id) => sim.lookup(id),
      release: (pool, ids, stillIdle) => sim.release(pool, ids, stillIdle),
      setCapacity: (pool, target) => sim.setCapacity(pool, target),
      handRunnerConfig: (handOver) => sim.handRunnerConfig(handOver),
      withdrawRunnerConfig: (parameter) => sim.withdrawRunnerConfig(parameter),
      detach: (pool, id) => sim.detach(pool, id),
      terminate: (id) => sim.terminate(id),
      exists: (id) => sim.exists(id),
    };
    ({ hearth } = await startTestHearth({ clock, fleet }));
    const leases = hearth.leases;
    steal = async () => {
      steal = undefined;
      await clock.advance((LEASE_SECONDS + 1) * 1000);
      expect(await leases.acquire(scaleLease("x86_64"), "other-run", LEASE_SECONDS)).toBe(true);
    };
    await queue(hearth, clock, "3");
    expect(hearth.scaleFleet.executions).toBe(1);
    expect(sim.callLog).toEqual([]);
    expect(await hearth.journal.latest(5)).toEqual([]);
    expect((await leases.get(scaleLease("x86_64")))?.holder).toBe("other-run");
  });

  it("a job that arrives while a run waits between iterations starts a new run, which takes the pool", async () => {
    const clock = new FakeClock();
    // Two iterations a run, and a real wait long enough to send a webhook during it.
    ({ hearth } = await startTestHearth({ clock, initialWarmPool: 2, maxIterations: 2, waitMs: 60_000 }));
    const lease = scaleLease("x86_64");
    const request = githubDelivery(
      workflowJobPayload(job("11"), "queued", { createdAt: new Date(clock.now()).toISOString() }),
      secrets,
    );
    expect((await send(hearth, request)).status).toBe(202);
    // The first run asks for capacity for job 11, then waits: its Apply said until when.
    let held = await hearth.leases.get(lease);
    for (let tries = 0; held?.waitingUntil === undefined && tries < 200; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      held = await hearth.leases.get(lease);
    }
    expect([5_000, 15_000]).toContain((held?.waitingUntil ?? 0) - clock.now());
    const first = held?.holder;
    expect(hearth.scaleFleet.executions).toBe(1);

    // Job 12 supersedes the waiting run: a second execution takes the lease and observes at once.
    const second = githubDelivery(
      workflowJobPayload(job("12"), "queued", { createdAt: new Date(clock.now()).toISOString() }),
      secrets,
    );
    expect((await send(hearth, second)).status).toBe(202);
    expect(hearth.scaleFleet.executions).toBe(2);
    // Its first Observe takes the lease; it completes an iteration (Observe, Plan, Apply) and
    // announces its own wait, while the old run still sits in its 60 s one: it will find the lease
    // lost when it wakes.
    held = await hearth.leases.get(lease);
    for (
      let tries = 0;
      (held?.holder === first || held?.waitingUntil === undefined) && tries < 200;
      tries++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      held = await hearth.leases.get(lease);
    }
    expect(held?.holder).not.toBe(first);
    expect(held?.waitingUntil).toBeGreaterThan(clock.now());
  });
});
