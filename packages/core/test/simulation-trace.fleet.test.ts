import { describe, expect, it } from "vitest";
import { INTERRUPTED_STORE_WAIT_MS } from "../src/fleet";
import { Random } from "../src/simulation/rules";
import { SimAsg } from "../src/simulation/trace/asg";
import { EventQueue } from "../src/simulation/trace/events";
import { Fleet, type SimInstance, SimJob } from "../src/simulation/trace/fleet";
import { type FleetModel, fleetModelSchema } from "../src/simulation/trace/model";
import type { TraceJob } from "../src/simulation/trace/trace";

/** A fleet with one pool and the README's model, without spot interruptions unless asked. */
function setup(model: Partial<FleetModel> = {}) {
  const clock = new EventQueue();
  const fleet = new Fleet(
    clock,
    fleetModelSchema.parse({ spotInterruptionsPerHour: 0, ...model }),
    ["x86_64"],
    new Random(7),
  );
  const pool = fleet.pools[0] as (typeof fleet.pools)[number];
  let count = 0;
  const job = (cacheKey: string, warm = 100, cold = 200, createdAt = clock.now) => {
    const trace: TraceJob = {
      id: `j${++count}`,
      createdAt,
      pipelineId: "p",
      cacheKey,
      labels: [],
      warmSeconds: warm,
      coldSeconds: cold,
    };
    fleet.total++;
    return new SimJob(count, trace, pool);
  };
  const at = (time: number, action: () => void) => clock.at(time, action);
  return { clock, fleet, pool, job, at };
}

const hourly = (seconds: number, price: number) => (seconds * price) / 3600;

describe("billing", () => {
  it("bills an instance per second from the launch request, boot included", () => {
    const { clock, fleet, pool, job, at } = setup();
    const build = job("k");
    at(0, () => {
      fleet.launch(pool, { market: "on-demand", group: "g" });
      fleet.enqueue(build);
    });
    clock.run();
    // Ready at 75 s, runs cold (a fresh store) for 200 s.
    expect(build.firstStartAt).toBe(75);
    expect(build.warmStart).toBe(false);
    expect(build.state).toBe("done");
    expect(clock.now).toBe(275);
    const totals = fleet.totals();
    expect(totals.runningSeconds).toBe(275);
    expect(totals.cost).toBeCloseTo(hourly(275, 0.145), 12);
  });

  it("bills spot at the spot price, and a stopped instance at the EBS price only", () => {
    const { clock, fleet, pool, at } = setup();
    at(0, () => {
      fleet.launch(pool, { market: "spot", group: "g" });
      const warm = fleet.launch(pool, { market: "on-demand", group: "g" });
      at(100, () => warm && fleet.stop(warm));
      at(1000, () => warm && fleet.resume(warm));
      at(1100, () => {
        for (const instance of [...pool.instances]) fleet.terminate(instance);
      });
    });
    clock.run();
    const totals = fleet.totals();
    // Spot: 1100 s running. Warm: 100 s, stopped 900 s, then 100 s again (25 s of it resuming).
    expect(totals.runningSeconds).toBe(1100 + 200);
    expect(totals.stoppedSeconds).toBe(900);
    expect(totals.cost).toBeCloseTo(hourly(1100, 0.05) + hourly(200, 0.145) + hourly(900, 0.011), 12);
  });

  it("refuses launches past the pool's maximum, stopped instances not counted", () => {
    const { clock, fleet, pool, at } = setup({ maxInstancesPerPool: 2 });
    at(0, () => {
      const first = fleet.launch(pool, { market: "on-demand", group: "g" });
      expect(fleet.launch(pool, { market: "on-demand", group: "g" })).not.toBeNull();
      expect(fleet.launch(pool, { market: "on-demand", group: "g" })).toBeNull();
      at(80, () => {
        if (first) fleet.stop(first);
        expect(fleet.launch(pool, { market: "on-demand", group: "g" })).not.toBeNull();
        expect(first && fleet.resume(first)).toBe(false);
      });
    });
    clock.run();
  });
});

