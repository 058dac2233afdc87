import { readFileSync } from "node:fs";
import { defaultPools } from "@hearth/core/pools";
import type { Observation, ScalingDeps } from "@hearth/core/scaling";
import { defaultFleetModel, parseTrace, poolsForModel, simulate } from "@hearth/core/simulation/trace";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../src/log";
import { scaleFleetTasks } from "../src/scale";

/**
 * The benchmark measures what ships: the trace simulator's `hearth` policy plans from observations
 * it assembles from its state, and production's Plan task, given each of those observations as Step
 * Functions hands it over (JSON), makes the same plan.
 */
describe("the simulator's hearth policy and production's Plan task", () => {
  it("make the same plan from every observation of a replayed trace", async () => {
    const text = readFileSync(new URL("../../../traces/synthetic-bursty.csv", import.meta.url), "utf8");
    const trace = parseTrace(text, "synthetic-bursty");
    // The first day: pipelines fanning out, launches, resumes, releases and interruptions.
    const day = { ...trace, jobs: trace.jobs.filter((job) => job.createdAt < 86_400) };
    const steps: Array<{ observation: string; plan: unknown }> = [];
    simulate(day, {
      policy: "hearth",
      seed: 1,
      hearth: {
        onPlan: (observation, plan) =>
          steps.push({ observation: JSON.stringify(observation), plan: JSON.parse(JSON.stringify(plan)) }),
      },
    });

    const pools = poolsForModel(defaultPools, defaultFleetModel);
    // The Plan task reads only the pools; the other ports are never reached by it.
    const tasks = scaleFleetTasks({ pools } as unknown as ScalingDeps, silentLogger);
    let launched = 0;
    let released = 0;
    let resumed = 0;
    for (const step of steps) {
      const observation = JSON.parse(step.observation) as Observation;
      const plan = await tasks.plan({
        pool: observation.pool,
        holder: "run",
        maxIterations: 60,
        observation,
      });
      expect(plan).toEqual(step.plan);
      launched += plan.counts.launch;
      resumed += plan.counts.resume;
      released += plan.release.length;
    }
    // The replay exercised the planner's decisions, not only "steady".
    expect(steps.length).toBeGreaterThan(100);
    expect([launched > 0, resumed > 0, released > 0]).toEqual([true, true, true]);
  });
});
