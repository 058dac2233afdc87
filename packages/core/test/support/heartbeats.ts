import type { Heartbeat } from "../../src/instances";

/** An idle two-slot instance's heartbeat, as an agent reports it; tests override what they are about. */
export function heartbeat(instanceId: string, overrides: Partial<Heartbeat> = {}): Heartbeat {
  return {
    instanceId,
    runner: "ready",
    slots: 2,
    runningJobs: [],
    cacheKeys: [],
    storeBytes: null,
    interruption: null,
    ...overrides,
  };
}