describe("store warmth", () => {
  it("warms a store for a key once a job with it finished, and keeps the most recent keys", () => {
    const { clock, fleet, pool, job, at } = setup({ storeKeys: 2 });
    const jobs = ["a", "b", "a", "c", "b", "a"].map((key) => job(key));
    at(0, () => {
      fleet.launch(pool, { market: "on-demand", group: "g" });
      // One at a time: each job is queued when the previous one is done.
      const chain = (index: number) => {
        const next = jobs[index];
        if (!next) return;
        fleet.enqueue(next);
        const wait = () => (next.state === "done" ? chain(index + 1) : clock.after(1, wait));
        clock.after(1, wait);
      };
      chain(0);
    });
    clock.run();
    // a cold, b cold, a warm (keys b,a), c cold (evicts b: keys c,a), b cold (evicts a), a cold.
    expect(jobs.map((j) => j.warmStart)).toEqual([false, false, true, false, false, false]);
    expect(pool.instances[0]?.keys).toEqual(["a", "b"]);
  });

  it("runs a warm job for its warm duration and a cold one for its cold duration", () => {
    const { clock, fleet, pool, job, at } = setup();
    const first = job("k", 100, 300);
    const second = job("k", 100, 300);
    at(0, () => {
      fleet.launch(pool, { market: "on-demand", group: "g" });
      fleet.enqueue(first);
    });
    at(1000, () => fleet.enqueue(second));
    clock.run();
    expect(first.firstStartAt).toBe(75);
    expect(second.firstStartAt).toBe(1000);
    expect(second.warmStart).toBe(true);
    expect(clock.now).toBe(1100);
  });

  it("keeps a stopped instance's keys; a new instance is cold", () => {
    const { clock, fleet, pool, job, at } = setup();
    const first = job("k");
    const resumed = [job("k"), job("k")];
    const fresh = job("k");
    at(0, () => {
      const instance = fleet.launch(pool, { market: "on-demand", group: "resumed" });
      fleet.enqueue(first);
      at(400, () => instance && fleet.stop(instance));
      at(500, () => {
        if (instance) fleet.resume(instance);
        for (const j of resumed) fleet.enqueue(j);
        fleet.launch(pool, { market: "on-demand", group: "fresh" });
      });
      // Both slots of the resumed instance are busy: this one waits for the new instance.
      at(550, () => fleet.enqueue(fresh));
    });
    clock.run();
    expect(resumed.map((j) => [j.firstStartAt, j.warmStart, j.instance?.group ?? j.state])).toEqual([
      [525, true, "done"],
      [525, true, "done"],
    ]);
    expect(fresh.firstStartAt).toBe(575);
    expect(fresh.warmStart).toBe(false);
    expect(clock.now).toBe(775);
  });
});

