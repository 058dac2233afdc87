import { describe, expect, it } from "vitest";
import { interruptionFigures, runSimulation, type SimulateOptions, simulate } from "../src/simulation/trace";
import type { SimInstance, SimJob } from "../src/simulation/trace/fleet";
import { defaultFleetModel } from "../src/simulation/trace/model";
import {
  defaultHearthOptions,
  defaultPlacementSettings,
  defaultStoreMechanisms,
} from "../src/simulation/trace/policies/hearth";
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
});

describe("hearth: a new job wakes its pool", () => {
  /** Two jobs fill the first instance; a third, arriving `at`, needs a second one. */
  const third = (at: number) => {
    const { jobs } = runSimulation(
      trace([
        [0, "k", 100, 200],
        [0, "k", 100, 200],
        [at, "k", 100, 200],
      ]),
      { policy: "hearth", model: noInterruptions },
    );
    return jobs[2] as SimJob;
  };

  it("supersedes a run that waits, so the job's instance launches at its webhook", () => {
    // The first two webhooks arrive at 1 s. The first starts a run, which launches an instance and
    // waits 15 s (its observation saw nothing boot); the second supersedes it, and the new run, which
    // sees the instance boot, waits 5 s, until 6 s. The third job's webhook at 2.5 s supersedes that
    // one in turn: its instance launches at 2.5 s. (Without supersession: at 16 s.)
    expect(third(1.5).firstStartAt).toBe(2.5 + 75);
  });

  it("leaves a run that observes within the margin: the job waits for that observation", () => {
    // Webhook at 5.5 s; the waiting run observes at 6 s (0.5 s later, within the 2 s margin) and
    // launches it then.
    expect(third(4.5).firstStartAt).toBe(6 + 75);
  });
});

