import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Arrival, DemandHistory, defaultForecastOptions, forecastDemand } from "../src/planner";

const T0 = Date.parse("2026-03-02T08:00:00Z");
const minute = 60_000;
const hour = 3600_000;

const arrival = (at: number, cacheKey = "k", overrides: Partial<Arrival> = {}): Arrival => ({
  pool: "x86_64",
  at,
  cacheKey,
  finishedAt: null,
  ...overrides,
});

/** `size` jobs arriving a second apart from `at`, each running `seconds`. */
const pipeline = (at: number, size: number, seconds = 600, key = "k") =>
  Array.from({ length: size }, (_, i) =>
    arrival(at + i * 1000, `${key}${i}`, { finishedAt: at + seconds * 1000 }),
  );

describe("forecastDemand", () => {
  it("is empty without jobs", () => {
    expect(forecastDemand([], T0)).toEqual({});
  });

  it("groups jobs within a minute of each other into bursts", () => {
    // Ten pipelines of 1 to 10 jobs, half an hour apart; each pipeline's jobs a second apart.
    const jobs = Array.from({ length: 10 }, (_, i) => pipeline(T0 + i * 30 * minute, i + 1)).flat();
    const demand = forecastDemand(jobs, T0 + 6 * hour).x86_64;
    expect(demand?.peakBurstJobs).toBe(10);
    // The 90th percentile over jobs, by nearest rank: the 50th of 55 jobs came in the burst of 10,
    // and the 45th in the burst of 9.
    expect(demand?.burstJobs).toBe(10);
    const fewer = jobs.filter((job) => job.at < T0 + 9 * 30 * minute);
    expect(forecastDemand(fewer, T0 + 6 * hour).x86_64?.burstJobs).toBe(9);
    // Weighted by jobs, not bursts: nine pipelines of 2 and one of 20. Nine bursts in ten are of 2,
    // but 20 of the 38 jobs arrived in the wide one, and that is what a wait target counts.
    const wide = [
      ...Array.from({ length: 9 }, (_, i) => pipeline(T0 + i * 30 * minute, 2)).flat(),
      ...pipeline(T0 + 9 * 30 * minute, 20),
    ];
    const weighted = forecastDemand(wide, T0 + 6 * hour).x86_64;
    expect(weighted?.burstJobs).toBe(20);
    expect(weighted?.loadJobs).toBe(20);
    // Two pipelines 50 s apart are one burst.
    const close = [...pipeline(T0, 3), ...pipeline(T0 + 52_000, 3)];
    expect(forecastDemand(close, T0 + hour).x86_64?.peakBurstJobs).toBe(6);
  });

  it("measures the load: jobs queued or running at once", () => {
    // Two pipelines overlap: 4 jobs running for an hour, 3 more arrive 10 minutes later.
    const jobs = [...pipeline(T0, 4, 3600), ...pipeline(T0 + 10 * minute, 3, 60)];
    const demand = forecastDemand(jobs, T0 + 2 * hour).x86_64;
    expect(demand?.peakJobs).toBe(7);
    expect(demand?.loadJobs).toBe(7);
  });

  it("counts a job without a known finish for bursts but not for load", () => {
    const jobs = Array.from({ length: 6 }, (_, i) => ({
      pool: "x86_64",
      at: T0 + i * 10 * minute,
      cacheKey: "k",
    }));
    const demand = forecastDemand(jobs, T0 + 2 * hour).x86_64;
    expect(demand?.peakJobs).toBe(1);
    // Still running (null): it counts until it goes stale.
    const stale = jobs.map((job) => ({ ...job, finishedAt: null }));
    expect(forecastDemand(stale, T0 + 2 * hour).x86_64?.peakJobs).toBe(6);
    expect(forecastDemand(stale, T0 + 30 * hour).x86_64?.loadJobs).toBe(6);
    expect(forecastDemand(stale, T0 + 30 * hour).x86_64?.peakJobs).toBe(0);
  });

  it("weighs cache keys by their recent jobs, and forgets them after the lookback", () => {
    const jobs = [arrival(T0, "a"), arrival(T0 + minute * 5, "a"), arrival(T0 + minute * 10, "b")];
    expect(forecastDemand(jobs, T0 + hour).x86_64?.keyWeights).toEqual({ a: 2, b: 1 });
    const later = T0 + defaultForecastOptions.lookbackMs + 7 * minute;
    expect(forecastDemand(jobs, later).x86_64?.keyWeights).toEqual({ b: 1 });
    expect(forecastDemand(jobs, later).x86_64?.burstJobs).toBe(1);
  });

  it("takes a cache key of any name", () => {
    const demand = forecastDemand([arrival(T0, "__proto__"), arrival(T0, "constructor")], T0 + minute);
    expect({ ...demand.x86_64?.keyWeights }).toEqual(
      Object.fromEntries([
        ["__proto__", 1],
        ["constructor", 1],
      ]),
    );
  });

  it("counts the arrival rate over the last hour, and ignores jobs after now", () => {
    const jobs = [arrival(T0 - 2 * hour), ...Array.from({ length: 30 }, (_, i) => arrival(T0 - i * minute))];
    expect(forecastDemand([...jobs, arrival(T0 + minute)], T0).x86_64?.jobsPerHour).toBe(30);
  });

  it("keeps pools apart", () => {
    const demand = forecastDemand([arrival(T0), arrival(T0, "k", { pool: "aarch64" })], T0 + minute);
    expect(Object.keys(demand)).toEqual(["aarch64", "x86_64"]);
  });

  it("gives the same forecast for the jobs in any order, as the incremental history does", () => {
    const jobArb = fc.record({
      pool: fc.constantFrom("x86_64", "aarch64"),
      at: fc.integer({ min: 0, max: 48 * 60 }).map((m) => T0 + m * minute),
      cacheKey: fc.constantFrom("a", "b", "c"),
      seconds: fc.option(fc.integer({ min: 1, max: 7200 }), { nil: null }),
    });
    fc.assert(
      fc.property(
        fc.array(jobArb, { maxLength: 40 }),
        fc.integer({ min: 0, max: 72 * 60 }),
        (raw, nowMinutes) => {
          const now = T0 + nowMinutes * minute;
          const jobs: Arrival[] = raw.map(({ seconds, ...job }) => ({
            ...job,
            finishedAt: seconds === null ? null : job.at + seconds * 1000,
          }));
          const forecast = forecastDemand(jobs, now);
          expect(forecastDemand([...jobs].reverse(), now)).toEqual(forecast);

          // The same events, fed one by one in time order.
          const history = new DemandHistory();
          const events = jobs
            .filter((job) => job.at <= now)
            .flatMap((job) => {
              const finish = job.finishedAt ?? job.at + defaultForecastOptions.staleAfterMs;
              return [
                { at: job.at, order: 0, job },
                ...(finish <= now ? [{ at: finish, order: 1, job }] : []),
              ];
            })
            .sort((a, b) => a.at - b.at || a.order - b.order || (a.job.pool < b.job.pool ? -1 : 1));
          for (const event of events) {
            if (event.order === 0) history.observe(event.job);
            else history.finish(event.job.pool, event.at);
          }
          const incremental = history.forecast(now);
          for (const pool of Object.keys(forecast)) {
            expect({ ...incremental[pool], keyWeights: { ...incremental[pool]?.keyWeights } }).toEqual({
              ...forecast[pool],
              keyWeights: { ...forecast[pool]?.keyWeights },
            });
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