describe("runners", () => {
  it("start the oldest jobs first, as many as there are free slots", () => {
    const { clock, fleet, pool, job, at } = setup();
    const jobs = [job("a"), job("b"), job("c"), job("d"), job("e")];
    at(0, () => {
      fleet.launch(pool, { market: "on-demand", group: "a" });
      fleet.launch(pool, { market: "on-demand", group: "b" });
      for (const queued of jobs) fleet.enqueue(queued);
    });
    clock.run(75);
    // Four slots, five jobs: the four oldest start when the runners are ready; the newest waits.
    expect(jobs.map((j) => j.firstStartAt)).toEqual([75, 75, 75, 75, -1]);
    expect(jobs[4]?.state).toBe("queued");
  });

  it("get jobs from the forge, which picks a listening slot at random, warm store or not", () => {
    // Two one-slot instances, one warm for the job: the forge hands it to either, about equally.
    let onWarm = 0;
    const runs = 200;
    for (let seed = 1; seed <= runs; seed++) {
      const clock = new EventQueue();
      const fleet = new Fleet(
        clock,
        fleetModelSchema.parse({ spotInterruptionsPerHour: 0, slotsPerInstance: 1 }),
        ["x86_64"],
        new Random(7),
        Random.stream(seed, "claims"),
      );
      const pool = fleet.pools[0] as (typeof fleet.pools)[number];
      const trace: TraceJob = {
        id: "j",
        createdAt: 0,
        pipelineId: "p",
        cacheKey: "w",
        labels: [],
        warmSeconds: 10,
        coldSeconds: 20,
      };
      const build = new SimJob(0, trace, pool);
      fleet.total = 1;
      clock.at(0, () => {
        const warm = fleet.launch(pool, { market: "on-demand", group: "warm" });
        const cold = fleet.launch(pool, { market: "on-demand", group: "cold" });
        if (warm) warm.keys = ["w"];
        if (cold) cold.keys = ["other"];
        fleet.enqueue(build);
      });
      clock.run(75);
      if (build.firstInstance?.group === "warm") onWarm++;
      expect(build.warmStart).toBe(build.firstInstance?.group === "warm");
    }
    expect(onWarm).toBeGreaterThan(runs * 0.35);
    expect(onWarm).toBeLessThan(runs * 0.65);
  });

  it("claim no job on a draining instance", () => {
    const { clock, fleet, pool, job, at } = setup();
    const build = job("k");
    at(0, () => {
      const instance = fleet.launch(pool, { market: "on-demand", group: "g" });
      if (instance) fleet.drain(instance);
      fleet.enqueue(build);
    });
    clock.run(1000);
    expect(build.state).toBe("queued");
  });
});

describe("spot interruptions", () => {
  it("warn, terminate two minutes later, and queue the running job again, counted once", () => {
    // A rate this high interrupts every spot instance within a millisecond of its launch.
    const { clock, fleet, pool, job, at } = setup({ spotInterruptionsPerHour: 3.6e9 });
    const warnings: number[] = [];
    fleet.observer = { spotWarning: () => warnings.push(clock.now) };
    const build = job("k");
    at(0, () => {
      fleet.launch(pool, { market: "spot", group: "g" });
      fleet.enqueue(build);
    });
    at(130, () => {
      expect(build.state).toBe("queued");
      // Another spot instance: interrupted again, while it runs the job again.
      fleet.launch(pool, { market: "spot", group: "g" });
    });
    at(300, () => fleet.launch(pool, { market: "on-demand", group: "g" }));
    clock.run();
    expect(warnings).toHaveLength(2);
    expect(build.firstStartAt).toBe(75);
    expect(build.interrupted).toBe(true);
    expect(fleet.interruptedJobs).toBe(1);
    // The on-demand instance is ready at 375 and runs it cold.
    expect(build.state).toBe("done");
    expect(clock.now).toBe(575);
  });

  it("let a policy take an interrupted job over: stop its runner, then retry or abandon it", () => {
    const { clock, fleet, pool, job, at } = setup();
    const taken: string[] = [];
    fleet.observer = {
      jobInterrupted: (interrupted) => {
        taken.push(interrupted.trace.id);
        return true;
      },
    };
    const [a, b] = [job("a", 100, 100), job("b", 100, 100)];
    let finished = -1;
    fleet.onAllFinished = () => {
      finished = clock.now;
    };
    at(0, () => {
      fleet.launch(pool, { market: "spot", group: "g", running: true });
      fleet.enqueue(a);
      fleet.enqueue(b);
    });
    at(30, () => {
      const instance = pool.instances[0] as SimInstance;
      fleet.stopJobs(instance);
      // Both jobs are interrupted and wait for the policy; the instance is idle but stays.
      expect([a.state, b.state, instance.busy, instance.state]).toEqual(["failed", "failed", 0, "ready"]);
      expect(fleet.queuedCount(pool)).toBe(0);
    });
    at(40, () => {
      fleet.retry(a);
      fleet.abandon(b);
      expect(() => fleet.retry(b)).toThrow(/is lost, not failed/);
    });
    clock.run();
    expect(taken).toEqual([a.trace.id, b.trace.id]);
    expect([a.state, a.retries, a.extraWaitSeconds, a.redoneSeconds, b.state]).toEqual([
      "done",
      1,
      10,
      30,
      "lost",
    ]);
    expect([fleet.interruptedJobs, fleet.retries, fleet.abandonedJobs]).toEqual([2, 1, 1]);
    // Every job finished or given up: the run is over when `a` ends (restarted at 40 s, 100 s long).
    expect(finished).toBe(140);
  });

  it("leave on-demand instances alone", () => {
    const { clock, fleet, pool, job, at } = setup({ spotInterruptionsPerHour: 3.6e9 });
    const build = job("k");
    at(0, () => {
      fleet.launch(pool, { market: "on-demand", group: "g" });
      fleet.enqueue(build);
    });
    clock.run();
    expect(fleet.interruptedJobs).toBe(0);
    expect(clock.now).toBe(275);
  });
});

