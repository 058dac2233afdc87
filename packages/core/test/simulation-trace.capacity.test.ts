import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { capacityFloor, defaultFleetModel, seasonalPeak, slidingMax } from "../src/simulation/trace";
import type { Trace, TraceJob } from "../src/simulation/trace/trace";

const job = (id: string, createdAt: number, labels: string[] = ["nix"]): TraceJob => ({
  id,
  createdAt,
  pipelineId: id,
  cacheKey: "k",
  labels,
  warmSeconds: 600,
  coldSeconds: 1200,
});

// Four jobs at once, then one two hours later; one more that routes nowhere.
const trace: Trace = {
  name: "floor",
  resorted: false,
  jobs: [job("a", 0), job("b", 0), job("c", 0), job("d", 0), job("x", 60, ["gpu"]), job("e", 7200)],
};
const poolOf = (j: TraceJob) => (j.labels.includes("gpu") ? null : "p");
const hours = (minutes: number) => minutes / 60;

describe("capacityFloor", () => {
  it("prices the stopped instances each rule keeps, and the jobs they give a slot", () => {
    const floor = capacityFloor(trace, poolOf, defaultFleetModel, 0.95);
    expect(floor.jobs).toBe(5);
    // Five 10-minute runs, per slot at the spot price.
    expect(floor.oracleUsd).toBeCloseTo((3000 / 3600) * (0.05 / 2), 10);
    // The load at arrivals is 1, 2, 3, 4 and 1: covering 95% needs 4 slots, 2 instances.
    expect(floor.constantInstances).toEqual({ p: 2 });
    // Minutes 0-10 run 2 instances, 11-119 none, 120-130 one.
    expect(floor.rules.constant).toMatchObject({ stoppedHours: hours(109 * 2 + 11), coveredJobs: 5 });
    expect(floor.rules.constant.stoppedUsd).toBeCloseTo(hours(229) * 0.011, 10);
    // The last day's peak: nothing before the burst, which finds no slot, then 2 instances throughout.
    expect(floor.rules.pastPeak).toMatchObject({ stoppedHours: hours(229), coveredJobs: 1 });
    // The next hour's peak: 2 instances for the burst, then one from an hour before the last job.
    expect(floor.rules.comingPeak).toMatchObject({ stoppedHours: hours(59), coveredJobs: 5 });
  });

  it("keeps a number for each hour of the day, chosen with the whole trace known", () => {
    const floor = capacityFloor(trace, poolOf, defaultFleetModel, 0.95);
    // Hour 0 keeps the burst's 2 instances (stopped in its minutes 11-59), hour 1 none, hour 2 one,
    // which runs the last job in every minute the trace still has (120-130).
    expect(floor.rules.hourOfDay).toMatchObject({ stoppedHours: hours(2 * 49), coveredJobs: 5 });
  });

  it("never keeps more by hour of the day than a fixed number costs, and covers as much as asked", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.integer({ min: 0, max: 3 * 86400 }), pool: fc.constantFrom("a", "b") }), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.constantFrom(0.5, 0.8, 0.95, 1),
        (arrivals, coverage) => {
          const jobs = arrivals
            .sort((x, y) => x.at - y.at)
            .map((arrival, index) => job(`j${index}`, arrival.at, [arrival.pool]));
          const floor = capacityFloor(
            { name: "random", resorted: false, jobs },
            (j) => j.labels[0] ?? null,
            defaultFleetModel,
            coverage,
          );
          expect(floor.rules.hourOfDay.stoppedHours).toBeLessThanOrEqual(
            floor.rules.constant.stoppedHours + 1e-9,
          );
          expect(floor.rules.hourOfDay.coveredJobs).toBeGreaterThanOrEqual(Math.ceil(coverage * jobs.length));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("keeps, by time of day, what the same time of the past days and the past hours ran", () => {
    // Four jobs at 10:00 on the first day, four at 10:30 on the next.
    const day = 86400;
    const daily: Trace = {
      name: "daily",
      resorted: false,
      jobs: [0, 1, 2, 3]
        .flatMap((n) => [job(`d0-${n}`, 36000), job(`d1-${n}`, day + 37800)])
        .sort((a, b) => a.createdAt - b.createdAt),
    };
    const floor = capacityFloor(daily, () => "p", defaultFleetModel, 0.95);
    // The first burst has no past, so no slot. After it the past 3 hours keep its 2 instances
    // (stopped in minutes 611-790). The next day, the same time ±60 min keeps them from 09:00
    // (minute 1980) until the second burst (2070-2080), which they cover; the trace ends at 2080.
    expect(floor.rules.seasonal).toMatchObject({ stoppedHours: hours(2 * 180 + 2 * 90), coveredJobs: 4 });
  });

  it("looks back and ahead as far as told", () => {
    const floor = capacityFloor(trace, poolOf, defaultFleetModel, 0.95, { pastHours: 1, comingHours: 2 });
    // Back an hour: 2 instances in minutes 1-70 (stopped from 11 on), none in 71-120, so the last job
    // finds no slot, and neither does the burst, which nothing came before.
    expect(floor.rules.pastPeak).toMatchObject({ stoppedHours: hours(60 * 2), coveredJobs: 0 });
    // Two hours ahead: the burst's 2 instances, then one from minute 11 on, for the last job.
    expect(floor.rules.comingPeak).toMatchObject({ stoppedHours: hours(109), coveredJobs: 5 });
  });

  it("keeps fewer instances for a lower coverage, and gives fewer jobs a slot", () => {
    const floor = capacityFloor(trace, poolOf, defaultFleetModel, 0.6);
    expect(floor.constantInstances).toEqual({ p: 1 });
    expect(floor.rules.constant).toMatchObject({ stoppedHours: hours(109), coveredJobs: 3 });
  });

  it("chooses the pools' numbers together: coverage is over all the trace's jobs, as the p95 is", () => {
    // A second pool with one job: covering it would keep an instance stopped for two hours.
    const two: Trace = { ...trace, jobs: [...trace.jobs, { ...job("q1", 0), labels: ["q"] }] };
    const poolOfTwo = (j: TraceJob) => (j.labels.includes("q") ? "q" : poolOf(j));
    const floor = capacityFloor(two, poolOfTwo, defaultFleetModel, 0.8);
    // Five of the six jobs: the first pool's two instances give them a slot, the second pool none.
    expect(floor.constantInstances).toEqual({ p: 2, q: 0 });
    expect(floor.rules.constant).toMatchObject({ stoppedHours: hours(229), coveredJobs: 5 });
  });
});

