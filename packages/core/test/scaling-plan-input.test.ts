import { describe, expect, it } from "vitest";
import type { FleetGroup } from "../src/fleet";
import { poolConfigSchema } from "../src/pools";
import { type Observation, planObservation } from "../src/scaling/plan-input";

const pool = poolConfigSchema.parse({
  name: "x86_64",
  labels: ["nix"],
  architecture: "x86_64",
  instanceTypes: ["c6a.xlarge"],
});
const NOW = Date.parse("2026-03-02T10:00:00Z");

const group = (kind: "warm" | "burst", onDemandFallback: boolean): FleetGroup => ({
  pool: pool.name,
  group: kind,
  name: `hearth-${pool.name}-${kind}`,
  desired: 0,
  max: 50,
  warmPoolSize: kind === "warm" ? 0 : null,
  onDemandFallback,
});

const observation = (burstFallback: boolean): Observation => ({
  pool: pool.name,
  at: NOW,
  iteration: 0,
  queue: [{ pool: pool.name, cacheKey: "app/build", count: 4, oldestQueuedAt: NOW - 10_000 }],
  running: [],
  queued: 4,
  instances: [],
  groups: [group("warm", false), group("burst", burstFallback)],
  demand: null,
});

describe("planObservation", () => {
  it("says the burst group launches on-demand when the observed group has fallen back", () => {
    const fallen = planObservation({ pools: [pool] }, observation(true));
    expect(fallen.desiredBurst).toBe(2);
    expect(fallen.reason).toBe("4 waiting for a slot, 0 free; launch 2 on-demand");
    expect(planObservation({ pools: [pool] }, observation(false)).reason).toBe(
      "4 waiting for a slot, 0 free; launch 2 spot",
    );
  });
});