describe("the Auto Scaling group model", () => {
  const group = (
    fleet: Fleet,
    pool: (typeof fleet.pools)[number],
    warmPoolSize: number | null,
    protect = true,
  ) =>
    new SimAsg(fleet, pool, {
      group: "warm",
      market: () => "on-demand",
      warmPoolSize,
      protectedFromScaleIn: protect,
      random: new Random(1),
    });

  it("resumes stopped instances before launching new ones, and keeps the warm pool at its size", () => {
    const { clock, fleet, pool, at } = setup();
    const asg = group(fleet, pool, 0);
    at(0, () => asg.apply({ release: [], desired: 0, warmPoolSize: 2 }));
    at(100, () => {
      // The two warm-pool instances booted (75 s) and stopped.
      expect(asg.warmPool.map((i) => i.state)).toEqual(["stopped", "stopped"]);
      asg.apply({ release: [], desired: 3, warmPoolSize: 0 });
      expect(asg.members.map((i) => i.boot)).toEqual(["warm", "warm", "cold"]);
    });
    clock.run(200);
    expect(fleet.launches).toBe(3);
    expect(fleet.resumes).toBe(2);
  });

  it("releases exactly the instance asked for, back into the warm pool", () => {
    const { clock, fleet, pool, at } = setup();
    const asg = group(fleet, pool, 0);
    at(0, () => asg.apply({ release: [], desired: 3, warmPoolSize: 0 }));
    at(100, () => {
      const chosen = asg.members[1];
      if (chosen === undefined) throw new Error("no member");
      asg.apply({ release: [chosen], desired: 2, warmPoolSize: 1 });
      expect(chosen.state).toBe("stopped");
      expect(asg.warmPool).toEqual([chosen]);
      expect(asg.members).toHaveLength(2);
    });
    clock.run(200);
  });

  it("detaching an instance launches its replacement at once, and its end launches no other", () => {
    const { clock, fleet, pool, at } = setup();
    const asg = group(fleet, pool, null);
    at(0, () => asg.setDesired(2));
    at(100, () => {
      const warned = asg.members[0] as SimInstance;
      asg.detach(warned);
      expect([asg.members.length, asg.desired, fleet.launches, warned.owner]).toEqual([2, 2, 3, null]);
      expect(asg.members).not.toContain(warned);
    });
    at(200, () => {
      const gone = pool.instances.find((instance) => instance.owner === null) as SimInstance;
      fleet.terminate(gone);
      // The fleet's observer would `forget` it, but it is no member: nothing to replace.
      asg.forget(gone);
      expect(fleet.launches).toBe(3);
    });
    clock.run(300);
    expect(asg.members).toHaveLength(2);
  });

  it("lets AWS pick, busy or not, when instances are not protected", () => {
    const { clock, fleet, pool, job, at } = setup();
    const asg = group(fleet, pool, null, false);
    const jobs = [job("a", 1000, 1000), job("b", 1000, 1000)];
    at(0, () => {
      asg.setDesired(2);
      for (const j of jobs) fleet.enqueue(j);
    });
    at(100, () => asg.setDesired(0));
    clock.run(200);
    // Runners pack both jobs onto one instance; scaling to zero takes it, running jobs and all.
    expect(asg.members).toHaveLength(0);
    expect(fleet.interruptedJobs).toBe(2);
    expect(jobs.map((j) => j.state)).toEqual(["queued", "queued"]);
  });
});

