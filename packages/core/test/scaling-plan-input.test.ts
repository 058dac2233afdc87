import { describe, expect, it } from "vitest";
import type { FleetGroup } from "../src/fleet";
import { applyEvent } from "../src/jobs";
import { poolConfigSchema } from "../src/pools";
import { routeQueue } from "../src/scaling/observe";
import { type Observation, planObservation } from "../src/scaling/plan-input";
import { jobEvent } from "./support/jobs";

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

describe("routeQueue", () => {
  it("counts as retries to plan on demand only a job's last retry, as its pool allows it", () => {
    const twice = poolConfigSchema.parse({ ...pool, labels: ["nix", "x86_64-linux"] });
    expect(twice.retryInterrupted).toBe(2);
    const queued = [
      applyEvent(undefined, jobEvent({ id: "1" })),
      applyEvent(undefined, jobEvent({ id: "2", retryOf: "10", retryNumber: 1 })),
      applyEvent(undefined, jobEvent({ id: "3", retryOf: "11", retryNumber: 2 })),
    ];
    const { summary } = routeQueue(queued, [twice]);
    expect(summary.count(twice.name)).toBe(3);
    expect(summary.retries(twice.name)).toBe(1);
    const once = { ...twice, retryInterrupted: 1 };
    expect(routeQueue(queued, [once]).summary.retries(twice.name)).toBe(2);
  });
});
