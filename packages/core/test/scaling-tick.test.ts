import { describe, expect, it } from "vitest";
import type { PoolState } from "../src/scaling";
import { oldestWaitSeconds, poolNeedsRun } from "../src/scaling/tick";

const now = Date.parse("2026-01-05T10:00:00.000Z");
const state = (fields: Partial<PoolState> = {}): PoolState => ({
  pool: "x86_64",
  at: new Date(now - 60_000).toISOString(),
  desiredWarm: 0,
  desiredBurst: 0,
  warmPoolSize: 4,
  queued: 0,
  spareSlots: 0,
  reason: "steady",
  ...fields,
});

describe("which pools the minute tick runs ScaleFleet for", () => {
  it("runs a pool with queued jobs, instances in service, or no run yet", () => {
    expect(poolNeedsRun(state(), false, 1, now)).toBe(true);
    expect(poolNeedsRun(state(), true, 0, now)).toBe(true);
    expect(poolNeedsRun(undefined, false, 0, now)).toBe(true);
    expect(poolNeedsRun(state({ desiredBurst: 2 }), false, 0, now)).toBe(true);
  });

  it("skips an idle, recently reconciled pool, and reconciles it every ten minutes", () => {
    expect(poolNeedsRun(state(), false, 0, now)).toBe(false);
    expect(poolNeedsRun(state({ at: new Date(now - 9 * 60_000).toISOString() }), false, 0, now)).toBe(false);
    expect(poolNeedsRun(state({ at: new Date(now - 10 * 60_000).toISOString() }), false, 0, now)).toBe(true);
  });

  it("reports how long the oldest queued job has waited", () => {
    const jobs = [{ queuedAt: new Date(now - 30_000).toISOString() }, { queuedAt: null }];
    expect(oldestWaitSeconds(jobs, now)).toBe(30);
    expect(oldestWaitSeconds([], now)).toBe(0);
  });
});