describe("a warm group Hearth keeps (warm.market spot)", () => {
  const kept = (fleet: Fleet, pool: (typeof fleet.pools)[number]) =>
    new SimAsg(fleet, pool, {
      group: "warm",
      market: () => "spot",
      warmPoolSize: 0,
      protectedFromScaleIn: true,
      random: new Random(1),
      keptByPolicy: true,
      launchOptions: () => ({ persistent: true }),
    });

  it("retires no store in place of a named one it had no need to start, when the plan counted it started", () => {
    const { clock, fleet, pool, at } = setup({ spotStartSuccess: 1 });
    const asg = kept(fleet, pool);
    let stores: SimInstance[] = [];
    at(0, () => asg.apply({ release: [], desired: 4 }));
    at(100, () => {
      stores = asg.members.slice(1);
      asg.apply({ release: stores, desired: 1, warmPoolSize: 3 });
    });
    at(200, () => {
      // One in service already, as asked: the group counts it where the plan (as it drains before
      // its detach) does not, and counted the named store as started, leaving a warm pool of two.
      const [named] = stores as [SimInstance];
      asg.apply({ release: [], desired: 1, warmPoolSize: 2, resume: [named.id], resumes: 1 });
      expect(stores.map((i) => i.state)).toEqual(["stopped", "stopped", "stopped"]);
      expect(asg.warmPool).toHaveLength(3);
    });
    clock.run(300);
  });

  it("starts the stores it is told to, in order; launches the on-demand ones first; retires the oldest", () => {
    const { clock, fleet, pool, at } = setup({ spotStartSuccess: 1 });
    const asg = kept(fleet, pool);
    let stores: SimInstance[] = [];
    at(0, () => asg.apply({ release: [], desired: 3 }));
    at(100, () => {
      stores = [...asg.members];
      asg.apply({ release: stores, desired: 0, warmPoolSize: 3 });
      expect(stores.map((i) => i.state)).toEqual(["stopped", "stopped", "stopped"]);
    });
    at(200, () => {
      const [first, second, third] = stores as [SimInstance, SimInstance, SimInstance];
      asg.apply({ release: [], desired: 2, warmPoolSize: 2, resume: [third.id], onDemand: 1 });
      // One new on-demand instance, then the named store: the others stay stopped.
      expect(asg.members.map((i) => [i.market, i.persistent])).toEqual([
        ["on-demand", false],
        ["spot", true],
      ]);
      expect(asg.members[1]).toBe(third);
      expect([first.state, second.state]).toEqual(["stopped", "stopped"]);
    });
    at(400, () => {
      // Released, the on-demand instance goes: the group keeps spot stores only.
      const onDemand = asg.members[0] as SimInstance;
      asg.apply({ release: [onDemand], desired: 1, warmPoolSize: 2 });
      expect(onDemand.state).toBe("terminated");
      expect(asg.warmPool).toHaveLength(2);
    });
    at(500, () => {
      asg.apply({ release: [], desired: 1, warmPoolSize: 1 });
      // Two stopped, one kept: the oldest launch goes.
      expect(asg.warmPool).toEqual([stores[1]]);
      expect(stores[0]?.state).toBe("terminated");
    });
    clock.run(600);
  });

  it("launches nothing for what it was asked for warmth only once no stopped store is left", () => {
    const { clock, fleet, pool, at } = setup({ spotStartSuccess: 1 });
    const asg = kept(fleet, pool);
    at(0, () => asg.apply({ release: [], desired: 1 }));
    at(100, () => {
      const [store] = asg.members as [SimInstance];
      asg.apply({ release: [store], desired: 0, warmPoolSize: 1 });
      // Three asked for, two for warmth only: the one stopped store starts, nothing is launched.
      asg.apply({ release: [], desired: 3, warmPoolSize: 0, resume: [store.id], optional: 2 });
      expect(asg.members).toEqual([store]);
      expect(pool.instances.filter((i) => i.state !== "terminated")).toHaveLength(1);
      // Without the allowance the group would launch two more.
      asg.apply({ release: [], desired: 3, warmPoolSize: 0 });
      expect(asg.members).toHaveLength(3);
    });
    clock.run(200);
  });

  it("never starts a store a spot interruption stopped: only EC2 does", () => {
    const { clock, fleet, pool, at } = setup({ spotStartSuccess: 1 });
    const asg = kept(fleet, pool);
    at(0, () => asg.apply({ release: [], desired: 1 }));
    at(100, () => {
      const store = asg.members[0] as SimInstance;
      asg.apply({ release: [], desired: 1, warmPoolSize: 2 });
      fleet.warn(store);
    });
    at(300, () => {
      const store = pool.instances[0] as SimInstance;
      expect([store.state, store.stoppedByInterruption]).toEqual(["stopped", true]);
      asg.takeBackStopped(store);
      asg.apply({ release: [], desired: 1, warmPoolSize: 2, resume: [store.id] });
      // Another store instead; the interrupted one waits for EC2.
      expect(asg.members).toHaveLength(1);
      expect(asg.members[0]).not.toBe(store);
      expect(store.state).toBe("stopped");
      expect(() => fleet.resume(store)).toThrow(/only EC2 starts it again/);
      // None of the warm pool: beside the other stopped store, a new one is parked in its place.
      expect(asg.warmPool.filter((i) => i !== store && i.state !== "terminated")).toHaveLength(2);
    });
    // An hour after its last start it is given up, as the fleet drivers do; the pool stays two.
    at(100 + INTERRUPTED_STORE_WAIT_MS / 1000, () => {
      const store = pool.instances.find((i) => i.stoppedByInterruption) as SimInstance;
      asg.apply({ release: [], desired: 1, warmPoolSize: 2 });
      expect(store.state).toBe("terminated");
      expect(asg.warmPool).toHaveLength(2);
    });
    clock.run(200 + INTERRUPTED_STORE_WAIT_MS / 1000);
  });
});

