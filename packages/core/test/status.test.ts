import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { jobStatuses, sources } from "../src/jobs";
import {
  displayStates,
  jobViewSchema,
  SERIES_LENGTH,
  SERIES_STEP_SECONDS,
  type Status,
  statusSchema,
} from "../src/status";
import { exampleStatus } from "./fixtures/status";

const now = new Date("2026-03-01T12:00:00.000Z");
const example = () => exampleStatus(now);

/** The first issue's path and message, or "ok". */
function problem(document: unknown): string {
  const parsed = statusSchema.safeParse(document);
  return parsed.success
    ? "ok"
    : `${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message}`;
}

describe("the status document", () => {
  it("accepts the example as it is", () => {
    expect(statusSchema.parse(example())).toEqual(example());
  });

  it("takes its vocabularies from files that import nothing, so the page bundles no more than them", () => {
    const source = readFileSync(new URL("../src/status/index.ts", import.meta.url), "utf8");
    const imported = [...source.matchAll(/^import .* from "(.+)";$/gm)].map((match) => match[1]);
    expect(imported.sort()).toEqual([
      "../instances/vocabulary",
      "../jobs/vocabulary",
      "../journal/kinds",
      "../runners/vocabulary",
      "zod/mini",
    ]);
    for (const path of imported.filter((path) => path?.startsWith("../"))) {
      const vocabulary = readFileSync(new URL(`../src/status/${path}.ts`, import.meta.url), "utf8");
      expect(vocabulary, path).not.toMatch(/^\s*(import|export .* from)/m);
    }
  });

  it("speaks the ledger's vocabulary", () => {
    const [job] = example().jobs.queued;
    for (const source of sources) expect(jobViewSchema.safeParse({ ...job, source }).success).toBe(true);
    for (const status of jobStatuses) expect(jobViewSchema.safeParse({ ...job, status }).success).toBe(true);
    expect(jobViewSchema.safeParse({ ...job, source: "bitbucket" }).success).toBe(false);
    expect(jobViewSchema.safeParse({ ...job, status: "pending" }).success).toBe(false);
  });

  it("drops any field it does not name, so a secret cannot ride along", () => {
    const status = example();
    const leaky = {
      ...status,
      statusToken: "s3cret",
      pools: status.pools.map((pool) => ({ ...pool, runnerToken: "glrt-s3cret" })),
      instances: status.instances.map((instance) => ({ ...instance, jitConfig: "base64-s3cret" })),
      jobs: {
        ...status.jobs,
        queued: status.jobs.queued.map((job) => ({ ...job, webhookUrl: "https://hook/s3cret" })),
      },
      events: status.events.map((event) => ({ ...event, payload: { token: "s3cret" } })),
    };
    const parsed = statusSchema.parse(leaky);
    expect(JSON.stringify(parsed)).not.toContain("s3cret");
    expect(parsed).toEqual(status);
  });

  it("refuses job links a browser would run, or that carry credentials", () => {
    const status = example();
    const withUrl = (url: string): Status => ({
      ...status,
      jobs: { ...status.jobs, queued: status.jobs.queued.map((job, i) => (i === 0 ? { ...job, url } : job)) },
    });
    expect(problem(withUrl("javascript:alert(1)"))).toMatch(/^jobs\.queued\.0\.url/);
    expect(problem(withUrl("https://oauth2:glpat-s3cret@gitlab.example.com/a/-/jobs/1"))).toBe(
      "jobs.queued.0.url: a job URL must not carry credentials",
    );
    expect(problem(withUrl("https://gitlab.example.com/a/-/jobs/1"))).toBe("ok");
  });

  it("keeps event details to short scalars", () => {
    const status = example();
    const withDetails = (details: unknown) => ({ ...status, events: [{ ...status.events[0], details }] });
    expect(problem(withDetails({ queued: 4, instance: "i-0abc" }))).toBe("ok");
    expect(problem(withDetails({ request: { headers: {} } }))).toMatch(/^events\.0\.details\.request/);
    expect(problem(withDetails({ body: "x".repeat(501) }))).toMatch(/^events\.0\.details\.body/);
  });

  it("wants one value per step in each of a pool's series", () => {
    const status = example();
    const series = { queued: [1, 2], capacity: [4], busy: [0, 0] };
    expect(problem({ ...status, series: { ...status.series, pools: { "linux-x64": series } } })).toBe(
      "series.pools.linux-x64: queued, capacity and busy must have one value per step each",
    );
    const gaps = { queued: [null, 2], capacity: [null, 4], busy: [null, 1] };
    expect(problem({ ...status, series: { ...status.series, pools: { "linux-x64": gaps } } })).toBe("ok");
  });

  it("refuses counts that cannot be", () => {
    const status = example();
    const [pool] = status.pools;
    if (!pool) throw new Error("the example has pools");
    expect(problem({ ...status, pools: [{ ...pool, queued: -1 }] })).toMatch(/^pools\.0\.queued/);
    expect(problem({ ...status, pools: [{ ...pool, queued: 1.5 }] })).toMatch(/^pools\.0\.queued/);
    expect(problem({ ...status, generatedAt: "yesterday" })).toMatch(/^generatedAt/);
  });
});

describe("the example", () => {
  const status = example();

  it("is consistent: each pool's counts add up from its instances and jobs", () => {
    for (const pool of status.pools) {
      const instances = status.instances.filter((instance) => instance.pool === pool.name);
      for (const state of displayStates) {
        expect(pool.instances[state], `${pool.name} ${state}`).toBe(
          instances.filter((instance) => instance.state === state).length,
        );
      }
      const live = instances.filter((instance) => instance.state !== "stopped");
      expect(pool.slots.busy).toBe(live.reduce((sum, instance) => sum + instance.busySlots, 0));
      // A store that waits for spot capacity is stopped, but none of the warm pool.
      const waiting = instances.filter((instance) => instance.waitsForCapacity === true).length;
      expect(pool.capacity.warmPool.stopped).toBe(pool.instances.stopped - waiting);
      expect(pool.running).toBe(status.jobs.running.filter((job) => job.pool === pool.name).length);
      for (const instance of live) {
        expect(status.jobs.running.filter((job) => job.instanceId === instance.id)).toHaveLength(
          instance.busySlots,
        );
      }
      const series = status.series.pools[pool.name];
      expect(series?.queued.at(-1)).toBe(pool.queued);
      expect(series?.capacity.at(-1)).toBe(pool.slots.total);
      expect(series?.busy.at(-1)).toBe(pool.slots.busy);
    }
  });

  it("covers the last hour, per minute, ending now", () => {
    expect(status.series.stepSeconds).toBe(SERIES_STEP_SECONDS);
    for (const series of Object.values(status.series.pools))
      expect(series.queued).toHaveLength(SERIES_LENGTH);
    const last = Date.parse(status.series.start) + (SERIES_LENGTH - 1) * SERIES_STEP_SECONDS * 1000;
    expect(last).toBe(now.getTime());
  });

  it("lists events latest first", () => {
    const times = status.events.map((event) => Date.parse(event.time));
    expect(times).toEqual([...times].sort((a, b) => b - a));
    expect(new Set(status.events.map((event) => event.kind))).toEqual(
      new Set(["decision", "retry", "interruption", "sweep", "error"]),
    );
  });
});
