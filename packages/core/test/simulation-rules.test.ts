import { describe, expect, it } from "vitest";
import { awsChoice, claimQueuedJobs, Random, rememberKey, STORE_KEYS } from "../src/simulation/rules";

describe("store memory", () => {
  it("keeps the 12 keys used most recently, most recent first", () => {
    const keys: string[] = [];
    for (let n = 1; n <= 14; n++) rememberKey(keys, `k${n}`);
    expect(keys).toHaveLength(STORE_KEYS);
    expect(keys[0]).toBe("k14");
    expect(keys).not.toContain("k1");
    expect(keys).not.toContain("k2");
    // Using a key again moves it to the front, so it outlives keys used after it first was.
    rememberKey(keys, "k3");
    rememberKey(keys, "k15");
    expect(keys.slice(0, 2)).toEqual(["k15", "k3"]);
    expect(keys).not.toContain("k4");
    expect(keys).toHaveLength(STORE_KEYS);
  });

  it("remembers nothing with no room", () => {
    const keys: string[] = [];
    rememberKey(keys, "k", 0);
    expect(keys).toEqual([]);
  });
});

describe("AWS's choice of instance", () => {
  it("is uniform over the candidates, and replays for a seed", () => {
    const counts = [0, 0, 0, 0];
    const random = new Random(3);
    for (let n = 0; n < 4000; n++) {
      const pick = awsChoice([0, 1, 2, 3], random) as number;
      counts[pick] = (counts[pick] ?? 0) + 1;
    }
    for (const count of counts) expect(Math.abs(count - 1000)).toBeLessThan(120);
    const picks = (seed: number) => {
      const random = Random.stream(seed, "warm-pool");
      return Array.from({ length: 20 }, () => awsChoice(["a", "b", "c"], random));
    };
    expect(picks(9)).toEqual(picks(9));
    expect(awsChoice([], new Random(1))).toBeUndefined();
  });
});

describe("runners claiming queued jobs", () => {
  it("hands the oldest jobs out first, one per free slot, and leaves the rest queued", () => {
    const listening = [
      { runner: "a", free: 2 },
      { runner: "b", free: 1 },
    ];
    const claims = claimQueuedJobs(["j1", "j2", "j3", "j4", "j5"], listening, new Random(1));
    expect(claims.map((claim) => claim.job)).toEqual(["j1", "j2", "j3"]);
    expect(claims.filter((claim) => claim.runner === "a")).toHaveLength(2);
    expect(listening.map((entry) => entry.free)).toEqual([0, 0]);
  });

  it("picks the slot uniformly at random among the listening slots: a runner with two free slots gets twice the jobs", () => {
    const got = new Map<string, number>();
    const random = new Random(5);
    for (let n = 0; n < 3000; n++) {
      const [claim] = claimQueuedJobs(
        ["job"],
        [
          { runner: "two", free: 2 },
          { runner: "one", free: 1 },
        ],
        random,
      );
      got.set(claim?.runner ?? "", (got.get(claim?.runner ?? "") ?? 0) + 1);
    }
    expect(Math.abs((got.get("two") ?? 0) - 2000)).toBeLessThan(120);
    expect(Math.abs((got.get("one") ?? 0) - 1000)).toBeLessThan(120);
  });

  it("lets a job wait for a runner that can run it, while newer jobs take the slots they can", () => {
    const jobs = [
      { id: "arm", pool: "arm" },
      { id: "x86-1", pool: "x86" },
      { id: "x86-2", pool: "x86" },
    ];
    const claims = claimQueuedJobs(
      jobs,
      [{ runner: { pool: "x86" }, free: 1 }],
      new Random(2),
      (job, runner) => job.pool === runner.pool,
    );
    expect(claims.map((claim) => claim.job.id)).toEqual(["x86-1"]);
  });

  it("replays the same claims for a seed", () => {
    const run = (seed: number) =>
      claimQueuedJobs(
        Array.from({ length: 6 }, (_, n) => n),
        ["a", "b", "c"].map((runner) => ({ runner, free: 2 })),
        Random.stream(seed, "claims"),
      ).map((claim) => claim.runner);
    expect(run(4)).toEqual(run(4));
    expect(new Set([1, 2, 3, 4, 5].map((seed) => run(seed).join()))).not.toHaveProperty("size", 1);
  });
});
