import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeClock } from "@hearth/core/clock";
import { type ForgeJob, githubDelivery, workflowJobPayload } from "@hearth/core/simulation/forge";
import type { Status } from "@hearth/core/status";
import { afterAll, describe, expect, it } from "vitest";
import { describeJobs, pass, secrets, startTestHearth } from "./support/local";

const dataDir = mkdtempSync(join(tmpdir(), "hearth-data-"));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const start = async (clock: FakeClock) =>
  (await startTestHearth({ dataDir, clock, initialWarmPool: 2 })).hearth;

describe("local mode with --data", () => {
  it("keeps jobs, instances and running work across a restart", async () => {
    const clock = new FakeClock();
    const first = await start(clock);
    const jobs: ForgeJob[] = [1, 2, 3].map((n) => ({
      source: "github",
      id: String(700 + n),
      project: "acme/app",
      projectId: "1",
      pipelineId: "70",
      name: `test-${n}`,
      labels: ["nix", "x86_64-linux"],
    }));
    await describeJobs(first, jobs, 300);
    for (const job of jobs) {
      const request = githubDelivery(
        workflowJobPayload(job, "queued", { createdAt: new Date(clock.now()).toISOString() }),
        secrets,
      );
      await fetch(`${first.url}${request.path}`, {
        method: "POST",
        headers: request.headers,
        body: request.body,
      });
    }
    await first.idle();
    await pass(first, clock, 30);
    const before = await Promise.all(jobs.map((job) => first.ledger.get(job)));
    const wasRunning = before.filter((job) => job?.status === "running").map((job) => job?.id);
    expect(wasRunning.length).toBeGreaterThan(0);
    const instancesBefore = (await first.registry.inPool("x86_64")).map((r) => r.id).sort();
    const fleetBefore = first.simulation?.fleet.snapshot().instances.map((i) => [i.id, i.lifecycle]);
    expect(instancesBefore.length).toBeGreaterThan(0);
    await first.close();

    const second = await start(clock);
    try {
      const after = await Promise.all(jobs.map((job) => second.ledger.get(job)));
      expect(after).toEqual(before);
      expect((await second.registry.inPool("x86_64")).map((r) => r.id).sort()).toEqual(instancesBefore);
      expect(second.simulation?.fleet.snapshot().instances.map((i) => [i.id, i.lifecycle])).toEqual(
        fleetBefore,
      );
      const status = (await (await fetch(`${second.url}/api/status`)).json()) as Status;
      expect(status.jobs.running.map((job) => job.id).sort()).toEqual(wasRunning.sort());

      // The restored runners finish what they were running (300 s); every job gets run.
      await pass(second, clock, 300);
      const done = await Promise.all(jobs.map((job) => second.ledger.get(job)));
      for (const job of done) {
        expect(job?.status).toEqual(
          wasRunning.includes(job?.id) ? "completed" : expect.stringMatching(/running|completed/),
        );
      }
    } finally {
      await second.close();
    }
  });
});
