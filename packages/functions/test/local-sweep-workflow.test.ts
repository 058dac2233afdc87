import { FakeClock } from "@hearth/core/clock";
import type { SweepAction, SweepActOutcome, SweepSurvey } from "@hearth/core/sweep";
import { SWEEP_ACT_CONCURRENCY } from "@hearth/core/workflows";
import { describe, expect, it } from "vitest";
import { createLocalSweep } from "../src/local/sweep";
import { silentLogger } from "../src/log";
import type { SweepTasks } from "../src/sweep";

/**
 * The Sweep's state machine (the deployed ASL) under aws-local-stepfunctions, with task handlers that
 * record what they were given: which states run, with what input, in what order and how many at once.
 */

const action = (n: number): SweepAction => ({
  class: "ghost-runner",
  subject: `github-runner:org/local:${n}`,
  pool: "x86_64",
  reason: "no-live-instance",
  detail: { runnerId: n },
  markedAt: "2026-01-05T09:00:00.000Z",
});

function survey(sweepId: string, due: SweepAction[], complete = true): SweepSurvey {
  return {
    sweepId,
    complete,
    unknown: complete ? [] : [{ listing: "github-runners:org/local", reason: "500" }],
    marked: { "ghost-runner": 0, "orphan-instance": 0, "stuck-job": 0, "stale-job": 0, "offline-manager": 0 },
    due,
    cleared: 0,
    applied: 0,
    dryRun: false,
  };
}

function recordingTasks(options: {
  due: SweepAction[];
  complete?: boolean;
  surveyFails?: boolean;
  actFails?: (action: SweepAction) => boolean;
}) {
  const calls: Array<{ step: string; input: unknown }> = [];
  let acting = 0;
  let mostAtOnce = 0;
  const tasks: SweepTasks = {
    survey: async (input) => {
      calls.push({ step: "survey", input });
      if (options.surveyFails) throw new Error("the table is unreachable");
      return survey((input as { sweepId: string }).sweepId, options.due, options.complete);
    },
    act: async (input) => {
      calls.push({ step: "act", input });
      const { action: due } = input as { action: SweepAction };
      acting += 1;
      mostAtOnce = Math.max(mostAtOnce, acting);
      await new Promise((resolve) => setTimeout(resolve, 5));
      acting -= 1;
      if (options.actFails?.(due)) throw new Error("GitHub is down");
      return { kind: "done", action: due, calls: [`DeleteRunner(${due.detail.runnerId})`] };
    },
    finish: async (input) => {
      calls.push({ step: "finish", input });
      return {};
    },
    recordFailure: async (input) => {
      calls.push({ step: "recordFailure", input });
      return {};
    },
  };
  return { tasks, calls, mostAtOnce: () => mostAtOnce };
}

const start = (tasks: SweepTasks) =>
  createLocalSweep({
    tasks,
    log: silentLogger,
    clock: new FakeClock(),
    everySeconds: 0,
    background: (task) => void task(),
  });

describe("the Sweep state machine", () => {
  it("names the survey by its execution, acts on each due mark a few at a time, and finishes with every outcome", async () => {
    const due = Array.from({ length: 9 }, (_, n) => action(n + 1));
    const recorded = recordingTasks({ due });
    const run = await start(recorded.tasks).run();
    const [first] = recorded.calls;
    expect(first?.step).toBe("survey");
    const sweepId = (first?.input as { sweepId: string } | undefined)?.sweepId;
    expect(sweepId).toMatch(/^[0-9a-f-]{36}$/);
    const acts = recorded.calls.filter((call) => call.step === "act");
    expect(acts.map((call) => (call.input as { action: SweepAction }).action.subject).sort()).toEqual(
      due.map((item) => item.subject).sort(),
    );
    expect(acts.every((call) => (call.input as { sweepId: string }).sweepId === sweepId)).toBe(true);
    expect(recorded.mostAtOnce()).toBeGreaterThan(1);
    expect(recorded.mostAtOnce()).toBeLessThanOrEqual(SWEEP_ACT_CONCURRENCY);
    expect(recorded.calls.at(-1)?.step).toBe("finish");
    expect(run.outcomes.map((outcome) => outcome.kind)).toEqual(due.map(() => "done"));
    expect(run.survey.sweepId).toBe(sweepId);
  });

  it("goes straight to Finish when the survey is incomplete, or nothing is due", async () => {
    for (const options of [{ due: [action(1)], complete: false }, { due: [] }]) {
      const recorded = recordingTasks(options);
      const run = await start(recorded.tasks).run();
      expect(recorded.calls.map((call) => call.step)).toEqual(["survey", "finish"]);
      expect(run.outcomes).toBeUndefined();
    }
  });

  it("makes one failed action a refused outcome, and still acts on the others", async () => {
    const recorded = recordingTasks({
      due: [action(1), action(2), action(3)],
      actFails: (a) => a.detail.runnerId === 2,
    });
    const run = await start(recorded.tasks).run();
    const byRunner = new Map(
      run.outcomes.map((outcome: SweepActOutcome) => [outcome.action.detail.runnerId, outcome]),
    );
    expect(byRunner.get(1)?.kind).toBe("done");
    expect(byRunner.get(3)?.kind).toBe("done");
    expect(byRunner.get(2)).toMatchObject({ kind: "refused", why: expect.stringMatching(/the step failed/) });
    expect(recorded.calls.at(-1)?.step).toBe("finish");
  });

  it("records a failed survey and fails the run", async () => {
    const recorded = recordingTasks({ due: [], surveyFails: true });
    await expect(start(recorded.tasks).run()).rejects.toThrow(/Hearth.SweepFailed|failed/);
    expect(recorded.calls.map((call) => call.step)).toEqual(["survey", "recordFailure"]);
    expect((recorded.calls[1]?.input as { error: { Cause: string } } | undefined)?.error.Cause).toMatch(
      /unreachable/,
    );
  });

  it("sweeps every everySeconds on local mode's clock, until stopped", async () => {
    const recorded = recordingTasks({ due: [] });
    const clock = new FakeClock();
    const work: Promise<void>[] = [];
    const sweep = createLocalSweep({
      tasks: recorded.tasks,
      log: silentLogger,
      clock,
      everySeconds: 300,
      background: (task) => void work.push(task()),
    });
    await clock.advance(299_000);
    expect(work).toHaveLength(0);
    await clock.advance(1_000);
    await Promise.all(work);
    await clock.advance(300_000);
    await Promise.all(work);
    expect(recorded.calls.filter((call) => call.step === "survey")).toHaveLength(2);
    await sweep.stop();
    await clock.advance(900_000);
    expect(work).toHaveLength(2);
  });

  it("runs one sweep at a time, and none once stopped", async () => {
    const recorded = recordingTasks({ due: [action(1)] });
    const sweep = start(recorded.tasks);
    await Promise.all([sweep.run(), sweep.run()]);
    const steps = recorded.calls.map((call) => call.step);
    expect(steps).toEqual(["survey", "act", "finish", "survey", "act", "finish"]);
    await sweep.stop();
    await expect(sweep.run()).rejects.toThrow(/stopping/);
  });
});
