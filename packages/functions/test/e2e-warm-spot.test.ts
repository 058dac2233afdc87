import type { Job } from "@hearth/core/jobs";
import type { PoolConfig } from "@hearth/core/pools";
import type { ForgeJob } from "@hearth/core/simulation/forge";
import { describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
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
 * A spot warm group (`warm.market: spot`) end to end in local mode: Hearth keeps its stopped stores
 * itself and names which one starts, so a job whose key one stopped store holds runs on that store;
 * and a persistent spot instance's interruption stops it, so its store outlives the interruption.
 */

const pool: PoolConfig = localPool({
  // One slot each: which instance runs a job is which store it runs on.
  slotsPerInstance: 1,
  maxInstances: 3,
  warm: { warmPoolSize: 3, market: "spot" },
  boot: { coldSeconds: 10, warmSeconds: 5 },
  idleTimeouts: { warmSeconds: 30, burstSeconds: 600 },
  // One retry: it is the job's last, held, and run on demand.
  retryInterrupted: 1,
});

const closing = closeAfterEach();

type Setup = LocalSetup;

/** `stopped` stopped spot stores, empty. Every start finds spot capacity. */
async function start(stopped = 3): Promise<Setup> {
  const started = await startTestHearth({
    pools: [pool],
    initialWarmPool: stopped,
    spotStartSuccess: 1,
    interruptionWaitMs: 5,
  });
  closing(started.hearth);
  const fleet = started.hearth.simulation?.fleet;
  if (!fleet) throw new Error("expected the simulated fleet");
  return { h: started.hearth, clock: started.clock, fleet };
}

const job = namedJobs(97_100);
const queue = queueGitHubJob;

const recorded = ({ h }: Setup, forgeJob: ForgeJob) => h.ledger.get({ source: "github", id: forgeJob.id });

/** Moves time on (5 s steps, ticking as the periodic tick would) until `check` holds. */
async function until(s: Setup, seconds: number, what: string, check: () => Promise<boolean>) {
  for (let t = 0; t <= seconds; t += 5) {
    if (await check()) return;
    if (t % 15 === 0) await s.h.tick();
    await pass(s.h, s.clock, 5);
  }
  if (process.env.E2E_TRACE) {
    console.log(s.fleet.callLog.filter((call) => !call.includes("Parameter")).join("\n"));
    console.log((await s.h.journal.latest(40)).map((entry) => entry.reason).join("\n"));
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

/** Every job the ledger holds that retries `job` (directly). */
async function retriesOf(h: LocalHearth, forgeJob: ForgeJob): Promise<Job[]> {
  const all = await h.ledger.arrivedSince(new Date(h.clock.now() - 2 * 86_400_000));
  return all.filter((j) => j.source === forgeJob.source && j.retryOf === forgeJob.id);
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

    // One key at a time, each once all three are stopped again: the store warm for it starts first,
    // by id, and runs the job. (Starting the stores in any other order, or the most recent one
    // first, would not pick both.) The others start after it, as many as an Auto Scaling warm pool
    // would resume for warmth: with one store of three warm for the key, all three.
    for (const name of ["ci / beta", "ci / alpha"]) {
      const target = warmFor.get(name) as string;
      const from = s.fleet.callLog.length;
      const forgeJob = job(name);
      await queue(s, forgeJob, 10);
      expect(await ranOn(s, forgeJob)).toBe(target);
      expect((await recorded(s, forgeJob))?.store?.origin).toBe("warm");
      const calls = s.fleet.callLog.slice(from);
      const starts = calls.filter((call) => call.startsWith("StartInstances"));
      expect(starts[0]).toBe(`StartInstances(instances=${target})`);
      expect(starts.slice(1).sort()).toEqual(
        [...warmFor.values()]
          .filter((id) => id !== target)
          .map((id) => `StartInstances(instances=${id})`)
          .sort(),
      );
      expect(calls.filter((call) => call.startsWith("RunInstances"))).toEqual([]);
      // The journal shows the plan naming it first.
      const decisions = (await s.h.journal.latest(200)).filter((entry) => entry.kind === "decision");
      expect(decisions.some((entry) => String(entry.details.resume ?? "").split(" ")[0] === target)).toBe(
        true,
      );
      await until(s, 300, "the instance stopped again", async () => withState(s, "stopped").length === 3);
    }
  });

  it("keeps a spot instance's store through its interruption: it stops, and runs the key warm once capacity returns", {
    timeout: 240_000,
  }, async () => {
    const s = await start();
    const { h, fleet } = s;
    // Three stores, each warm for its key (a load of three jobs at once, which the warm group keeps).
    const warmFor = await warmStores(s, ["ci / alpha", "ci / beta", "ci / gamma"]);
    const store = warmFor.get("ci / alpha") as string;
    const keys = (await h.registry.get(store))?.cacheKeys as string[];
    expect(keys.length).toBeGreaterThan(0);
    // A job of the key that outlasts the two minutes' warning runs on its store.
    const long = job("ci / alpha");
    await queue(s, long, 200);
    await until(s, 60, "the long job running", async () => (await recorded(s, long))?.status === "running");
    expect((await recorded(s, long))?.instanceId).toBe(store);
    expect(fleet.get(store)).toMatchObject({ group: "warm", market: "spot" });

    await fleet.interrupt(store, "stop");
    // Drained (the job marked, for its retry), nothing detached; stopped at the deadline, store kept.
    await until(s, 60, "drained", async () => (await h.registry.get(store))?.interruption?.action === "stop");
    await until(s, 180, "stopped", async () => fleet.get(store)?.lifecycle === "stopped");
    expect(fleet.get(store)?.stoppedByInterruption).toBe(true);
    const aimedAtStore = fleet.callLog.filter(
      (call) =>
        /^(DetachInstances|TerminateInstances|CancelSpotInstanceRequests)/.test(call) && call.includes(store),
    );
    expect(aimedAtStore).toEqual([]);

    // The job is retried once, on on-demand capacity the warm group launched for it.
    await until(s, 900, "the retry finished", async () => {
      const retries = await retriesOf(h, long);
      return retries.length === 1 && retries[0]?.status === "completed";
    });
    const [retry] = await retriesOf(h, long);
    expect((await recorded(s, long))?.interruption?.instanceId).toBe(store);
    expect(retry?.instanceId).not.toBe(store);
    expect(fleet.get(retry?.instanceId ?? "")).toMatchObject({ group: "warm", market: "on-demand" });
    expect(
      fleet.callLog.some((call) => call.startsWith("RunInstances(group=sim-x86-warm, market=on-demand")),
    ).toBe(true);

    // Still stopped (only EC2 starts it), its record kept with its store's keys.
    expect(fleet.get(store)?.lifecycle).toBe("stopped");
    const kept = await h.registry.get(store);
    expect(kept?.cacheKeys).toEqual(expect.arrayContaining(keys));
    expect(kept?.interruption ?? null).toBeNull();

    // Capacity returns (local mode's control): EC2 starts it, and a later job of the key runs on it, warm.
    const returns = (id: string) =>
      fetch(`${h.url}/sim/fleet/instances/${id}/capacity-returns`, { method: "POST" });
    // Refused, changing nothing, for an instance that no interruption stopped, an unknown one, a bad id.
    const other = fleet.all().find((instance) => instance.id !== store)?.id as string;
    const otherBefore = fleet.get(other)?.lifecycle;
    expect((await returns(other)).status).toBe(409);
    expect(fleet.get(other)?.lifecycle).toBe(otherBefore);
    expect((await returns("i-0000000000000dead")).status).toBe(404);
    expect((await returns("not-an-id")).status).toBe(400);
    const answer = await returns(store);
    expect(answer.status).toBe(202);
    expect(await answer.json()).toEqual({ instanceId: store, lifecycle: "pending" });
    const later = job("ci / alpha");
    await queue(s, later, 10);
    expect(await ranOn(s, later)).toBe(store);
    expect((await recorded(s, later))?.store?.origin).toBe("warm");
  });
});
