import { randomUUID } from "node:crypto";
import { interruptionEvent } from "@hearth/core/interruptions";
import type { Job } from "@hearth/core/jobs";
import type { PoolConfig } from "@hearth/core/pools";
import { gitlabSystemId } from "@hearth/core/runners";
import type { SimulatedFleet, SimulatedInstance } from "@hearth/core/simulation/fleet";
import {
  type ForgeJob,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";
import { describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import { createLogger } from "../src/log";
import {
  closeAfterEach,
  describeJobs,
  type LocalSetup,
  localPool,
  pass,
  secrets,
  send,
  startTestHearth,
} from "./support/local";

/**
 * Spot interruptions end to end in local mode, on both forges: EC2's events as EventBridge delivers
 * them (sent by the simulated fleet, or posted to `/sim/aws/events`), HandleInterruption run by
 * aws-local-stepfunctions, the instances' own agents, the simulated forges' retry rules.
 */

const pool: PoolConfig = localPool({
  slotsPerInstance: 2,
  maxInstances: 6,
  boot: { coldSeconds: 10, warmSeconds: 5 },
  idleTimeouts: { warmSeconds: 600, burstSeconds: 600 },
  // One retry: it is the job's last, held, and run on demand.
  retryInterrupted: 1,
});

const closing = closeAfterEach();

type Setup = LocalSetup;

async function start(pools: PoolConfig[] = [pool]): Promise<Setup> {
  // No warm pool: the first capacity is burst (spot) capacity.
  const started = await startTestHearth({
    pools,
    initialWarmPool: 0,
    interruptionWaitMs: 5,
    ...(process.env.E2E_TRACE
      ? { log: createLogger((line) => console.log(`${Date.now() % 1_000_000} ${line}`)) }
      : {}),
  });
  closing(started.hearth);
  const fleet = started.hearth.simulation?.fleet;
  if (!fleet) throw new Error("expected the simulated fleet");
  return { h: started.hearth, clock: started.clock, fleet };
}

let nextId = 91_000;
function forgeJob(source: "github" | "gitlab"): ForgeJob {
  nextId += 1;
  return {
    source,
    id: String(nextId),
    project: "acme/app",
    projectId: "7",
    pipelineId: String(nextId + 500_000),
    name: `build-${nextId}`,
    labels: source === "github" ? ["nix", "x86_64-linux"] : [],
  };
}

async function queue({ h, clock }: Setup, job: ForgeJob): Promise<void> {
  const createdAt = new Date(clock.now()).toISOString();
  const request =
    job.source === "github"
      ? githubDelivery(workflowJobPayload(job, "queued", { createdAt }), secrets)
      : gitlabDelivery(jobHookPayload(job, "pending", { createdAt }), secrets, new Date(clock.now()));
  expect((await send(h, request)).status).toBeLessThan(300);
  await h.idle();
}

const detaches = (fleet: SimulatedFleet) =>
  fleet.callLog.filter((c) => c.startsWith("DetachInstances")).length;

const ledgerJob = (h: LocalHearth, job: ForgeJob) => h.ledger.get({ source: job.source, id: job.id });

/** Moves time on until `check` holds (5 s steps), failing with `what` after `seconds`. */
async function until(s: Setup, seconds: number, what: string, check: () => Promise<boolean>) {
  const began = Date.now();
  for (let t = 0; t <= seconds; t += 5) {
    if (await check()) {
      if (process.env.E2E_TRACE) console.log(`${what}: ${t} s simulated, ${Date.now() - began} ms real`);
      return;
    }
    if (process.env.E2E_TRACE && t % 60 === 0) console.log(`${what}: ${t} s, ${Date.now() - began} ms real`);
    await pass(s.h, s.clock, 5);
  }
  throw new Error(`${what}: not within ${seconds} s`);
}

/** The spot instance a running job is on. */
async function runningOn(s: Setup, job: ForgeJob): Promise<SimulatedInstance> {
  let instance: SimulatedInstance | undefined;
  await until(s, 180, `job ${job.id} running`, async () => {
    const record = await ledgerJob(s.h, job);
    instance = record?.status === "running" && record.instanceId ? s.fleet.get(record.instanceId) : undefined;
    return instance !== undefined;
  });
  if (!instance) throw new Error("unreachable");
  expect(instance.market).toBe("spot");
  return instance;
}

/** Every job the ledger holds that retries `job` (directly). */
async function retriesOf(h: LocalHearth, job: ForgeJob): Promise<Job[]> {
  // Arrivals are kept by day: the last two days hold every job of a test.
  const all = await h.ledger.arrivedSince(new Date(h.clock.now() - 2 * 86_400_000));
  return all.filter((j) => j.source === job.source && j.retryOf === job.id);
}

describe.each(["github", "gitlab"] as const)("a spot warning for a busy %s instance", (source) => {
  it("drains it, replaces it within one ScaleFleet run, deletes its runners, and retries the job once on other capacity", {
    timeout: 240_000,
  }, async () => {
    const s = await start();
    const { h, fleet } = s;
    const job = forgeJob(source);
    // Longer than the two minutes' warning: it cannot finish on the interrupted instance.
    await describeJobs(h, [job], 600);
    await queue(s, job);
    const spot = await runningOn(s, job);
    const runsBefore = h.scaleFleet.executions;
    const forge = h.simulation?.forge;
    if (!forge) throw new Error("expected the simulated forges");

    await fleet.interrupt(spot.id, "terminate");
    await until(s, 60, "detached", async () => detaches(fleet) > 0);
    await pass(h, s.clock, 10);

    // Draining: marked, and the agent told so (its next answer says drain).
    const record = await h.registry.get(spot.id);
    expect(record?.interruption?.action).toBe("terminate");
    // Replaced at once: detached (the group launches one replacement), and a ScaleFleet run asked.
    expect(fleet.callLog.filter((c) => c.startsWith("DetachInstances"))).toHaveLength(1);
    expect(h.scaleFleet.executions).toBeGreaterThan(runsBefore);
    const replacements = fleet.all().filter((i) => i.id !== spot.id && i.group === "burst" && !i.detached);
    expect(replacements.length).toBeGreaterThanOrEqual(1);

    // The job fails on the forge, is retried once, and the retry runs to completion elsewhere.
    await until(s, 900, "the retry finished", async () => {
      const retries = await retriesOf(h, job);
      if (process.env.E2E_TRACE) {
        const o = await ledgerJob(h, job);
        console.log(
          JSON.stringify({
            o: [o?.status, o?.conclusion, o?.interruption, o?.retry],
            r: retries.map((r) => [r.id, r.status, r.instanceId]),
            inst: fleet.all().map((i) => [i.id, i.group, i.lifecycle, i.detached]),
          }),
        );
      }
      return retries.length === 1 && retries[0]?.status === "completed";
    });
    const original = await ledgerJob(h, job);
    expect(original?.interruption?.instanceId).toBe(spot.id);
    expect(original?.retry?.newJobId).toBeTruthy();
    const [retry] = await retriesOf(h, job);
    expect(retry?.conclusion).toBe("success");
    expect(retry?.instanceId).toBeTruthy();
    expect(retry?.instanceId).not.toBe(spot.id);
    // On on-demand capacity: the pool held its spot runners (the replacement among them) while the
    // retry waited, and planned the warm group's on-demand capacity for it.
    expect(fleet.get(retry?.instanceId ?? "")).toMatchObject({ group: "warm", market: "on-demand" });
    // Exactly once: nothing retries the retry, and the job was retried by one call.
    expect(await retriesOf(h, { ...job, id: retry?.id ?? "" })).toEqual([]);
    // The timeline says so. GitLab's retry names the job; GitHub's re-run names the job's run.
    const retryEntries = (await h.journal.latest(500)).filter(
      (e) =>
        e.kind === "retry" && [job.id, job.pipelineId].some((id) => JSON.stringify(e.details).includes(id)),
    );
    expect(retryEntries.length).toBeGreaterThanOrEqual(1);
    const reasons = (await h.journal.latest(500)).map((e) => e.reason);
    expect(reasons).toContain(
      `x86 holds its spot runners: the retry of ${source} job ${job.id} waits for on-demand capacity`,
    );
    expect(reasons.some((r) => r.startsWith("x86 no longer holds its spot runners"))).toBe(true);
    expect(reasons).toContain(
      `${source} job ${retry?.id}, the retry of interrupted job ${job.id}, ran on on-demand capacity (${retry?.instanceId}, warm group)`,
    );

    // The interrupted instance is gone, and so are its runners on the forge.
    expect(fleet.get(spot.id)).toBeUndefined();
    if (source === "github") {
      const left = forge.github.all().filter((r) => r.startedBy?.instanceId === spot.id);
      expect(left).toEqual([]);
    } else {
      const systemId = gitlabSystemId(spot.id);
      expect(forge.gitlab.all().flatMap((r) => r.managers)).not.toContain(systemId);
    }
  });
});

describe("a GitLab job interrupted twice, with the default two retries", () => {
  it("is retried at once on spot the first time, and held for on-demand capacity the second", {
    timeout: 300_000,
  }, async () => {
    // The pool's defaults: two retries, the warm group on spot.
    const defaults = localPool({
      slotsPerInstance: 2,
      maxInstances: 6,
      boot: { coldSeconds: 10, warmSeconds: 5 },
      idleTimeouts: { warmSeconds: 600, burstSeconds: 600 },
    });
    expect(defaults).toMatchObject({ retryInterrupted: 2, warm: { market: "spot" } });
    const s = await start([defaults]);
    const { h, fleet } = s;
    const job = forgeJob("gitlab");
    await describeJobs(h, [job], 600);
    await queue(s, job);
    const first = await runningOn(s, job);
    await fleet.interrupt(first.id, "terminate");

    // The first retry is not the last: asked at once, unheld, and run on spot capacity.
    let retry: Job | undefined;
    await until(s, 300, "the first retry running", async () => {
      [retry] = await retriesOf(h, job);
      return retry?.status === "running";
    });
    const again = fleet.get(retry?.instanceId ?? "");
    expect(again?.market).toBe("spot");
    const held = () =>
      h.journal
        .latest(500)
        .then((entries) => entries.filter((e) => e.reason.includes("holds its spot runners")));
    expect(await held()).toEqual([]);

    // Interrupted again: its retry is the job's last, so the pool holds its spot runners, and the last
    // retry runs to completion on on-demand capacity.
    await fleet.interrupt(again?.id ?? "", "terminate");
    const retried = { ...job, id: retry?.id ?? "" };
    await until(s, 900, "the last retry finished", async () => {
      const [last] = await retriesOf(h, retried);
      return last?.status === "completed";
    });
    const [last] = await retriesOf(h, retried);
    expect(last?.conclusion).toBe("success");
    expect(fleet.get(last?.instanceId ?? "")).toMatchObject({ group: "warm", market: "on-demand" });
    expect((await held()).map((e) => e.reason)).toContain(
      `x86 holds its spot runners: the retry of gitlab job ${retry?.id} waits for on-demand capacity`,
    );
    // Each job retried once, nothing more.
    expect(await retriesOf(h, job)).toHaveLength(1);
    expect(await retriesOf(h, { ...job, id: last?.id ?? "" })).toEqual([]);
  });
});

describe("a rebalance recommendation", () => {
  it("drains and replaces a busy instance but never terminates it while its job runs", {
    timeout: 240_000,
  }, async () => {
    const s = await start();
    const { h, fleet } = s;
    const job = forgeJob("github");
    await describeJobs(h, [job], 300);
    await queue(s, job);
    const spot = await runningOn(s, job);

    await fetch(`${h.url}/sim/aws/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(
        interruptionEvent({
          kind: "rebalance",
          instanceId: spot.id,
          time: new Date(s.clock.now()).toISOString(),
          id: randomUUID(),
        }),
      ),
    });
    await until(s, 60, "detached", async () => detaches(fleet) > 0);
    expect((await h.registry.get(spot.id))?.interruption?.action).toBe("rebalance");
    expect(fleet.callLog.filter((c) => c.startsWith("DetachInstances"))).toHaveLength(1);

    // While the job runs the instance stays, however long Settle polls.
    for (let t = 0; t < 240; t += 30) {
      await pass(h, s.clock, 30);
      const running = (await ledgerJob(h, job))?.status === "running";
      if (!running) break;
      expect(fleet.get(spot.id)?.lifecycle).toBe("in-service");
      expect(fleet.callLog.some((c) => c.startsWith("TerminateInstances") && c.includes(spot.id))).toBe(
        false,
      );
    }
    // The job finished where it ran, was never interrupted or retried; then the instance goes.
    await until(s, 300, "the job finished", async () => (await ledgerJob(h, job))?.status === "completed");
    const done = await ledgerJob(h, job);
    expect(done?.conclusion).toBe("success");
    expect(done?.interruption).toBeUndefined();
    expect(await retriesOf(h, job)).toEqual([]);
    await until(s, 300, "the drained instance terminated", async () => fleet.get(spot.id) === undefined);
  });
});

describe("events out of order, repeated, and for an unknown instance", () => {
  it("handles each instance once: the warning counts whenever it comes, repeats do nothing", {
    timeout: 240_000,
  }, async () => {
    const s = await start();
    const { h, fleet } = s;
    const job = forgeJob("gitlab");
    await describeJobs(h, [job], 600);
    await queue(s, job);
    const spot = await runningOn(s, job);
    const at = new Date(s.clock.now()).toISOString();
    const event = (kind: "warning" | "rebalance", instanceId = spot.id) =>
      interruptionEvent({ kind, instanceId, time: at, id: randomUUID() });
    const post = (body: unknown) =>
      fetch(`${h.url}/sim/aws/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    // The warning first, then the rebalance, twice each, and one for an instance Hearth never had.
    expect((await post([event("warning"), event("rebalance")])).status).toBe(202);
    expect((await post([event("rebalance"), event("warning")])).status).toBe(202);
    expect((await post(event("warning", "i-0fedcba9876543210"))).status).toBe(202);
    await until(s, 60, "detached", async () => detaches(fleet) > 0);
    await pass(h, s.clock, 10);

    expect(fleet.callLog.filter((c) => c.startsWith("DetachInstances"))).toHaveLength(1);
    const entries = (await h.journal.latest(200)).filter((e) => e.kind === "interruption");
    expect(entries.filter((e) => e.reason.includes("i-0fedcba9876543210"))).toHaveLength(1);
    expect((await h.registry.get(spot.id))?.interruption?.action).toBe("terminate");

    // EC2 then reclaims it (the simulated fleet sends its own warning once more).
    await fleet.interrupt(spot.id, "terminate");
    await pass(h, s.clock, 10);
    expect(detaches(fleet)).toBe(1);

    await until(s, 900, "the retry finished", async () => {
      const retries = await retriesOf(h, job);
      return retries.length === 1 && retries[0]?.status === "completed";
    });
    expect(await retriesOf(h, job)).toHaveLength(1);
  });
});
