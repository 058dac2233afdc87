import { describe, expect, it } from "vitest";
import { RateGovernor, readRateHeaders } from "../src/polling/governor";

/** The rate governor of one token: a share of the budget, paced, with a reserve and Retry-After. */

const start = Date.parse("2026-12-01T08:00:00Z");

function governor(options: Partial<ConstructorParameters<typeof RateGovernor>[0]> = {}) {
  let clock = start;
  const made = new RateGovernor({ assumedLimit: 5000, windowSeconds: 3600, now: () => clock, ...options });
  return { governor: made, advance: (ms: number) => (clock += ms), now: () => clock };
}

/** Calls taken until the governor says no, and why. */
function drain(governor: RateGovernor, max = 10_000) {
  let taken = 0;
  for (; taken < max; taken++) {
    const denial = governor.take();
    if (denial) return { taken, denial };
  }
  return { taken, denial: undefined };
}

describe("reading the forges' rate headers", () => {
  it("reads GitHub's x-ratelimit-*, GitLab's RateLimit-* and Retry-After in seconds or as a date", () => {
    expect(
      readRateHeaders(
        { "x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4321", "x-ratelimit-reset": "1764576000" },
        start,
      ),
    ).toEqual({ limit: 5000, remaining: 4321, resetAt: 1_764_576_000_000 });
    const gitlab = new Headers({
      "RateLimit-Limit": "2000",
      "RateLimit-Remaining": "0",
      "Retry-After": "30",
    });
    expect(readRateHeaders(gitlab, start)).toEqual({ limit: 2000, remaining: 0, retryAt: start + 30_000 });
    expect(readRateHeaders({ "retry-after": "Tue, 01 Dec 2026 08:05:00 GMT" }, start)).toEqual({
      retryAt: start + 300_000,
    });
    expect(readRateHeaders({ "x-ratelimit-remaining": "lots" }, start)).toEqual({});
  });
});

describe("the rate governor", () => {
  it("spends at most its share of the window, then none until calls leave the window", () => {
    const { governor: made, advance } = governor({ share: 0.1, burst: 10_000 });
    expect(drain(made)).toEqual({ taken: 500, denial: "share" });
    advance(3_600_001);
    expect(drain(made).taken).toBe(500);
  });

  it("paces its share over the window: a poll interval's worth at once, then as it refills", () => {
    const { governor: made, advance } = governor();
    expect(drain(made)).toEqual({ taken: 9, denial: "pace" });
    advance(60_000);
    // 500 calls an hour refill 8.3 a minute.
    expect(drain(made).taken).toBe(8);
    advance(3_600_000);
    expect(drain(made).taken).toBe(9);
  });

  it("backs off before the limit: it leaves the forge's reserve whole, and learns the limit it reports", () => {
    const { governor: made, advance, now } = governor({ burst: 10_000 });
    made.observe({ limit: 1000, remaining: 110, resetAt: now() + 600_000 });
    // 10% of 1,000 is the reserve: 10 calls, and the 100 left stay for what cannot wait.
    expect(drain(made)).toEqual({ taken: 10, denial: "reserve" });
    const report = made.report();
    expect(report).toMatchObject({ calls: 10, forgeRemaining: 100, limit: 1000, denied: "reserve" });
    expect(report.blockedUntil?.getTime()).toBe(now() + 600_000);
    // Others' calls count too: what the forge says is the truth.
    made.observe({ remaining: 105 });
    expect(drain(made).denial).toBe("reserve");
    // A new window: the old figures no longer hold.
    advance(600_000);
    expect(made.take()).toBeUndefined();
  });

  it("honours Retry-After, and reports until when", () => {
    const { governor: made, advance, now } = governor();
    made.observe({ retryAt: now() + 30_000 });
    expect(made.take()).toBe("retry-after");
    expect(made.report().blockedUntil?.getTime()).toBe(now() + 30_000);
    advance(30_000);
    expect(made.take()).toBeUndefined();
  });

  it("reports each poll's calls and the share left, then starts the count anew", () => {
    const { governor: made } = governor({ burst: 100 });
    for (let index = 0; index < 7; index++) made.take();
    expect(made.report()).toMatchObject({ calls: 7, shareLeft: 493, denied: undefined });
    expect(made.report().calls).toBe(0);
  });

  it("refuses options that make no budget", () => {
    expect(() => governor({ share: 0 })).toThrow(/share 0/);
    expect(() => governor({ reserve: 1 })).toThrow(/reserve 1/);
    expect(() => governor({ assumedLimit: 0 })).toThrow(/assumedLimit 0/);
  });
});

describe("a governor's snapshot", () => {
  it("carries the window, the pace, the forge's word and a Retry-After into another process", () => {
    const first = governor({ burst: 10 });
    first.governor.observe({ limit: 5000, remaining: 600, resetAt: start + 1_800_000 });
    expect(drain(first.governor, 10)).toEqual({ taken: 10, denial: undefined });
    first.governor.backOff(start + 30_000);
    const stored = JSON.parse(JSON.stringify(first.governor.snapshot()));

    const second = governor({ burst: 10 });
    second.governor.restore(stored);
    expect(second.governor.check()).toBe("retry-after");
    second.advance(30_000);
    // Its 10 calls count: the forge's 600 less 10 is within one call of the reserve (500) only later.
    expect(second.governor.report()).toMatchObject({ shareLeft: 490, forgeRemaining: 590 });
    // Thirty seconds refilled a few calls of the pace, not a whole new burst.
    expect(drain(second.governor).taken).toBeLessThan(10);
  });

  it("takes nothing it cannot trust from a damaged snapshot: calls in the future, non-numbers", () => {
    const { governor: restored, now } = governor({ burst: 5 });
    restored.restore({
      limit: -1,
      remaining: Number.NaN,
      spent: [now() + 60_000, now() - 10, "x" as unknown as number],
      tokens: 3,
      refilledAt: now() + 1,
      retryAt: "soon" as unknown as number,
    });
    const report = restored.report();
    expect(report).toMatchObject({ limit: 5000, forgeRemaining: undefined, shareLeft: 499 });
    expect(drain(restored).taken).toBe(5);
  });
});