describe("the binary cache", () => {
  /** Two instances; `first` runs a job with key k, then `second` (cold for k) runs another at `later`. */
  function twoStores(binaryCache: boolean, later: number, model: Partial<FleetModel> = {}) {
    const { clock, fleet, pool, job, at } = setup(model);
    fleet.binaryCache = binaryCache;
    const built = job("k", 100, 1000);
    const again = job("k", 100, 1000);
    let second: SimInstance | null = null;
    at(0, () => {
      const first = fleet.launch(pool, { market: "on-demand", group: "g" });
      fleet.enqueue(built);
      // The first instance runs nothing else: it stops listening once its job is done.
      at(75 + 1000, () => first && fleet.drain(first));
    });
    at(later, () => {
      second = fleet.launch(pool, { market: "on-demand", group: "g" });
      fleet.enqueue(again);
    });
    clock.run();
    return { built, again, second: second as SimInstance | null };
  }

  it("substitutes a closure the pool built: a cold store runs for min(cold, warm + 60 s)", () => {
    const { built, again, second } = twoStores(true, 2000);
    expect(built.store).toBe("cold");
    expect(built.achievable).toBe(false);
    expect(again.firstInstance).toBe(second);
    expect(again.warmStart).toBe(false);
    expect(again.store).toBe("substituted");
    expect(again.achievable).toBe(true);
    // Started at 2075 on the second instance, ran 160 s instead of 1000.
    expect(again.firstStartAt).toBe(2075);
    expect(again.startedAt + 160).toBe(2235);
  });

  it("builds from scratch without the cache, or once the closure is older than the window", () => {
    const off = twoStores(false, 2000);
    expect(off.again.store).toBe("cold");
    const old = twoStores(true, 75 + 1000 + 7 * 24 * 3600 + 1);
    expect(old.again.store).toBe("cold");
    const penalty = twoStores(true, 2000, { cachePenaltySeconds: 300 });
    expect(penalty.again.store).toBe("substituted");
  });

  it("never makes a substituted run longer than a cold one", () => {
    const { clock, fleet, pool, job, at } = setup({ cachePenaltySeconds: 300 });
    fleet.binaryCache = true;
    const first = job("k", 100, 150);
    const second = job("k", 100, 150);
    at(0, () => {
      const a = fleet.launch(pool, { market: "on-demand", group: "g", maxJobs: 1 });
      fleet.enqueue(first);
      at(500, () => {
        if (a) fleet.terminate(a);
        fleet.launch(pool, { market: "on-demand", group: "g" });
        fleet.enqueue(second);
      });
    });
    clock.run();
    expect(second.store).toBe("substituted");
    expect(clock.now).toBe(500 + 75 + 150);
  });
});

