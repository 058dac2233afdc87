import { describe, expect, it } from "vitest";
import { runSimulation, type SimulateOptions, simulate } from "../src/simulation/trace";
import { peakConcurrency } from "../src/simulation/trace/policies/static";
import type { Trace, TraceJob } from "../src/simulation/trace/trace";

/** A trace of x86_64 jobs: [created at, cache key, warm s, cold s]. */
function trace(rows: [number, string, number, number][], name = "tiny"): Trace {
  const jobs: TraceJob[] = rows.map(([createdAt, cacheKey, warmSeconds, coldSeconds], i) => ({
    id: `j${i}`,
    createdAt,
    pipelineId: `p${createdAt}`,
    cacheKey,
    labels: ["nix", "x86_64-linux"],
    warmSeconds,
    coldSeconds,
  }));
  return { name, jobs, resorted: false };
}

const noInterruptions = { spotInterruptionsPerHour: 0 };
const run = (t: Trace, policy: SimulateOptions["policy"]) => simulate(t, { policy, model: noInterruptions });
const usd = (seconds: number, hourly: number) => (seconds * hourly) / 3600;

/** One job at t=0: 100 s on a warm store, 200 s on a cold one. */
const single = trace([[0, "k", 100, 200]]);

describe("each policy on one job, by hand", () => {
  it("oracle: starts at once, warm, billed while it runs at the spot price per slot", () => {
    const result = run(single, "oracle");
    expect(result).toMatchObject({
      jobs: 1,
      waitP50: 0,
      waitP95: 0,
      waitMax: 0,
      warmHitRate: 1,
      lostJobs: 0,
    });
    expect(result.costUsd).toBeCloseTo(usd(100, 0.05) / 2, 12);
    expect(result.instanceHours).toBeCloseTo(100 / 2 / 3600, 12);
  });

  it("static: one always-on instance, ready at the start, running the job cold", () => {
    const result = run(single, "static");
    expect(result).toMatchObject({ waitMax: 0, warmHitRate: 0, lostJobs: 0, interruptedJobs: 0 });
    expect(result.costUsd).toBeCloseTo(usd(200, 0.145), 12);
    expect(result.details.endSeconds).toBe(200);
  });

  it("autogit: seen at the 10 s poll, a new on-demand runner ready 75 s later", () => {
    const result = run(single, "autogit");
    expect(result.waitMax).toBe(85);
    // Billed from the launch at 10 s until the job ends at 285 s, when the run ends.
    expect(result.costUsd).toBeCloseTo(usd(275, 0.145), 12);
  });

  it("ephemeral: one fresh on-demand instance for the job, gone when it ends", () => {
    const result = run(single, "ephemeral");
    expect(result.waitMax).toBe(85);
    expect(result.costUsd).toBeCloseTo(usd(275, 0.145), 12);
  });

  it("ghr: the webhook, a 30 s queue delay, then one spot instance", () => {
    const result = run(single, "ghr");
    expect(result.waitMax).toBe(106);
    expect(result.costUsd).toBeCloseTo(usd(275, 0.05), 12);
  });

  it("terraform-nixos: seen at the 60 s poll, one spot instance (90% spot rounds to all spot)", () => {
    const result = run(single, "terraform-nixos");
    expect(result.waitMax).toBe(135);
    expect(result.costUsd).toBeCloseTo(usd(275, 0.05), 12);
  });

  it("hearth: the webhook starts a run at once, which launches spot while the warm pool is empty", () => {
    const result = run(single, "hearth");
    // Webhook at 1 s, a run plans at once: nothing stopped yet, one spot instance, ready at 76 s.
    expect(result.waitMax).toBe(76);
    // The forecast is ten minutes old only at 600 s, after the job: no warm pool, one spot instance
    // from its launch at 1 s to the end at 276 s.
    expect(result.costUsd).toBeCloseTo(usd(275, 0.05), 12);
    expect(result.details.stoppedHours).toBe(0);
  });
});

