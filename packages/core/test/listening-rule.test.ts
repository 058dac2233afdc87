import { describe, expect, it } from "vitest";
import {
  COLD_LISTEN_DELAY_MS,
  LISTENING_LOOKAHEAD,
  type ListeningStore,
  listeningStores,
  PLACEMENT_GIVE_UP_MS,
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
    const booting = store("booting", ["k"], { state: "booting", freeSlots: 0, launchedAt: now - 10_000 });
    const cold = store("cold", []);
    expect(sorted(listeningStores([job("k", 60_000)], [booting, cold], now))).toEqual(["booting"]);
    const late = { ...booting, launchedAt: now - STORE_BOOT_WAIT_MS };
    expect(sorted(listeningStores([job("k", 60_000)], [late, cold], now))).toEqual(["booting", "cold"]);
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