describe("stores that survive spot (prototypes' fleet rules)", () => {
  it("keeps a terminated instance's store on a volume in its zone, billed at the stopped price, and attaches it (+20 s)", () => {
    const { clock, fleet, pool, job, at } = setup();
    const first = job("k");
    const second = job("k");
    let next: SimInstance | null = null;
    at(0, () => {
      const a = fleet.launch(pool, { market: "spot", group: "g", storeVolume: true, maxJobs: 1 });
      fleet.enqueue(first);
      at(1000, () => {
        if (a) fleet.terminate(a);
        expect(pool.volumes).toHaveLength(1);
        expect(pool.volumes[0]?.keys).toEqual(["k"]);
        expect(pool.volumes[0]?.zone).toBe(a?.zone);
      });
      at(4600, () => {
        const volume = fleet.detachedVolumes(pool)[0];
        next = fleet.launch(pool, { market: "spot", group: "g", storeVolume: true, attach: volume });
        fleet.enqueue(second);
      });
    });
    clock.run();
    expect(next).not.toBeNull();
    expect((next as unknown as SimInstance).zone).toBe(first.firstInstance?.zone);
    // Ready at 4600 + 75 + 20, and warm for k.
    expect(second.firstStartAt).toBe(4695);
    expect(second.warmStart).toBe(true);
    expect(pool.volumes).toHaveLength(0);
    expect(fleet.volumeAttaches).toBe(1);
    const totals = fleet.totals();
    // Spot: 1000 s, then 95 + 100 s; the volume: detached 3600 s.
    expect(totals.cost).toBeCloseTo(hourly(1000 + 195, 0.05) + hourly(3600, 0.011), 12);
  });

  it("deletes a detached volume after its retention, and bills it only until then", () => {
    const { clock, fleet, pool, at } = setup();
    fleet.volumeRetentionSeconds = 3600;
    at(0, () => {
      const a = fleet.launch(pool, { market: "spot", group: "g", storeVolume: true });
      at(100, () => a && fleet.terminate(a));
    });
    at(10_000, () => expect(fleet.detachedVolumes(pool)).toHaveLength(0));
    clock.run();
    expect(fleet.totals().cost).toBeCloseTo(hourly(100, 0.05) + hourly(3600, 0.011), 12);
  });

  it("stops a persistent spot instance at its interruption, store kept, and its job is interrupted", () => {
    const { clock, fleet, pool, job, at } = setup({ spotInterruptionsPerHour: 3600 / 500 });
    const warmUp = job("k", 100, 100);
    const long = job("k", 100_000, 100_000);
    const stopped: SimInstance[] = [];
    fleet.observer = { instanceStopped: (instance) => stopped.push(instance), jobInterrupted: () => true };
    let instance: SimInstance | null = null;
    at(0, () => {
      instance = fleet.launch(pool, { market: "spot", group: "g", persistent: true });
      fleet.enqueue(warmUp);
      at(200, () => fleet.enqueue(long));
    });
    clock.run(20_000);
    const it = instance as unknown as SimInstance;
    expect(stopped).toEqual([it]);
    expect(it.state).toBe("stopped");
    expect(it.keys).toEqual(["k"]);
    expect(long.interrupted).toBe(true);
    expect(fleet.interruptionStops).toBe(1);
    expect(pool.instances).toContain(it);
  });

  it("starts a stopped persistent spot instance only when spot capacity is found (else it fails after 10 s)", () => {
    const { clock, fleet, pool, at } = setup({ spotStartSuccess: 0 });
    const failed: SimInstance[] = [];
    fleet.observer = { resumeFailed: (instance) => failed.push(instance) };
    let instance: SimInstance | null = null;
    at(0, () => {
      instance = fleet.launch(pool, { market: "spot", group: "g", persistent: true, intoWarmPool: true });
    });
    at(100, () => fleet.resume(instance as unknown as SimInstance));
    clock.run();
    expect(failed).toHaveLength(1);
    expect((instance as unknown as SimInstance).state).toBe("stopped");
    expect(clock.now).toBe(110);
    expect(fleet.failedStarts).toBe(1);
    // With capacity, the same start succeeds in 25 s.
    const ok = setup({ spotStartSuccess: 1 });
    let resumed: SimInstance | null = null;
    ok.at(0, () => {
      resumed = ok.fleet.launch(ok.pool, {
        market: "spot",
        group: "g",
        persistent: true,
        intoWarmPool: true,
      });
    });
    ok.at(100, () => ok.fleet.resume(resumed as unknown as SimInstance));
    ok.clock.run();
    expect((resumed as unknown as SimInstance).state).toBe("ready");
    expect((resumed as unknown as SimInstance).readyAt).toBe(125);
  });
});