describe("seasonalPeak", () => {
  it("agrees with a direct scan", () => {
    const minutes = 3 * 1440 + 200;
    fc.assert(
      fc.property(
        fc.array(fc.record({ at: fc.nat(minutes - 1), value: fc.nat(9) }), { maxLength: 30 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 90 }),
        fc.integer({ min: 1, max: 4 }),
        (points, days, spreadMinutes, recentHours) => {
          const peak = new Array<number>(minutes).fill(0);
          for (const { at, value } of points) peak[at] = Math.max(peak[at] as number, value);
          const most = (from: number, to: number) =>
            Math.max(0, ...peak.slice(Math.max(0, from), Math.max(0, to)));
          const direct = peak.map((_, b) => {
            let value = most(b - 60 * recentHours, b);
            for (let d = 1; d <= days; d++) {
              const c = b - d * 1440;
              value = Math.max(value, most(c - spreadMinutes, c + spreadMinutes + 1));
            }
            return value;
          });
          expect(seasonalPeak(peak, { days, spreadMinutes, recentHours })).toEqual(direct);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("refuses a window that would reach the present", () => {
    expect(() => seasonalPeak([0, 1], { days: 1, spreadMinutes: 24 * 60, recentHours: 0 })).toThrow(
      RangeError,
    );
  });
});

describe("slidingMax", () => {
  it("takes the largest value over the window before each entry, or from it on", () => {
    expect(slidingMax([1, 3, 2, 0, 5], 2, "behind")).toEqual([0, 1, 3, 3, 2]);
    expect(slidingMax([1, 3, 2, 0, 5], 2, "ahead")).toEqual([3, 3, 2, 5, 5]);
  });

  it("agrees with a direct scan", () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(50), { maxLength: 40 }),
        fc.integer({ min: 1, max: 12 }),
        (values, width) => {
          const behind = values.map((_, b) => Math.max(0, ...values.slice(Math.max(0, b - width), b)));
          const ahead = values.map((_, b) => Math.max(0, ...values.slice(b, b + width)));
          expect(slidingMax(values, width, "behind")).toEqual(behind);
          expect(slidingMax(values, width, "ahead")).toEqual(ahead);
        },
      ),
    );
  });
});
