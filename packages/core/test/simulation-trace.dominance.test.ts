import { describe, expect, it } from "vitest";
import { dominanceGaps, dominanceMisses, WAIT_FLOOR_SECONDS } from "../src/simulation/trace";

const hearth = { policy: "hearth", waitP95: 30, costUsd: 100 };

describe("dominance", () => {
  it("asks a p95 no worse than the baseline's, or the warm-resume floor when that is larger", () => {
    // static waits 0 s: Hearth needs the floor, not 0 s.
    expect(dominanceGaps(hearth, { policy: "static", waitP95: 0, costUsd: 2000 })).toEqual([]);
    expect(
      dominanceGaps({ ...hearth, waitP95: 36 }, { policy: "static", waitP95: 0, costUsd: 2000 }),
    ).toEqual([`p95 > ${WAIT_FLOOR_SECONDS} s`]);
    // A slower baseline's own p95 is the bar.
    expect(dominanceGaps({ ...hearth, waitP95: 106 }, { policy: "ghr", waitP95: 106, costUsd: 200 })).toEqual(
      [],
    );
    expect(dominanceGaps({ ...hearth, waitP95: 107 }, { policy: "ghr", waitP95: 106, costUsd: 200 })).toEqual(
      ["p95 > 106 s"],
    );
  });

  it("asks a cost no higher than the baseline's, and names every gap", () => {
    expect(dominanceGaps(hearth, { policy: "ghr+cache", waitP95: 106, costUsd: 100 })).toEqual([]);
    expect(dominanceGaps(hearth, { policy: "ghr+cache", waitP95: 106, costUsd: 97.62 })).toEqual([
      "cost > $97.62",
    ]);
    expect(
      dominanceGaps({ ...hearth, waitP95: 76 }, { policy: "static+cache", waitP95: 0, costUsd: 50 }),
    ).toEqual(["p95 > 35 s", "cost > $50.00"]);
  });

  it("lists only the baselines not dominated, each with why", () => {
    const baselines = [
      { policy: "static", waitP95: 0, costUsd: 2076.32 },
      { policy: "ghr", waitP95: 106, costUsd: 164 },
      { policy: "ghr+cache", waitP95: 106, costUsd: 97.62 },
    ];
    expect(dominanceMisses({ ...hearth, costUsd: 163.02 }, baselines)).toEqual(["ghr+cache (cost > $97.62)"]);
    expect(dominanceMisses({ ...hearth, waitP95: 76, costUsd: 76.54 }, baselines)).toEqual([
      "static (p95 > 35 s)",
    ]);
  });
});
