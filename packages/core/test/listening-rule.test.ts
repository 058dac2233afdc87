import { describe, expect, it } from "vitest";
import {
  COLD_LISTEN_DELAY_MS,
  LISTENING_LOOKAHEAD,
  type ListeningStore,
  listeningStores,
  PLACEMENT_GIVE_UP_MS,
  PROMPT_START_MS,
  STORE_BOOT_WAIT_MS,
} from "../src/stores/listening";

const now = 1_000_000;
const store = (id: string, cacheKeys: string[], more: Partial<ListeningStore> = {}): ListeningStore => ({
  id,
  state: "ready",
  launchedAt: now - 3_600_000,
  freeSlots: 2,
  cacheKeys,
  ...more,
});
const job = (cacheKey: string, waitedMs = 0) => ({ cacheKey, queuedAt: now - waitedMs });
const sorted = (set: Set<string>) => [...set].sort();

describe("listeningStores (warm-first placement)", () => {
  it("lets no store listen while no job is queued", () => {
    expect(listeningStores([], [store("a", ["k"]), store("b", [])], now).size).toBe(0);
  });

  it("lets only the stores warm for the oldest queued job listen while one of them has a free slot", () => {
    const stores = [
      store("warm", ["k"]),
      store("cold", ["other"]),
      store("busy-warm", ["k"], { freeSlots: 0 }),
    ];
    expect(sorted(listeningStores([job("k"), job("other")], stores, now))).toEqual(["busy-warm", "warm"]);
  });

  it("waits for a store warm for the job that is booting, but not past the boot wait", () => {
    // Started 2 s after the job was queued: for it, at once.
    const booting = store("booting", ["k"], { state: "booting", freeSlots: 0, launchedAt: now - 10_000 });
    const cold = store("cold", []);
    expect(sorted(listeningStores([job("k", 12_000)], [booting, cold], now))).toEqual(["booting"]);
    // Still waited for once the job has waited longer than the cold-listen delay.
    const slowBoot = { ...booting, launchedAt: now - 100_000 };
    expect(sorted(listeningStores([job("k", 102_000)], [slowBoot, cold], now))).toEqual(["booting"]);
    const gone = { ...booting, launchedAt: now - STORE_BOOT_WAIT_MS };
    expect(sorted(listeningStores([job("k", STORE_BOOT_WAIT_MS + 2_000)], [gone, cold], now))).toEqual([
      "booting",
      "cold",
    ]);
  });

  it("waits for a warm store started late for the job only as for a busy one", () => {
    // The job waited `waitedMs`; its warm store was started `startedAfterMs` after it was queued.
    const decide = (waitedMs: number, startedAfterMs: number) => {
      const late = store("late", ["k"], {
        state: "booting",
        freeSlots: 0,
        launchedAt: now - waitedMs + startedAfterMs,
      });
      const stores = [late, store("for-next", ["next"]), store("fresh", [])];
      return sorted(listeningStores([job("k", waitedMs), job("next", waitedMs)], stores, now));
    };
    // Started 11 s after (a start tried again after spot had no capacity): the jobs queued behind
    // would wait for it while other stores are ready, so it is waited for only the cold-listen delay.
    expect(decide(COLD_LISTEN_DELAY_MS - 1, 11_000)).toEqual(["late"]);
    // Then a cold store not warm for the next job listens too (and the late one, once it is up).
    expect(decide(26_000, 11_000)).toEqual(["fresh", "late"]);
    // Started within PROMPT_START_MS, it is waited for.
    expect(decide(26_000, PROMPT_START_MS)).toEqual(["late"]);
    // So is a late one while no other store has a free slot (all still booting, say).
    const late = store("late", ["k"], { state: "booting", freeSlots: 0, launchedAt: now - 26_000 + 11_000 });
    const booting = store("booting", [], { state: "booting", freeSlots: 0, launchedAt: now - 26_000 });
    const full = store("full", [], { freeSlots: 0 });
    expect(sorted(listeningStores([job("k", 26_000)], [late, booting, full], now))).toEqual(["late"]);
  });

  it("keeps cold stores quiet while the warm ones are busy, until the job has waited the delay", () => {
    const stores = [store("warm", ["k"], { freeSlots: 0 }), store("cold", [])];
    expect(sorted(listeningStores([job("k", COLD_LISTEN_DELAY_MS - 1)], stores, now))).toEqual(["warm"]);
    expect(sorted(listeningStores([job("k", COLD_LISTEN_DELAY_MS)], stores, now))).toEqual(["cold", "warm"]);
    // A store not in service is no reason to wait.
    const draining = [store("warm", ["k"], { state: "other", freeSlots: 0 }), store("cold", [])];
    expect(sorted(listeningStores([job("k")], draining, now))).toEqual(["cold", "warm"]);
  });

  it("lets cold stores take a job no store is warm for, keeping those warm for the next jobs free", () => {
    const stores = [store("for-next", ["next"]), store("blank", []), store("spare", ["old"])];
    expect(sorted(listeningStores([job("new"), job("next")], stores, now))).toEqual(["blank", "spare"]);
    // Once every free store is warm for a later job, they all listen: the oldest job goes first.
    const onlyWarm = [store("for-next", ["next"]), store("blank", [], { freeSlots: 0 })];
    expect(sorted(listeningStores([job("new"), job("next")], onlyWarm, now))).toEqual(["blank", "for-next"]);
  });

  it("looks only so far down the queue for keys to keep free", () => {
    const queue = [
      job("new"),
      ...Array.from({ length: LISTENING_LOOKAHEAD }, () => job("filler")),
      job("far"),
    ];
    const stores = [store("for-far", ["far"]), store("for-filler", ["filler"])];
    expect(sorted(listeningStores(queue, stores, now))).toEqual(["for-far"]);
  });

  it("gives up placing a job that has waited too long: every store listens", () => {
    const stores = [store("warm", ["k"]), store("cold", [])];
    expect(sorted(listeningStores([job("k", PLACEMENT_GIVE_UP_MS - 1)], stores, now))).toEqual(["warm"]);
    expect(sorted(listeningStores([job("k", PLACEMENT_GIVE_UP_MS)], stores, now))).toEqual(["cold", "warm"]);
  });
});
