import type { PoolConfig } from "@hearth/core/pools";
import type { ForgeJob } from "@hearth/core/simulation/forge";
import type { SimulatedForgeRunners } from "@hearth/core/simulation/forge/runners";
import { describe, expect, it } from "vitest";
import {
  closeAfterEach,
  type LocalSetup,
  localPool,
  namedJobs,
  pass,
  queueGitHubJob,
  startTestHearth,
} from "./support/local";

/**
 * Warm-first placement end to end in local mode: the simulated GitHub hands a queued job to any
 * listening runner, picked at random; Hearth places jobs only by which slots listen (the heartbeat's
 * `hold`), so a job whose key one store holds runs on that store.
 */

const poolWith = (placement: "warm-first" | "any"): PoolConfig =>
  localPool({
    // One slot each: which instance runs a job is which store it runs on.
    slotsPerInstance: 1,
    maxInstances: 4,
    warm: { minReady: 4, warmPoolSize: 4 },
    boot: { coldSeconds: 10, warmSeconds: 5 },
    idleTimeouts: { warmSeconds: 600, burstSeconds: 600 },
    placement,
  });

const closing = closeAfterEach();

interface Setup extends LocalSetup {
  forge: SimulatedForgeRunners;
}

/** Four instances of the pool in service and reporting, their stores empty. */
async function start(placement: "warm-first" | "any"): Promise<Setup> {
  const started = await startTestHearth({ pools: [poolWith(placement)], initialWarmPool: 4 });
  closing(started.hearth);
  const simulation = started.hearth.simulation;
  if (!simulation) throw new Error("expected the simulated fleet");
  const setup = { h: started.hearth, clock: started.clock, fleet: simulation.fleet, forge: simulation.forge };
  // minReady resumes the four; each boots and reports.
  await setup.h.tick();
  await pass(setup.h, setup.clock, 30);
  expect(inService(setup)).toHaveLength(4);
  return setup;
}

const inService = ({ fleet }: Setup) =>
  fleet
    .all()
    .filter((instance) => instance.lifecycle === "in-service")
    .map((instance) => instance.id);

const job = namedJobs(9100);
const queue = queueGitHubJob;

const recorded = ({ h }: Setup, forgeJob: ForgeJob) => h.ledger.get({ source: "github", id: forgeJob.id });

/** Passes time until the job has run and completed; the instance it ran on. */
async function ranOn(setup: Setup, forgeJob: ForgeJob, seconds = 120): Promise<string> {
  for (let waited = 0; waited < seconds; waited += 5) {
    if ((await recorded(setup, forgeJob))?.status === "completed") break;
    await pass(setup.h, setup.clock, 5);
  }
  const done = await recorded(setup, forgeJob);
  expect(done?.status).toBe("completed");
  return done?.instanceId as string;
}

/** The answer to a heartbeat sent as the idle instance's agent (version 3). */
async function answerTo({ h, fleet }: Setup, instanceId: string) {
  const token = fleet.get(instanceId)?.token as string;
  const response = await fetch(`${h.url}/agent/heartbeat`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({
      protocol: 3,
      instanceId,
      runner: "ready",
      slots: 1,
      runningJobs: [],
      cacheKeys: [],
      storeBytes: null,
      interruption: null,
      slotRunners: [],
      claiming: false,
    }),
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { instructions: { hold: boolean; runnerConfigs: unknown[] } })
    .instructions;
}

/** The instances with a GitHub runner listening (started, not stopped, no job). */
const listening = ({ forge }: Setup) =>
  new Set(
    forge.github
      .all()
      .filter((runner) => runner.startedBy && !runner.job && !runner.stopped)
      .map((runner) => runner.startedBy?.instanceId),
  );

describe("warm-first placement in local mode", () => {
  it("runs each job on the store warm for it; a job no store holds runs on a cold one", async () => {
    const setup = await start("warm-first");
    // Nothing queued: no slot listens, and an idle instance's answer says hold.
    expect(listening(setup).size).toBe(0);
    expect((await answerTo(setup, inService(setup)[0] as string)).hold).toBe(true);

    // Four jobs of four keys, queued together, long enough that all four run at once: each of the
    // four one-slot instances runs one, and its store is then warm for that key.
    const names = ["ci / alpha", "ci / beta", "ci / gamma", "ci / delta"];
    const warming = names.map((name) => job(name));
    for (const forgeJob of warming) await queue(setup, forgeJob, 60);
    const warmFor = new Map<string, string>();
    for (const [index, forgeJob] of warming.entries())
      warmFor.set(names[index] as string, await ranOn(setup, forgeJob));
    expect(new Set(warmFor.values()).size).toBe(4);
    await pass(setup.h, setup.clock, 20);
    expect(listening(setup).size).toBe(0);

    // One at a time, a job of three of the keys: each runs on the one store warm for it. A forge
    // that hands it to any of the four idle listening slots at random would do so for all three
    // with probability (1/4)^3 = 1/64.
    for (const name of names.slice(0, 3)) {
      const forgeJob = job(name);
      await queue(setup, forgeJob, 10);
      expect(await ranOn(setup, forgeJob)).toBe(warmFor.get(name));
      expect((await recorded(setup, forgeJob))?.store?.origin).toBe("warm");
    }

    // A key no store holds: cold stores listen, and it runs.
    const cold = job("ci / epsilon");
    await queue(setup, cold, 10);
    expect(inService(setup)).toContain(await ranOn(setup, cold));
    expect((await recorded(setup, cold))?.store?.origin).toBe("cold");
  });

  it("with `placement: any`, every idle slot listens with nothing queued", async () => {
    const setup = await start("any");
    expect(listening(setup).size).toBe(4);
    // An answer to an idle instance says no hold (this one also hands it runner configs).
    const answer = await answerTo(setup, inService(setup)[0] as string);
    expect(answer.hold).toBe(false);
  });
});
