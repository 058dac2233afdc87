import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defaultPools, poolConfigSchema } from "../src/pools";
import { parseTrace, policyNames, simulate, traceWarnings, withPoolSettings } from "../src/simulation/trace";
import { defaultHearthOptions } from "../src/simulation/trace/policies/hearth";
import { type PolicyContext, runStart, timersStart } from "../src/simulation/trace/policy";
import { syntheticTraceCsv } from "../src/simulation/trace/synthetic";
import { LATE_START_SECONDS, type Trace, type TraceJob } from "../src/simulation/trace/trace";
import { COLD_LISTEN_DELAY_MS } from "../src/stores/listening";

const resultKeys = [
  "policy",
  "trace",
  "jobs",
  "waitP50",
  "waitP95",
  "waitMax",
  "costUsd",
  "instanceHours",
  "warmHitRate",
  "interruptedJobs",
  "lostJobs",
];

const synthetic = parseTrace(syntheticTraceCsv({ jobs: 600, days: 2, seed: 5 }), "synthetic-600");

describe("simulate", () => {
  it("returns the README's figures for every policy", () => {
    for (const policy of policyNames) {
      const { details, ...result } = simulate(synthetic, { policy });
      expect(Object.keys(result)).toEqual(resultKeys);
      expect(result).toMatchObject({
        policy,
        trace: "synthetic-600",
        jobs: synthetic.jobs.length,
        lostJobs: 0,
      });
      expect(details.unroutable).toEqual([]);
    }
  });

  it("gives the baselines the binary cache only in their +cache variants, and Hearth by default", () => {
    const diurnal = parseTrace(syntheticTraceCsv({ jobs: 600, days: 2, seed: 5 }), "synthetic-600");
    for (const base of ["static", "terraform-nixos", "autogit", "ephemeral", "ghr"] as const) {
      const plain = simulate(diurnal, { policy: base });
      const cached = simulate(diurnal, { policy: `${base}+cache` });
      expect(plain.details.stores.binaryCache).toBe(false);
      expect(plain.details.stores.substituted).toBe(0);
      expect(cached.policy).toBe(`${base}+cache`);
      expect(cached.details.stores.binaryCache).toBe(true);
      expect(cached.details.stores.substituted).toBeGreaterThan(0);
      // The same policy with the cache forced on is the variant.
      const { policy: _p, ...forced } = simulate(diurnal, { policy: base, binaryCache: true });
      const { policy: _c, ...variant } = cached;
      expect(forced).toEqual(variant);
    }
    const hearth = simulate(diurnal, { policy: "hearth" });
    expect(hearth.details.stores.binaryCache).toBe(true);
    expect(simulate(diurnal, { policy: "hearth", binaryCache: false }).details.stores.substituted).toBe(0);
  });

  it("places jobs as the product does by default: the pool setting's default, heard at each heartbeat", () => {
    expect(defaultHearthOptions.placement.placement).toBe(poolConfigSchema.parse(defaultPools[0]).placement);
    expect(defaultHearthOptions.placement.coldListenDelaySeconds * 1000).toBe(COLD_LISTEN_DELAY_MS);
    // The agent's own default (packages/agent/src/config.ts, heartbeatSeconds).
    expect(defaultHearthOptions.placement.heartbeatSeconds).toBe(15);
  });

  it("credits Hearth by default with none of the store prototypes", () => {
    // Each prototype models a mechanism the product does not build yet: flipping one on by default
    // would credit Hearth's published figures with it.
    expect(defaultHearthOptions.mechanisms).toEqual({
      chooseResume: false,
      resumeOnlyNeeded: true,
      instantListening: false,
      idleListening: "none",
      storeVolumes: "off",
      volumeRetentionHours: 24,
      stoppedStoreTtlHours: 0,
    });
    const diurnal = parseTrace(syntheticTraceCsv({ jobs: 600, days: 2, seed: 5 }), "synthetic-600");
    // The spot warm group is built, and the default: its stores are persistent spot instances, some
    // of whose starts find no capacity. No store volume is attached, with either warm market.
    const shipped = simulate(diurnal, { policy: "hearth" });
    expect(shipped.details.stores).toMatchObject({ volumeAttaches: 0 });
    expect((shipped.details.stores as { failedStarts: number }).failedStarts).toBeGreaterThan(0);
    const onDemand = simulate(diurnal, { policy: "hearth", hearth: { warmMarket: "on-demand" } });
    expect(onDemand.details.stores).toMatchObject({ volumeAttaches: 0 });
  });

  it("is deterministic for a seed", () => {
    for (const policy of policyNames) {
      expect(simulate(synthetic, { policy, seed: 11 })).toEqual(simulate(synthetic, { policy, seed: 11 }));
    }
  });

  it("draws spot interruptions from the seed", () => {
    const runs = [1, 2, 3, 4].map((seed) => simulate(synthetic, { policy: "ghr", seed }));
    expect(new Set(runs.map((r) => r.costUsd)).size).toBeGreaterThan(1);
  });

  it("multiplies the spot interruption rate, and reports what interruptions cost", () => {
    const at = (multiplier: number, rate?: number) =>
      simulate(synthetic, {
        policy: "hearth",
        seed: 2,
        interruptionRateMultiplier: multiplier,
        ...(rate === undefined ? {} : { model: { spotInterruptionsPerHour: rate } }),
      });
    const five = at(5);
    // 5× the model's 0.05/h is the same run as a rate of 0.25/h.
    expect(five).toEqual(at(1, 0.25));
    expect(five.details.interruptions.ratePerHour).toBeCloseTo(0.25, 12);
    const none = at(0).details.interruptions;
    expect([none.ratePerHour, none.interruptedJobs, none.retries]).toEqual([0, 0, 0]);
    const figures = five.details.interruptions;
    expect(figures.interruptedJobs).toBe(five.interruptedJobs);
    expect(figures.interruptedJobs).toBeGreaterThan(0);
    // Every interrupted job is retried or lost (counted in lostJobs).
    expect(figures.retries).toBeGreaterThanOrEqual(figures.interruptedJobs - figures.lostToInterruptions);
    expect(five.lostJobs).toBe(figures.lostToInterruptions);
    expect(figures.extraWaitMax).toBeGreaterThanOrEqual(figures.extraWaitP95);
    expect(() => at(-1)).toThrow(/multiplier must be a non-negative number/);
  });

  it("reports unroutable jobs and counts them as lost, without running them", () => {
    const jobs: TraceJob[] = [
      {
        id: "a",
        createdAt: 0,
        pipelineId: "p",
        cacheKey: "k",
        labels: ["nix", "x86_64-linux"],
        warmSeconds: 10,
        coldSeconds: 20,
      },
      {
        id: "b",
        createdAt: 1,
        pipelineId: "p",
        cacheKey: "k",
        labels: ["windows-latest"],
        warmSeconds: 10,
        coldSeconds: 20,
      },
      {
        id: "c",
        createdAt: 2,
        pipelineId: "p",
        cacheKey: "k",
        labels: ["nix", "riscv64-linux"],
        warmSeconds: 10,
        coldSeconds: 20,
      },
      // No labels: an untagged job, for the pool that takes those.
      { id: "d", createdAt: 3, pipelineId: "p", cacheKey: "k", labels: [], warmSeconds: 10, coldSeconds: 20 },
    ];
    const trace: Trace = { name: "odd", jobs, resorted: false };
    for (const policy of policyNames) {
      const result = simulate(trace, { policy, model: { spotInterruptionsPerHour: 0 } });
      expect(result.jobs).toBe(4);
      expect(result.lostJobs).toBe(2);
      expect(result.details.unroutable).toEqual([
        { jobId: "b", reason: 'asks for the GitHub-hosted runner label "windows-latest"' },
        { jobId: "c", reason: "no pool has every label of [nix, riscv64-linux]" },
      ]);
    }
  });

  it("handles an empty trace", () => {
    const empty: Trace = { name: "empty", jobs: [], resorted: false };
    for (const policy of policyNames) {
      const { details, ...result } = simulate(empty, { policy });
      expect(result).toEqual({
        policy,
        trace: "empty",
        jobs: 0,
        waitP50: 0,
        waitP95: 0,
        waitMax: 0,
        costUsd: 0,
        instanceHours: 0,
        warmHitRate: 0,
        interruptedJobs: 0,
        lostJobs: 0,
      });
      expect(details.endSeconds).toBe(0);
    }
  });

  it("takes the fleet model's values", () => {
    const cheap = simulate(synthetic, { policy: "static", model: { onDemandHourly: 0.0725 } });
    const dear = simulate(synthetic, { policy: "static" });
    expect(cheap.costUsd).toBeCloseTo(dear.costUsd / 2, 9);
    const slow = simulate(synthetic, {
      policy: "ghr",
      model: { coldBootSeconds: 300, spotInterruptionsPerHour: 0 },
    });
    expect(slow.waitP50).toBeGreaterThanOrEqual(331);
  });

  it("finishes every job of small random traces, at no less than the oracle's cost", () => {
    const jobArb = fc.record({
      gap: fc.integer({ min: 0, max: 900 }),
      key: fc.constantFrom("a", "b", "c", "d"),
      arm: fc.boolean(),
      warm: fc.integer({ min: 1, max: 1800 }),
      extra: fc.integer({ min: 0, max: 1800 }),
    });
    fc.assert(
      fc.property(
        fc.array(jobArb, { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 1000 }),
        (rows, seed) => {
          let at = 0;
          const jobs: TraceJob[] = rows.map((row, i) => {
            at += row.gap;
            return {
              id: `j${i}`,
              createdAt: at,
              pipelineId: `p${at}`,
              cacheKey: row.key,
              labels: ["nix", row.arm ? "aarch64-linux" : "x86_64-linux"],
              warmSeconds: row.warm,
              coldSeconds: row.warm + row.extra,
            };
          });
          const trace: Trace = { name: "random", jobs, resorted: false };
          const oracle = simulate(trace, { policy: "oracle" }).costUsd;
          for (const policy of policyNames) {
            const result = simulate(trace, { policy, seed });
            expect(result.lostJobs).toBe(0);
            expect(result.waitP50).toBeGreaterThanOrEqual(0);
            expect(result.waitP95).toBeGreaterThanOrEqual(result.waitP50);
            expect(result.waitMax).toBeGreaterThanOrEqual(result.waitP95);
            expect(result.warmHitRate).toBeGreaterThanOrEqual(0);
            expect(result.warmHitRate).toBeLessThanOrEqual(1);
            expect(result.costUsd).toBeGreaterThanOrEqual(oracle - 1e-9);
            // Never cheaper than its running hours at the spot price.
            expect(result.costUsd).toBeGreaterThanOrEqual(result.instanceHours * 0.05 - 1e-9);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

const bitcoin = new URL("../../../traces/bitcoin-core-gha-2025-09.csv", import.meta.url);

describe("the bundled traces", () => {
  it("parses the bitcoin-core trace and routes every job", () => {
    const trace = parseTrace(readFileSync(bitcoin, "utf8"), "bitcoin");
    expect(trace.jobs).toHaveLength(6239);
    expect(trace.resorted).toBe(false);
    expect(simulate(trace, { policy: "oracle" }).details.unroutable).toEqual([]);
  });
});

describe("a trace whose first job arrives late", () => {
  it("runs, for every policy, as the same trace starting an hour before its first job", () => {
    // The same jobs an hour into a trace, and 38 years into one (clock times): a whole number of
    // minutes apart, so Hearth's minute tick keeps its phase.
    const jobs = (shift: number) =>
      [0, 30, 400, 405, 2_000, 2_010, 7_200].map((at, index) => ({
        id: String(index + 1),
        createdAt: shift + 3_600 + at,
        pipelineId: `p${index}`,
        cacheKey: `k${index % 3}`,
        labels: ["nix", "x86_64-linux"],
        warmSeconds: 120,
        coldSeconds: 300,
      }));
    const shift = 60 * 20_000_000;
    // A ready minimum, which starts instances before any job: it starts with the run, as a fixed fleet does.
    const ready = withPoolSettings(defaultPools, { warm: { minReady: 2 } });
    const run = (offset: number, policy: "hearth" | "static", pools?: typeof ready) => {
      const r = simulate(
        { name: "late", jobs: jobs(offset), resorted: false },
        { policy, seed: 1, ...(pools ? { pools } : {}) },
      );
      return {
        waits: [r.waitP50, r.waitP95, r.waitMax].map((s) => Math.round(s)),
        cost: r.costUsd.toFixed(4),
        lost: r.lostJobs,
      };
    };
    // Ticking through 38 years of nothing would not finish in the test's time.
    expect(run(shift, "hearth")).toEqual(run(0, "hearth"));
    expect(run(shift, "hearth", ready)).toEqual(run(0, "hearth", ready));
    expect(run(shift, "static")).toEqual(run(0, "static"));
  });

  it("starts the run at the trace's start unless the first job comes more than a week in", () => {
    const context = (first: number) =>
      ({ jobs: [{ trace: { createdAt: first } }] }) as unknown as PolicyContext;
    // Six hours in (a trace from midnight, its first job at 06:00): the run starts at 0, so a ready
    // minimum or a fixed fleet runs those hours, as it would have.
    expect(runStart(context(6 * 3600))).toBe(0);
    expect(timersStart(context(6 * 3600), 60)).toBe(0);
    expect(runStart(context(LATE_START_SECONDS))).toBe(0);
    // Later: an hour before the first job, the timers on their period's beat.
    expect(runStart(context(LATE_START_SECONDS + 90))).toBe(LATE_START_SECONDS + 90 - 3600);
    expect(timersStart(context(LATE_START_SECONDS + 90), 60)).toBe(LATE_START_SECONDS - 3600 + 60);
  });

  it("warns of clock times and of jobs slower warm than cold", () => {
    const job = { id: "1", pipelineId: "p", cacheKey: "k", labels: [], warmSeconds: 60, coldSeconds: 120 };
    expect(traceWarnings({ name: "t", jobs: [{ ...job, createdAt: 0 }], resorted: false })).toEqual([]);
    expect(
      traceWarnings({
        name: "t",
        jobs: [
          { ...job, createdAt: 8 * 86_400 },
          { ...job, id: "2", createdAt: 8 * 86_400, warmSeconds: 121 },
        ],
        resorted: false,
      }),
    ).toEqual([
      "the first job arrives 8 days after the trace's start (created_at_s counts from it): clock times? The run starts an hour before it, for every policy",
      "1 of 2 jobs run longer warm than cold (duration_warm_s > duration_cold_s); simulated as given",
    ]);
  });
});

/** A trace of one x86_64 job. */
const oneJobTrace = (job: Pick<TraceJob, "createdAt" | "warmSeconds" | "coldSeconds">): Trace => ({
  name: "one",
  resorted: false,
  jobs: [{ id: "1", pipelineId: "p", cacheKey: "k", labels: ["nix", "x86_64-linux"], ...job }],
});

describe("the horizon", () => {
  it("bills every policy until 30 days after the last arrival when a job is still unfinished, a fixed fleet too", () => {
    const trace = oneJobTrace({ createdAt: 0, warmSeconds: 5_000_000, coldSeconds: 6_000_000 });
    for (const policy of ["static", "hearth", "ghr"] as const) {
      const r = simulate(trace, { policy, seed: 1 });
      expect([policy, r.lostJobs, r.details.endSeconds]).toEqual([policy, 1, 30 * 24 * 3600]);
    }
    // The fixed fleet's one instance, on demand, for the 720 hours.
    expect(simulate(trace, { policy: "static", seed: 1 }).costUsd).toBeCloseTo(720 * 0.145, 6);
    // The oracle too ends there: the job is lost, and its slot billed for the 720 hours, at spot.
    const oracle = simulate(trace, { policy: "oracle", seed: 1 });
    expect([oracle.lostJobs, oracle.details.endSeconds]).toEqual([1, 30 * 24 * 3600]);
    expect(oracle.costUsd).toBeCloseTo((720 * 0.05) / 2, 6);
  });
});

describe("waits of jobs that never start", () => {
  it("count until the run's end, not as 0", () => {
    const trace = oneJobTrace({ createdAt: 100, warmSeconds: 60, coldSeconds: 120 });
    // No instance ever boots within the horizon.
    const r = simulate(trace, {
      policy: "hearth",
      seed: 1,
      model: { coldBootSeconds: 1e12, warmBootSeconds: 1e12 },
    });
    expect(r.lostJobs).toBe(1);
    expect([r.waitP50, r.waitP95, r.waitMax]).toEqual([30 * 24 * 3600, 30 * 24 * 3600, 30 * 24 * 3600]);
    expect(r.warmHitRate).toBe(0);
  });
});
