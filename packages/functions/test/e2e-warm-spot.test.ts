import type { FakeClock } from "@hearth/core/clock";
import { type PoolConfig, poolConfigSchema } from "@hearth/core/pools";
import type { SimulatedFleet } from "@hearth/core/simulation/fleet";
import { type ForgeJob, githubDelivery, workflowJobPayload } from "@hearth/core/simulation/forge";
import { describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import { closeAfterEach, describeJobs, pass, secrets, send, startTestHearth } from "./support/local";

/**
 * A spot warm group (`warm.market: spot`) end to end in local mode: Hearth keeps its stopped stores
 * itself and names which one starts, so a job whose key one stopped store holds runs on that store;
 * and a persistent spot instance's interruption stops it, so its store outlives the interruption.
 */

const pool: PoolConfig = poolConfigSchema.parse({
  name: "x86",
  labels: ["nix", "x86_64-linux"],
  architecture: "x86_64",
  instanceTypes: ["c6a.xlarge"],
  untagged: true,
  // One slot each: which instance runs a job is which store it runs on.
  slotsPerInstance: 1,
  maxInstances: 3,
  warm: { warmPoolSize: 3, market: "spot" },
  boot: { coldSeconds: 10, warmSeconds: 5 },
  idleTimeouts: { warmSeconds: 30, burstSeconds: 600 },
});

const closing = closeAfterEach();

interface Setup {
  h: LocalHearth;
  clock: FakeClock;
  fleet: SimulatedFleet;
}

/** Three stopped spot stores, empty. Every start finds spot capacity unless a test says otherwise. */
async function start(): Promise<Setup> {
  const started = await startTestHearth({ pools: [pool], initialWarmPool: 3, spotStartSuccess: 1 });
  closing(started.hearth);
  const fleet = started.hearth.simulation?.fleet;
  if (!fleet) throw new Error("expected the simulated fleet");
  return { h: started.hearth, clock: started.clock, fleet };
}

let nextId = 97_100;
/** A GitHub job of `name`: jobs of one name share a cache key (the ledger's `project` and name). */
function job(name: string): ForgeJob {
  nextId += 1;
  return {
    source: "github",
    id: String(nextId),
    project: "acme/app",
    projectId: "77",
    pipelineId: String(nextId),
    name,
    labels: ["nix", "x86_64-linux"],
  };
}

async function queue({ h, clock }: Setup, forgeJob: ForgeJob, seconds: number): Promise<void> {
  await describeJobs(h, [forgeJob], seconds);
  const createdAt = new Date(clock.now()).toISOString();
  const response = await send(
    h,
    githubDelivery(workflowJobPayload(forgeJob, "queued", { createdAt }), secrets),
  );
  expect(response.status, await response.clone().text()).toBeLessThan(300);
  await h.idle();
}

const recorded = ({ h }: Setup, forgeJob: ForgeJob) => h.ledger.get({ source: "github", id: forgeJob.id });

/** Moves time on (5 s steps, ticking as the periodic tick would) until `check` holds. */
async function until(s: Setup, seconds: number, what: string, check: () => Promise<boolean>) {
  for (let t = 0; t <= seconds; t += 5) {
    if (await check()) return;
    if (t % 15 === 0) await s.h.tick();
    await pass(s.h, s.clock, 5);
  }
  throw new Error(`${what}: not within ${seconds} s`);
}

/** Passes time until the job has run and completed; the instance it ran on. */
async function ranOn(s: Setup, forgeJob: ForgeJob, seconds = 180): Promise<string> {
  await until(s, seconds, `job ${forgeJob.id} completed`, async () => {
    return (await recorded(s, forgeJob))?.status === "completed";
  });
  return (await recorded(s, forgeJob))?.instanceId as string;
}

const withState = ({ fleet }: Setup, lifecycle: string) =>
  fleet
    .all()
    .filter((instance) => instance.lifecycle === lifecycle)
    .map((instance) => instance.id)
    .sort();

/** Runs one job of each name at once, then lets the instances go idle and stop: name → its store. */
async function warmStores(s: Setup, names: readonly string[]): Promise<Map<string, string>> {
  const warming = names.map((name) => job(name));
  for (const forgeJob of warming) await queue(s, forgeJob, 60);
  const warmFor = new Map<string, string>();
  for (const [index, forgeJob] of warming.entries())
    warmFor.set(names[index] as string, await ranOn(s, forgeJob));
  expect(new Set(warmFor.values()).size).toBe(names.length);
  await until(
    s,
    300,
    "the idle instances stopped",
    async () => withState(s, "stopped").length === names.length,
  );
  return warmFor;
}

describe("a spot warm group in local mode", () => {
  it("runs a job whose key one stopped store holds on that store, started by id", {
    timeout: 120_000,
  }, async () => {
    const s = await start();
    const names = ["ci / alpha", "ci / beta", "ci / gamma"];
    const warmFor = await warmStores(s, names);
    // The registry keeps each stopped store's keys.
    for (const [name, id] of warmFor) {
      expect((await s.h.registry.get(id))?.cacheKeys.some((key) => key.includes(name))).toBe(true);
    }
    expect(s.fleet.callLog.filter((call) => call.startsWith("StopInstances"))).not.toHaveLength(0);

    // One key at a time, each once all three are stopped again: the store warm for it starts, and
    // no other. (Starting any stopped store, or the most recent one, would not pick both.)
    for (const name of ["ci / beta", "ci / alpha"]) {
      const target = warmFor.get(name) as string;
      const from = s.fleet.callLog.length;
      const forgeJob = job(name);
      await queue(s, forgeJob, 10);
      expect(await ranOn(s, forgeJob)).toBe(target);
      expect((await recorded(s, forgeJob))?.store?.origin).toBe("warm");
      const calls = s.fleet.callLog.slice(from);
      expect(calls.filter((call) => call.startsWith("StartInstances"))).toEqual([
        `StartInstances(instances=${target})`,
      ]);
      expect(calls.filter((call) => call.startsWith("RunInstances"))).toEqual([]);
      // The journal shows the plan naming it.
      const decisions = (await s.h.journal.latest(200)).filter((entry) => entry.kind === "decision");
      expect(decisions.some((entry) => entry.details.resume === target)).toBe(true);
      await until(s, 300, "the instance stopped again", async () => withState(s, "stopped").length === 3);
    }
  });
});
