import type { PoolConfig } from "@hearth/core/pools";
import { gitlabSystemId } from "@hearth/core/runners";
import {
  type ForgeJob,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";
import type { SimulatedForgeRunners } from "@hearth/core/simulation/forge/runners";
import type { Status } from "@hearth/core/status";
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
 * Runner identity end to end in local mode, on both forges: a queued job → an instance ready → a
 * GitHub runner minted for each free slot, its config handed to that instance only → the job runs on
 * that runner (the simulated GitHub refuses any other) → the runner is gone after its job and the slot
 * gets a new one; an instance stopped into the warm pool loses its runners and gets fresh ones when it
 * resumes; a terminated instance's runners and GitLab manager are deleted.
 */

const pool: PoolConfig = localPool({
  slotsPerInstance: 2,
  maxInstances: 4,
  boot: { coldSeconds: 10, warmSeconds: 5 },
  idleTimeouts: { warmSeconds: 20, burstSeconds: 20 },
  // These tests follow each free slot's runner; warm-first placement gives an idle instance none
  // while nothing is queued (e2e-placement.test.ts covers that).
  placement: "any",
});

const closing = closeAfterEach();

interface Setup extends LocalSetup {
  forge: SimulatedForgeRunners;
}

/** Every log line local mode wrote, and every JIT config handed over: none may be in the other. */
let logged: string[] = [];
let handedConfigs: string[] = [];

async function start(): Promise<Setup> {
  logged = [];
  handedConfigs = [];
  const started = await startTestHearth({
    pools: [pool],
    initialWarmPool: 1,
    log: createLogger((line) => logged.push(line)),
  });
  closing(started.hearth);
  const simulation = started.hearth.simulation;
  if (!simulation) throw new Error("expected the simulated fleet");
  // Sees each config as the control plane hands it over (the fleet is the port it calls).
  const fleet = simulation.fleet;
  const hand = fleet.handRunnerConfig.bind(fleet);
  fleet.handRunnerConfig = async (handOver) => {
    handedConfigs.push(handOver.encodedJitConfig);
    return hand(handOver);
  };
  return { h: started.hearth, clock: started.clock, fleet, forge: simulation.forge };
}

let nextId = 7000;
function job(source: "github" | "gitlab"): ForgeJob {
  nextId += 1;
  return {
    source,
    id: String(nextId),
    project: "acme/app",
    projectId: "77",
    pipelineId: String(nextId),
    name: `build-${nextId}`,
    labels: ["nix", "x86_64-linux"],
  };
}

async function queue({ h, clock }: Setup, forgeJob: ForgeJob, seconds: number): Promise<void> {
  await describeJobs(h, [forgeJob], seconds);
  const createdAt = new Date(clock.now()).toISOString();
  const request =
    forgeJob.source === "github"
      ? githubDelivery(workflowJobPayload(forgeJob, "queued", { createdAt }), secrets)
      : gitlabDelivery(jobHookPayload(forgeJob, "pending", { createdAt }), secrets, new Date(clock.now()));
  const response = await send(h, request);
  expect(response.status, await response.clone().text()).toBeLessThan(300);
  await h.idle();
}

/** The simulated GitHub's runners of one instance, as [name, id, started by it]. */
const githubRunnersOf = (forge: SimulatedForgeRunners, instanceId: string) =>
  forge.github
    .all()
    .filter((runner) => runner.name.startsWith(`hearth-${instanceId}-`))
    .sort((a, b) => a.name.localeCompare(b.name));

/** The system_ids of the managers of the pool's GitLab runner. */
const managersOf = (forge: SimulatedForgeRunners) =>
  forge.gitlab.all().find((runner) => runner.pool === "x86")?.managers ?? [];

async function status(h: LocalHearth): Promise<Status> {
  return (await (await fetch(`${h.url}/api/status`)).json()) as Status;
}

/** Lets time pass and ScaleFleet run (the periodic tick is off in these tests). */
async function tickFor(setup: Setup, seconds: number): Promise<void> {
  for (let t = 0; t < seconds; t += 15) {
    await pass(setup.h, setup.clock, 15);
    await setup.h.tick();
    await setup.h.idle();
  }
}

describe("runner identity in local mode", () => {
  it("mints a runner per free slot, runs the job on it, and gives the slot a new runner after it", async () => {
    const setup = await start();
    const { h, fleet, forge } = setup;
    const instanceId = fleet.all().find((i) => i.lifecycle === "stopped")?.id as string;
    expect(instanceId).toBeDefined();
    const first = job("github");
    await queue(setup, first, 60);
    await pass(h, setup.clock, 10);
    expect(fleet.get(instanceId)?.lifecycle).toBe("in-service");

    // Each slot has its own runner, started on that instance with the config handed to it.
    const minted = githubRunnersOf(forge, instanceId);
    expect(minted.map((r) => [r.name, r.scope, r.startedBy])).toEqual([
      [`hearth-${instanceId}-0`, "local", { instanceId, slot: 0 }],
      [`hearth-${instanceId}-1`, "local", { instanceId, slot: 1 }],
    ]);
    expect(minted[0]?.labels).toEqual(["nix", "x86_64-linux", "self-hosted", "x64"]);
    // Picked up, so no config is left lying in the parameter store.
    expect(fleet.runnerConfigParameters()).toEqual([]);

    // The job runs on one of them, and the forge's webhook names that runner.
    const running = await h.ledger.get({ source: "github", id: first.id });
    expect(running).toMatchObject({ status: "running", instanceId });
    const taker = minted.find((r) => r.job?.id === first.id);
    expect(taker).toBeDefined();
    expect(running?.runner).toEqual({ id: String(taker?.id), name: taker?.name });

    // What the status shows: both slots' runners, one running the job, and the GitLab manager.
    const shown = (await status(h)).instances.find((i) => i.id === instanceId);
    expect(shown?.runners).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          forge: "github",
          runnerId: taker?.id,
          state: "running",
          job: { source: "github", id: first.id },
        }),
        expect.objectContaining({ forge: "github", state: "listening" }),
        expect.objectContaining({
          forge: "gitlab",
          state: "registered",
          systemId: gitlabSystemId(instanceId),
        }),
      ]),
    );

    // The job ends: its ephemeral runner is gone, and the slot has a new runner, listening.
    await pass(h, setup.clock, 70);
    expect((await h.ledger.get({ source: "github", id: first.id }))?.status).toBe("completed");
    const after = githubRunnersOf(forge, instanceId);
    expect(after.map((r) => r.id)).not.toContain(taker?.id);
    expect(after.map((r) => r.name)).toEqual([`hearth-${instanceId}-0`, `hearth-${instanceId}-1`]);
    expect(after.every((r) => r.startedBy?.instanceId === instanceId && !r.job)).toBe(true);

    // No config was ever in a log line, the journal or the status.
    expect(handedConfigs.length).toBeGreaterThanOrEqual(3);
    const seen = [
      ...logged,
      JSON.stringify(await h.journal.latest(200)),
      JSON.stringify(await status(h)),
    ].join("\n");
    expect(logged.some((line) => line.includes("runners tended"))).toBe(true);
    for (const config of handedConfigs) expect(seen).not.toContain(config);
  });

  it("runs a GitLab job on the instance as a manager of its pool's runner", async () => {
    const setup = await start();
    const { h, fleet, forge } = setup;
    const gitlabJob = job("gitlab");
    await queue(setup, gitlabJob, 30);
    await pass(h, setup.clock, 10);
    const recorded = await h.ledger.get({ source: "gitlab", id: gitlabJob.id });
    expect(recorded).toMatchObject({ status: "running" });
    const instanceId = recorded?.instanceId as string;
    expect(managersOf(forge)).toContain(gitlabSystemId(instanceId));
    expect(fleet.get(instanceId)?.lifecycle).toBe("in-service");
  });

  it("takes a stopped instance's runners away, and gives it fresh ones when it resumes", async () => {
    const setup = await start();
    const { h, fleet, forge } = setup;
    const instanceId = fleet.all().find((i) => i.lifecycle === "stopped")?.id as string;
    await queue(setup, job("github"), 10);
    await pass(h, setup.clock, 10);
    const before = githubRunnersOf(forge, instanceId).map((r) => r.id);
    expect(before).toHaveLength(2);

    // Idle past its timeout: ScaleFleet sends it back to the warm pool.
    await tickFor(setup, 60);
    expect(fleet.get(instanceId)?.lifecycle).toBe("stopped");
    await h.tick();
    await h.idle();
    expect(githubRunnersOf(forge, instanceId)).toEqual([]);
    expect(fleet.runnerConfigParameters()).toEqual([]);
    // A stopped instance keeps its GitLab manager.
    expect(managersOf(forge)).toContain(gitlabSystemId(instanceId));

    await queue(setup, job("github"), 10);
    await pass(h, setup.clock, 10);
    expect(fleet.get(instanceId)?.lifecycle).toBe("in-service");
    const fresh = githubRunnersOf(forge, instanceId);
    expect(fresh).toHaveLength(2);
    for (const runner of fresh) expect(before).not.toContain(runner.id);
  });

  it("deletes a terminated instance's runners and its GitLab manager", async () => {
    const setup = await start();
    const { h, fleet, forge } = setup;
    const instanceId = fleet.all().find((i) => i.lifecycle === "stopped")?.id as string;
    await queue(setup, job("github"), 10);
    await pass(h, setup.clock, 15);
    expect(githubRunnersOf(forge, instanceId)).toHaveLength(2);

    await fleet.interrupt(instanceId);
    await pass(h, setup.clock, 130);
    expect(fleet.get(instanceId)).toBeUndefined();
    await h.tick();
    await h.idle();
    expect(githubRunnersOf(forge, instanceId)).toEqual([]);
    expect(managersOf(forge)).not.toContain(gitlabSystemId(instanceId));
    const retired = (await h.journal.latest(50)).find(
      (entry) => entry.kind === "runner" && entry.reason.includes(`${instanceId} terminated`),
    );
    expect(retired?.calls.join(" ")).toContain(
      `DeleteRunnerManager(system_id=${gitlabSystemId(instanceId)})`,
    );
  });
});