describe("which slots listen (a policy's rule)", () => {
  it("claims only among the slots the rule lets listen, and asks again when the rule says", () => {
    const { clock, fleet, pool, job, at } = setup();
    const instances: SimInstance[] = [];
    at(0, () => {
      for (let i = 0; i < 4; i++) {
        const instance = fleet.launch(pool, { market: "on-demand", group: "g", running: true });
        if (instance) instances.push(instance);
      }
      (instances[2] as SimInstance).keys = ["k"];
    });
    // Only the store warm for the job listens for 30 s; then every slot.
    fleet.listening = (_pool, head) =>
      clock.now - head.queuedAt < 30
        ? {
            listens: (instance) => instance.keys.includes(head.trace.cacheKey),
            recheckAt: head.queuedAt + 30,
          }
        : { listens: () => true, recheckAt: null };
    const jobs = [job("k", 10, 10), job("k", 10, 10), job("k", 10, 10), job("other", 10, 10)];
    at(1, () => {
      for (const queued of jobs) fleet.enqueue(queued);
    });
    clock.run();
    // The warm store's two slots take the first two jobs at once; the third waits for a warm slot
    // (free again at 11 s) and takes it; the fourth (its key warm nowhere) waits for the 30 s.
    expect(jobs.map((j) => j.firstInstance)).toEqual([
      instances[2],
      instances[2],
      instances[2],
      jobs[3]?.firstInstance,
    ]);
    expect(jobs.map((j) => j.firstStartAt)).toEqual([1, 1, 11, 31]);
    expect(jobs.slice(0, 3).every((j) => j.warmStart)).toBe(true);
  });
});