describe("hearth and spot interruptions, as built", () => {
  type Launch = { at: number; group: string; market: string };
  type Start = { job: string; at: number; group: string; market: string };

  /**
   * Runs `t` with no random interruption; at each of `warnings` the instance running the named job
   * gets a spot warning. Records every launch and every start.
   */
  function interrupt(
    t: Trace,
    warnings: Array<{ at: number; job: string }>,
    options: Partial<SimulateOptions> = {},
  ) {
    const launches: Launch[] = [];
    const starts: Start[] = [];
    const run = runSimulation(t, {
      ...options,
      policy: "hearth",
      // The timings below are the interruption handling's own: every free slot listens, so a retry
      // does not also wait for a heartbeat to reach the store placement picks for it, and the warm
      // group is an Auto Scaling group (on-demand), which no spot start or spare store adds to.
      hearth: {
        placement: { ...defaultPlacementSettings, placement: "any" },
        warmMarket: "on-demand",
        ...options.hearth,
      },
      model: { ...noInterruptions, ...options.model },
      onStart: (fleet, clock, jobs) => {
        const launch = fleet.launch.bind(fleet);
        fleet.launch = (pool, launchOptions) => {
          const instance = launch(pool, launchOptions);
          if (instance !== null)
            launches.push({ at: clock.now, group: launchOptions.group, market: launchOptions.market });
          return instance;
        };
        const observer = fleet.observer;
        fleet.observer = {
          ...observer,
          jobStarted: (job, instance) => {
            starts.push({ job: job.trace.id, at: clock.now, group: instance.group, market: instance.market });
            observer.jobStarted?.(job, instance);
          },
        };
        for (const warning of warnings) {
          clock.at(warning.at, () => {
            const instance = jobs.find((candidate) => candidate.trace.id === warning.job)?.instance;
            if (!instance) throw new Error(`${warning.job} is not running at ${warning.at}`);
            fleet.warn(instance);
          });
        }
      },
    });
    const byId = (id: string) => run.jobs.find((candidate) => candidate.trace.id === id) as SimJob;
    return { run, launches, starts, byId, figures: interruptionFigures(run) };
  }

  /** One trace job on x86_64 (GitHub, by its labels), of pipeline `run` unless told. */
  const job = (id: string, createdAt: number, seconds: number, pipelineId = "run"): TraceJob => ({
    id,
    createdAt,
    pipelineId,
    cacheKey: id,
    labels: ["nix", "x86_64-linux"],
    warmSeconds: seconds,
    coldSeconds: seconds,
  });
  const traceOf = (...jobs: TraceJob[]): Trace => ({ name: "spot", jobs, resorted: false });

  it("detaches the warned instance, whose group replaces it at once and once; GitLab retries at once", () => {
    // The job starts at 76 s on a spot instance launched at 1 s (the warm pool is empty). Without the
    // retry hold, the retry is queued as soon as GitLab has failed the job.
    const { run, launches, starts, byId, figures } = interrupt(
      traceOf(job("a", 0, 1000)),
      [{ at: 200, job: "a" }],
      {
        hearth: { forge: "gitlab", retryHold: false },
      },
    );
    // HandleInterruption detaches it at 201 s: the group launches the replacement then, and not again
    // when the instance is reclaimed at 320 s.
    expect(launches.filter((launch) => launch.group === "burst").map((launch) => launch.at)).toEqual([
      1, 201,
    ]);
    // The agent stops the job's runner 30 s before the deadline (290 s); GitLab fails the job then, and
    // its webhook (291 s) makes Hearth retry it: the replacement, ready at 276 s, takes it.
    expect(starts.map((start) => [start.job, start.at])).toEqual([
      ["a", 76],
      ["a", 291],
    ]);
    const a = byId("a");
    expect([a.state, a.interruptions, a.retries, a.extraWaitSeconds, a.redoneSeconds]).toEqual([
      "done",
      1,
      1,
      1,
      290 - 76,
    ]);
    expect(figures).toMatchObject({
      interruptedJobs: 1,
      retries: 1,
      restartsOnSpot: 1,
      lostToInterruptions: 0,
      extraWaitMax: 1,
    });
    expect(run.endSeconds).toBe(291 + 1000);
  });

  it("with the retry hold, retries only once the spot replacement stopped claiming, on demand", () => {
    // One retry per job: the first is the last, and held.
    const { launches, starts, figures } = interrupt(traceOf(job("a", 0, 1000)), [{ at: 200, job: "a" }], {
      hearth: { forge: "gitlab", retryInterrupted: 1 },
    });
    // GitLab fails the job at 290 s; its webhook (291 s) starts the hold. The replacement, ready at
    // 276 s, hears it at its next heartbeat (276 + 2 × 15 = 306 s), stops claiming and confirms: the
    // retry is queued then. No slot listens, and a held pool's spot slots are no spare
    // (`afterIteration`): its webhook (307 s) starts a run that plans the held pool on demand, a cold
    // launch ready at 382 s.
    expect(starts.map((start) => [start.job, start.at, start.group, start.market])).toEqual([
      ["a", 76, "burst", "spot"],
      ["a", 382, "warm", "on-demand"],
    ]);
    expect(launches.map((launch) => [launch.at, launch.market])).toEqual([
      [1, "spot"],
      [201, "spot"],
      [307, "on-demand"],
    ]);
    expect(figures).toMatchObject({
      retries: 1,
      restartsOnSpot: 0,
      lostToInterruptions: 0,
      extraWaitMax: 382 - 290,
    });
  });

  it("holds only for a job's last retry: the first of two goes at once, the second waits on demand", () => {
    // The default, two retries. The first is queued at the failure's webhook (291 s), the spot
    // replacement claiming: it takes it. Interrupted again (at 500 s, stopped at 590 s), the job's
    // second retry is its last: held, and run on demand.
    const { starts, byId, figures } = interrupt(
      traceOf(job("a", 0, 1000)),
      [
        { at: 200, job: "a" },
        { at: 500, job: "a" },
      ],
      { hearth: { forge: "gitlab" } },
    );
    const runs = starts.filter((start) => start.job === "a");
    expect(runs.map((start) => [start.at, start.market])).toEqual([
      [76, "spot"],
      [291, "spot"],
      [expect.any(Number), "on-demand"],
    ]);
    expect(runs[2]?.at).toBeGreaterThan(591);
    expect([byId("a").state, byId("a").retries]).toEqual(["done", 2]);
    expect(figures).toMatchObject({
      interruptions: 2,
      retries: 2,
      restartsOnSpot: 1,
      lostToInterruptions: 0,
    });
  });

  it("on GitHub, reruns the interrupted job only when its whole workflow run has completed", () => {
    // `b`, of the same run, arrives later and runs 1000 s: the run completes when it ends.
    // Without the retry hold, the rerun is called as soon as the run's completion is known.
    const { starts, byId } = interrupt(
      traceOf(job("a", 0, 1000), job("b", 400, 1000)),
      [{ at: 200, job: "a" }],
      { hearth: { retryHold: false } },
    );
    const b = starts.find((start) => start.job === "b");
    const reruns = starts.filter((start) => start.job === "a").slice(1);
    // The `workflow_run` webhook reaches Hearth 1 s after `b` ends; rerun-failed-jobs queues `a` again.
    expect(reruns.map((start) => start.at)).toEqual([(b?.at ?? 0) + 1000 + 1]);
    const a = byId("a");
    expect([a.state, a.retries, a.extraWaitSeconds]).toEqual(["done", 1, (b?.at ?? 0) + 1000 + 1 - 290]);
  });

  it("a job of another run is rerun when its own run completes", () => {
    // Same as above, but `b` belongs to another run: `a`'s run (itself alone) completes at the cut.
    const { starts } = interrupt(
      traceOf(job("a", 0, 1000, "r1"), job("b", 400, 1000, "r2")),
      [{ at: 200, job: "a" }],
      { hearth: { retryHold: false } },
    );
    expect(starts.filter((start) => start.job === "a").map((start) => start.at)).toEqual([76, 291]);
  });

  it("loses an interrupted job whose retries are spent, and ends the run there", () => {
    const none = interrupt(traceOf(job("a", 0, 1000)), [{ at: 200, job: "a" }], {
      hearth: { forge: "gitlab", retryInterrupted: 0 },
    });
    expect(none.byId("a").state).toBe("lost");
    expect(none.figures).toMatchObject({ interruptedJobs: 1, retries: 0, lostToInterruptions: 1 });
    // Nothing is left to run: the simulation ends when the job is given up, not at the horizon.
    expect(none.run.endSeconds).toBe(291);

    // Retried once, then interrupted again on the replacement: lost.
    const twice = interrupt(
      traceOf(job("a", 0, 1000)),
      [
        { at: 200, job: "a" },
        { at: 500, job: "a" },
      ],
      { hearth: { forge: "gitlab", retryInterrupted: 1 } },
    );
    expect([twice.byId("a").state, twice.byId("a").interruptions]).toEqual(["lost", 2]);
    expect(twice.figures).toMatchObject({
      interruptedJobs: 1,
      interruptions: 2,
      retries: 1,
      lostToInterruptions: 1,
    });
    const spent = simulate(traceOf(job("a", 0, 1000)), {
      policy: "hearth",
      model: noInterruptions,
      hearth: { forge: "gitlab", retryInterrupted: 1 },
      onStart: (fleet, clock, jobs) => {
        for (const at of [200, 500]) clock.at(at, () => fleet.warn(jobs[0]?.instance as SimInstance));
      },
    });
    expect([spent.lostJobs, spent.interruptedJobs]).toEqual([1, 1]);
  });

  it("launches a retry's missing capacity on demand (retryOnDemand), and on spot without it", () => {
    // One instance at most: the replacement cannot launch until the warned instance is gone (320 s),
    // so the retry (291 s) needs new capacity, which the plan puts in the warm group with the setting.
    const where = (retryOnDemand: boolean) => {
      const { starts, byId } = interrupt(traceOf(job("a", 0, 1000)), [{ at: 200, job: "a" }], {
        model: { maxInstancesPerPool: 1 },
        hearth: { forge: "gitlab", retryOnDemand, retryInterrupted: 1 },
      });
      expect(byId("a").state).toBe("done");
      const rerun = starts.filter((start) => start.job === "a")[1];
      return [rerun?.group, rerun?.market];
    };
    expect(where(true)).toEqual(["warm", "on-demand"]);
    expect(where(false)).toEqual(["burst", "spot"]);
  });

  describe("the retry hold, under frequent interruptions (1 per spot instance-hour, seeded)", () => {
    // Pipelines of four jobs of 40 to 100 minutes every 10 minutes for 4 hours: long runs on spot,
    // interrupted often, with spot instances listening when the retries come.
    const jobs: TraceJob[] = [];
    for (let p = 0; p < 24; p++)
      for (let j = 0; j < 4; j++)
        jobs.push({ ...job(`p${p}j${j}`, 600 * p, 2400 + ((p * 7 + j * 13) % 37) * 100, `p${p}`) });
    const heavy = traceOf(...jobs);

    const runHeavy = (forge: "github" | "gitlab", retryHold: boolean) => {
      const restarts: Start[] = [];
      const result = runSimulation(heavy, {
        policy: "hearth",
        seed: 1,
        model: { spotInterruptionsPerHour: 1 },
        // One retry per job: every retry is the last, and held.
        hearth: { forge, retryHold, retryInterrupted: 1 },
        onStart: (fleet, clock) => {
          const observer = fleet.observer;
          fleet.observer = {
            ...observer,
            jobStarted: (started, instance) => {
              if (started.interruptions > 0)
                restarts.push({
                  job: started.trace.id,
                  at: clock.now,
                  group: instance.group,
                  market: instance.market,
                });
              observer.jobStarted?.(started, instance);
            },
          };
        },
      });
      const lost = result.jobs.filter((candidate) => candidate.state !== "done").length;
      return { restarts, lost, figures: interruptionFigures(result) };
    };

    for (const forge of ["gitlab", "github"] as const) {
      it(`${forge}: retries start only on demand and none is lost; without the hold some land on spot`, () => {
        const held = runHeavy(forge, true);
        expect(held.figures.retries).toBeGreaterThan(5);
        expect(held.restarts.length).toBe(held.figures.retries);
        expect(held.restarts.filter((start) => start.market !== "on-demand")).toEqual([]);
        expect([held.figures.restartsOnSpot, held.figures.lostToInterruptions, held.lost]).toEqual([0, 0, 0]);

        const free = runHeavy(forge, false);
        expect(free.restarts.some((start) => start.market === "spot")).toBe(true);
        expect(free.figures.restartsOnSpot).toBeGreaterThan(0);
      });
    }
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

describe("hearth's placement (as built: core's listeningStores, heard at each heartbeat)", () => {
  // Two stores of two slots run `a`, `b` (from 76 s) and `c`, `d` (from 91 s) for 300 s, then idle;
  // `a` comes again at 400 s.
  const t = trace([
    [0, "a", 300, 300],
    [0, "b", 300, 300],
    [0, "c", 300, 300],
    [0, "d", 300, 300],
    [400, "a", 10, 10],
  ]);
  const again = (
    placement: "warm-first" | "any",
    mechanisms: Partial<typeof defaultStoreMechanisms> = {},
  ) => {
    const result = runSimulation(t, {
      policy: "hearth",
      model: noInterruptions,
      binaryCache: false,
      hearth: {
        placement: { ...defaultPlacementSettings, placement },
        mechanisms: { ...defaultStoreMechanisms, ...mechanisms },
      },
    });
    const jobs = result.jobs as SimJob[];
    const stores = new Set(jobs.slice(0, 4).map((job) => job.firstInstance));
    expect(stores.size).toBe(2);
    return { first: jobs[0], last: jobs[4] };
  };

  it("runs the job on the store warm for it, once that store's heartbeat has told it to listen", () => {
    const { first, last } = again("warm-first");
    expect(first?.firstStartAt).toBe(76);
    // No store listens while no job is queued. The warm store, ready at 76 s, heartbeats every 15 s:
    // the one at 406 s tells it to listen, and its runner starts 5 s later.
    expect(last?.firstStartAt).toBe(406 + 5);
    expect(last?.firstInstance).toBe(first?.firstInstance);
    expect(last?.warmStart).toBe(true);
  });

  it("the instant bound (no product reaches it) places the same job with no wait", () => {
    const { first, last } = again("warm-first", { instantListening: true });
    expect(last?.firstStartAt).toBe(400);
    expect(last?.firstInstance).toBe(first?.firstInstance);
  });

  it("with idle stores listening, the job is taken at once by whichever the forge picks", () => {
    const runs = [1, 2, 3, 4, 5, 6, 7, 8].map((seed) =>
      runSimulation(t, {
        policy: "hearth",
        seed,
        model: noInterruptions,
        binaryCache: false,
        hearth: {
          placement: { ...defaultPlacementSettings, placement: "any" },
          mechanisms: defaultStoreMechanisms,
        },
      }),
    );
    for (const run of runs) expect(run.jobs[4]?.firstStartAt).toBe(400);
    // Warmth-blind: over eight seeds a cold store takes it at least once.
    expect(runs.some((run) => run.jobs[4]?.warmStart === false)).toBe(true);
  });
});

describe("hearth's store mechanisms (prototypes, off by default)", () => {
  /** Four rounds of 12 keys at once (six stores of a few keys each), then one job with key k5 a day later. */
  const history = (() => {
    const rows: [number, string, number, number][] = [];
    for (let round = 0; round < 4; round++)
      for (let i = 0; i < 12; i++) rows.push([round * 7200, `k${i}`, 100, 1000]);
    rows.push([86_400, "k5", 100, 1000]);
    return trace(rows, "stores");
  })();
  const lastJob = (
    mechanisms: Partial<typeof defaultStoreMechanisms>,
    seed: number,
    placement: "warm-first" | "any" = "warm-first",
  ) => {
    let stoppedWarm = 0;
    const result = runSimulation(history, {
      policy: "hearth",
      seed,
      model: noInterruptions,
      binaryCache: false,
      // An Auto Scaling warm group, whose warm pool AWS resumes from at random unless a prototype says.
      hearth: {
        warmMarket: "on-demand",
        mechanisms: { ...defaultStoreMechanisms, ...mechanisms },
        placement: { ...defaultPlacementSettings, placement },
      },
      onStart: (fleet, clock) =>
        clock.at(86_399, () => {
          stoppedWarm = (fleet.pools[0]?.instances ?? []).filter(
            (i) => i.state === "stopped" && i.keys.includes("k5"),
          ).length;
        }),
    });
    const job = result.jobs[result.jobs.length - 1] as SimJob;
    const live = (result.fleet.pools[0]?.instances ?? []).filter((i) => i.live).length;
    return { job, stoppedWarm, live };
  };
  const seeds = [1, 2, 3, 4, 5, 6];

  it("without placement, AWS picks which stores resume: a stopped store warm for the job does not always run it", () => {
    const runs = seeds.map((seed) => lastJob({}, seed, "any"));
    expect(runs.every((r) => r.stoppedWarm > 0)).toBe(true);
    expect(runs.some((r) => !r.job.warmStart)).toBe(true);
  });

  it("chooseResume: Hearth names the stopped store warm for the queued job, and resumes only that one", () => {
    for (const seed of seeds) {
      const { job, live } = lastJob({ chooseResume: true }, seed);
      expect(job.warmStart).toBe(true);
      expect(job.firstStartAt).toBe(86_400 + 26);
      expect(live).toBe(1);
    }
  });

  it("placement (as built): with several stores resumed, the one warm for the job runs it", () => {
    for (const seed of seeds) expect(lastJob({}, seed).job.warmStart).toBe(true);
  });

  it("warm.market spot (built): the warm group runs at the spot price, on persistent instances", () => {
    const t = trace([
      [0, "k", 100, 200],
      [3600, "k", 100, 200],
      [7200, "k", 100, 200],
    ]);
    const shipped = runSimulation(t, { policy: "hearth", model: noInterruptions });
    const persistent = runSimulation(t, {
      policy: "hearth",
      model: noInterruptions,
      hearth: { warmMarket: "spot" },
    });
    const onDemand = runSimulation(t, {
      policy: "hearth",
      model: noInterruptions,
      hearth: { warmMarket: "on-demand" },
    });
    expect(onDemand.jobs[2]?.firstInstance?.market).toBe("on-demand");
    expect(shipped.jobs[2]?.firstInstance?.market).toBe(defaultHearthOptions.warmMarket);
    expect(persistent.jobs[2]?.firstInstance?.market).toBe("spot");
    expect(persistent.jobs[2]?.firstInstance?.persistent).toBe(true);
    expect(persistent.jobs[2]?.warmStart).toBe(true);
    // Running, it costs less; stopped, it keeps a spare store (`SPARE_STORES_PER`), which over three
    // jobs costs more than it saves.
    const running = (r: typeof shipped) => {
      const totals = r.fleet.totals();
      return totals.cost - (totals.stoppedSeconds * defaultFleetModel.stoppedHourly) / 3600;
    };
    expect(running(persistent)).toBeLessThan(running(onDemand));
    expect(persistent.fleet.totals().stoppedSeconds).toBeGreaterThan(onDemand.fleet.totals().stoppedSeconds);
  });

  it("stoppedStoreTtlHours: a stopped store not resumed for that long is terminated (the planner launches a new one if its forecast asks)", () => {
    const oldest = (ttl: number) => {
      let found = { stopped: 0, oldestHours: 0 };
      runSimulation(history, {
        policy: "hearth",
        model: noInterruptions,
        hearth: { mechanisms: { ...defaultStoreMechanisms, stoppedStoreTtlHours: ttl } },
        onStart: (fleet, clock) =>
          clock.at(86_399, () => {
            const stopped = (fleet.pools[0]?.instances ?? []).filter((i) => i.state === "stopped");
            found = {
              stopped: stopped.length,
              oldestHours: Math.max(0, ...stopped.map((i) => (clock.now - i.stoppedAt) / 3600)),
            };
          }),
      });
      return found;
    };
    expect(oldest(0).stopped).toBeGreaterThan(0);
    expect(oldest(0).oldestHours).toBeGreaterThan(12);
    const dropped = oldest(2);
    // Checked at the minute tick: none stopped for more than 2 h and a minute.
    expect(dropped.oldestHours).toBeLessThanOrEqual(2 + 1 / 60);
  });

  it("storeVolumes: a spot instance's store outlives it, and a later instance attaches it warm", () => {
    const t = trace([
      [0, "k", 100, 1000],
      [86_400, "k", 100, 1000],
    ]);
    const result = runSimulation(t, {
      policy: "hearth",
      model: noInterruptions,
      binaryCache: false,
      hearth: { mechanisms: { ...defaultStoreMechanisms, storeVolumes: "pinned", volumeRetentionHours: 48 } },
    });
    const [first, second] = result.jobs;
    expect(first?.firstInstance).not.toBe(second?.firstInstance);
    expect(second?.firstInstance?.market).toBe("spot");
    expect(second?.warmStart).toBe(true);
    // Webhook 1 s, launch 75 s, attach 20 s.
    expect(second?.firstStartAt).toBe(86_400 + 96);
    expect(result.fleet.volumeAttaches).toBeGreaterThan(0);
  });
});
