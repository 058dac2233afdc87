import {
  type ForgeJob,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";
import { afterEach, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import type { Logger } from "../src/log";
import { describeJobs, secrets, send, startTestHearth } from "./support/local";

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

describe("a burst of 200 queued jobs across two pools", () => {
  // Two hundred deliveries and two real ScaleFleet runs: on a loaded machine this takes longer than
  // vitest's default 30 s, which is a guard against hangs, not a speed target.
  it("starts one ScaleFleet run per pool (later ones only in place of a waiting one), scales each pool to its maximum, and launches nothing twice", {
    timeout: 120_000,
  }, async () => {
    // What each webhook's request for capacity came to.
    const requested: Array<{ pool: unknown; outcome: unknown }> = [];
    const note = (message: string, fields?: Record<string, unknown>) => {
      if (message === "scale requested") requested.push({ pool: fields?.pool, outcome: fields?.outcome });
    };
    const log: Logger = { info: note, warn: note, error: note };
    const started = await startTestHearth({
      log,
      // Runs outlast the burst: each iteration waits 250 ms of real time, for 24 iterations.
      maxIterations: 24,
      waitMs: 250,
      initialWarmPool: 2,
    });
    hearth = started.hearth;
    const { clock } = started;
    const h = started.hearth;
    const fleet = h.simulation?.fleet;
    if (!fleet) throw new Error("expected the simulated fleet");

    const jobs: ForgeJob[] = Array.from({ length: 200 }, (_, i) => ({
      source: i % 2 === 0 ? "github" : "gitlab",
      id: String(10_000 + i),
      project: `acme/p${i % 7}`,
      projectId: String(100 + (i % 7)),
      pipelineId: String(500 + Math.floor(i / 25)),
      name: `job-${i}`,
      labels: i < 100 ? ["nix", "x86_64-linux"] : ["nix", "aarch64-linux"],
    }));
    await describeJobs(h, jobs, 600);
    const createdAt = new Date(clock.now()).toISOString();
    const statuses: number[] = [];
    // Twenty webhooks in flight at a time, as a forge fans out a wide pipeline.
    for (let i = 0; i < jobs.length; i += 20) {
      const batch = jobs.slice(i, i + 20).map(async (job) => {
        const request =
          job.source === "github"
            ? githubDelivery(workflowJobPayload(job, "queued", { createdAt }), secrets)
            : gitlabDelivery(jobHookPayload(job, "pending", { createdAt }), secrets, new Date(clock.now()));
        const response = await send(h, request);
        statuses.push(response.status);
      });
      await Promise.all(batch);
    }
    expect(statuses.filter((status) => status === 202)).toHaveLength(200);
    await h.idle();

    expect(await h.ledger.queued()).toHaveLength(200);
    // One run started per pool; any other execution superseded a run that waited between
    // iterations (it stopped at its next step); every other webhook found a run at work.
    expect(requested).toHaveLength(200);
    for (const pool of ["x86_64", "aarch64"]) {
      const outcomes = requested.filter((r) => r.pool === pool).map((r) => r.outcome);
      expect(outcomes.filter((o) => o === "started")).toHaveLength(1);
      expect(outcomes.every((o) => ["started", "superseded", "running"].includes(o as string))).toBe(true);
    }
    const superseded = requested.filter((r) => r.outcome === "superseded").length;
    expect(h.scaleFleet.executions).toBe(2 + superseded);
    for (const name of ["x86_64", "aarch64"]) {
      const pool = h.pools.find((p) => p.name === name);
      const serving = fleet
        .all()
        .filter((i) => i.pool === name && ["pending", "in-service"].includes(i.lifecycle));
      // 100 jobs, 2 slots each: exactly the pool's maximum of 50 instances, no more.
      expect(serving).toHaveLength(pool?.maxInstances ?? 50);
      const observed = await fleet.observe(pool as NonNullable<typeof pool>);
      const desired = observed.groups.reduce((sum, group) => sum + group.desired, 0);
      expect(desired).toBe(50);
    }
    // Desired capacity only ever went up during the burst: no run undid another's launches.
    for (const group of ["sim-x86_64-warm", "sim-x86_64-burst", "sim-aarch64-warm", "sim-aarch64-burst"]) {
      const values = fleet.callLog
        .filter((line) => line.startsWith(`SetDesiredCapacity(group=${group},`))
        .map((line) => Number(/desired=(\d+)/.exec(line)?.[1]));
      expect(values).toEqual([...values].sort((a, b) => a - b));
      expect(new Set(values).size).toBe(values.length);
    }
  });
});