describe("hearth", () => {
  it("resumes the warm pool for later jobs, and a resumed store stays warm", () => {
    const result = runSimulation(
      trace([
        [0, "k", 100, 200],
        [3600, "k", 100, 200],
        [7200, "k", 100, 200],
      ]),
      { policy: "hearth", model: noInterruptions },
    );
    const [first, second, third] = result.jobs;
    expect(first?.firstInstance?.group).toBe("burst");
    // The warm pool's instance was new (cold): webhook 1 s, resume 25 s.
    expect(second?.firstStartAt).toBe(3600 + 26);
    expect([second?.firstInstance?.group, second?.firstInstance?.boot, second?.warmStart]).toEqual([
      "warm",
      "warm",
      false,
    ]);
    // It went back to the warm pool with the key, and comes back warm.
    expect(third?.firstStartAt).toBe(7200 + 26);
    expect([third?.firstInstance, third?.warmStart]).toEqual([second?.firstInstance, true]);
  });

  it("drains a spot instance on its interruption warning, and its group replaces it once gone", () => {
    // Spot instances are interrupted about once an hour; the job runs for hours.
    const long = trace([[0, "k", 4 * 3600, 4 * 3600]]);
    const seen: Array<{ draining: number }> = [];
    const result = simulate(long, {
      policy: "hearth",
      model: { spotInterruptionsPerHour: 1 },
      seed: 3,
      hearth: {
        onPlan: (observation) =>
          seen.push({ draining: observation.instances.filter((i) => i.state === "draining").length }),
      },
    });
    expect(result.lostJobs).toBe(0);
    expect(result.interruptedJobs).toBe(1);
    // Hearth has no interruption handler: nothing detaches the warned instance or lowers its group's
    // desired capacity, so the group still counts it while it drains.
    // The planner sees the warned instance draining (its heartbeat reports the notice); Hearth has no
    // interruption handler, so the instance stays in its group until it is gone, and the group's
    // replacement runs the job again.
    expect(seen.some((s) => s.draining > 0)).toBe(true);
  });
});

describe("baselines", () => {
  it("static sizes the fleet to the peak concurrency of the trace", () => {
    const t = trace([
      [0, "a", 100, 100],
      [10, "b", 100, 100],
      [20, "c", 100, 100],
      // Starts as the first ends: the peak stays three.
      [100, "d", 100, 100],
    ]);
    expect(peakConcurrency(runSimulation(t, { policy: "static" }).jobs)).toBe(3);
    const result = runSimulation(t, { policy: "static", model: noInterruptions });
    const instances = result.fleet.pools[0]?.instances ?? [];
    expect(instances).toHaveLength(2);
    expect(result.jobs.map((job) => job.firstStartAt)).toEqual([0, 10, 20, 100]);
  });

  it("ephemeral runs at most 7 jobs at once, each on a fresh instance", () => {
    const t = trace(
      Array.from({ length: 20 }, (_, i): [number, string, number, number] => [0, `k${i}`, 50, 100]),
    );
    const result = runSimulation(t, { policy: "ephemeral", model: noInterruptions });
    const starts = result.jobs.map((job) => job.firstStartAt);
    for (const start of starts) {
      const running = starts.filter((other) => other <= start && start < other + 100).length;
      expect(running).toBeLessThanOrEqual(7);
    }
    expect(result.fleet.launches).toBe(20);
    expect(result.jobs.every((job) => !job.warmStart)).toBe(true);
  });

  it("terraform-nixos can terminate busy instances when it scales in, and their jobs run again", () => {
    // Ten short jobs and one long one: once the short ones end, utilisation drops under 0.3 and
    // AWS picks which instances go, the long job's among them now and then.
    const rows: [number, string, number, number][] = [[0, "long", 3000, 3000]];
    for (let i = 0; i < 10; i++) rows.push([0, `short${i}`, 30, 30]);
    const results = [1, 2, 3, 4, 5, 6].map((seed) =>
      simulate(trace(rows), { policy: "terraform-nixos", seed, model: noInterruptions }),
    );
    expect(results.every((r) => r.lostJobs === 0)).toBe(true);
    expect(results.some((r) => r.interruptedJobs > 0)).toBe(true);
  });

  it("autogit removes a runner after 5 minutes idle", () => {
    const t = trace([
      [0, "a", 100, 100],
      [1000, "b", 100, 100],
    ]);
    const result = runSimulation(t, { policy: "autogit", model: noInterruptions });
    // The first runner is idle from 185 s and removed at the 490 s poll: the second job, seen by the
    // poll at 1000 s, needs a new one.
    expect(result.fleet.launches).toBe(2);
    expect(result.jobs[1]?.firstStartAt).toBe(1075);
  });

  it("ghr skips the launch when the job already started, and retries one stranded by another runner", () => {
    const t = trace([
      [0, "a", 100, 100],
      [150, "b", 10, 10],
    ]);
    const result = runSimulation(t, { policy: "ghr", model: noInterruptions });
    expect(result.jobs.map((job) => job.firstStartAt)).toEqual([106, 256]);
    expect(result.fleet.launches).toBe(2);
  });
});
