import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseTrace } from "@hearth/core/simulation/trace";
import { afterAll, describe, expect, it } from "vitest";
import { demoJobs, replay, watchDrain } from "../src/demo";
import type { LocalHearth } from "../src/local/server";
import { pass, secrets, startTestHearth } from "./support/local";

/** The demo ends on whether Hearth kept up: it watches the queue drain after the replay. */

let hearth: LocalHearth | undefined;
afterAll(() => hearth?.close());

describe("npm run demo's ending", () => {
  it("watches the queue until every job has started, then says how long that took", async () => {
    const started = await startTestHearth({ statusToken: "demo-status-token", initialWarmPool: 2 });
    hearth = started.hearth;
    const { clock } = started;
    const local = hearth;
    const trace = parseTrace(readFileSync(resolve(import.meta.dirname, "../demo/sample-trace.csv"), "utf8"));
    const jobs = demoJobs(trace.jobs.slice(0, 30), { speed: 60, firstId: 7_000_000 });
    const result = await replay(jobs, {
      url: local.url,
      secrets,
      statusToken: "demo-status-token",
      now: () => new Date(clock.now()),
      waitUntil: async () => {},
    });
    expect(result).toEqual({ sent: 30, refused: 0, dropped: 0 });
    await local.idle();
    const looks: number[] = [];
    const drain = await watchDrain({
      url: local.url,
      token: "demo-status-token",
      everySeconds: 5,
      timeoutSeconds: 600,
      // Fleet time moves on as the demo waits: instances resume, boot and take the jobs.
      sleep: (seconds) => pass(local, clock, seconds),
      onProgress: (look) => looks.push(look.queued),
    });
    expect(looks[0]).toBeGreaterThan(0);
    expect(drain.drained).toBe(true);
    expect(drain.last.queued).toBe(0);
    expect(drain.last.unroutable).toBe(0);
    expect(drain.longestWaitSeconds).toBeGreaterThan(0);
    // Booting a spot instance takes 75 s: within two minutes of fleet time every job has a slot.
    expect(drain.last.seconds).toBeLessThanOrEqual(120);
  }, 120_000);
});

describe("npm run demo's ending, with a job no pool runs", () => {
  it("counts the jobs that match no pool apart: they never start, and the queue drains without them", async () => {
    const started = await startTestHearth();
    const local = started.hearth;
    try {
      const row = {
        id: "1",
        createdAt: 0,
        pipelineId: "p1",
        cacheKey: "app/build",
        warmSeconds: 60,
        coldSeconds: 120,
      };
      const jobs = demoJobs([{ ...row, labels: ["nix", "riscv64-linux"] }], {
        speed: 60,
        firstId: 8_000_000,
      });
      await replay(jobs, {
        url: local.url,
        secrets,
        now: () => new Date(started.clock.now()),
        waitUntil: async () => {},
      });
      await local.idle();
      const drain = await watchDrain({
        url: local.url,
        everySeconds: 5,
        timeoutSeconds: 10,
        sleep: (seconds) => pass(local, started.clock, seconds),
      });
      expect(drain).toMatchObject({ drained: true, last: { queued: 0, unroutable: 1 } });
    } finally {
      await local.close();
    }
  }, 60_000);
});

describe("npm run demo's schedule", () => {
  it("starts the replay with the first job, however late in its trace it comes", () => {
    const row = (createdAt: number) => ({
      id: String(createdAt),
      createdAt,
      pipelineId: "p1",
      cacheKey: "app/build",
      labels: ["nix", "x86_64-linux"],
      warmSeconds: 60,
      coldSeconds: 120,
    });
    const late = demoJobs([row(1_726_000_000), row(1_726_000_120)], { speed: 60, firstId: 1 });
    expect(late.map((job) => job.at)).toEqual([0, 2]);
    expect(late.map((job) => job.warmSeconds)).toEqual([1, 1]);
  });
});
