import { describe, expect, it } from "vitest";
import { createLocalScaleFleet } from "../src/local/workflows";
import { silentLogger } from "../src/log";
import type { ScaleFleetTasks } from "../src/scale";

/** Task handlers that only count their calls: the run's steps are not what these tests look at. */
function countingTasks() {
  const calls: string[] = [];
  const step = (name: string) => async () => {
    calls.push(name);
    throw new Error(`${name} is not part of this test`);
  };
  const tasks = {
    observe: step("observe"),
    plan: step("plan"),
    apply: step("apply"),
    finish: step("finish"),
    recordFailure: step("recordFailure"),
  } as unknown as ScaleFleetTasks;
  return { tasks, calls };
}

describe("local ScaleFleet, once stopped", () => {
  // A webhook answered while the server closes used to start a run after the stop; the process then
  // waited for that run (up to its 60 iterations) and a clean stop did not end.
  it("starts no run, and frees the lease its caller took for it", async () => {
    const { tasks, calls } = countingTasks();
    const released: string[] = [];
    const fleet = createLocalScaleFleet({
      tasks,
      release: async (pool, holder) => {
        released.push(`${pool}/${holder}`);
      },
      log: silentLogger,
      maxIterations: 60,
    });
    await fleet.stop();
    await fleet.start("x86_64", "webhook-1");
    await fleet.idle();
    expect(fleet.executions).toBe(0);
    expect(calls).toEqual([]);
    expect(released).toEqual(["x86_64/webhook-1"]);
  });
});
