import type { InstanceRecord } from "../../src/instances";

/**
 * An idle two-slot spot instance's record, as the registry keeps it, that heartbeated at
 * 2026-01-01T10:05:10Z speaking protocol 3; tests override what they are about.
 */
export function instanceRecord(overrides: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    id: "i-0aaaaaaaaaaaaaaa1",
    pool: "x86_64",
    group: "burst",
    market: "spot",
    az: "eu-west-1a",
    launchedAt: "2026-01-01T09:00:00.000Z",
    registeredAt: "2026-01-01T09:00:00.000Z",
    runner: "ready",
    slots: 2,
    runningJobs: [],
    cacheKeys: [],
    finishedCacheKeys: [],
    finishedCacheKeyTimes: {},
    reportedCacheKeys: [],
    storeBytes: null,
    freeDiskBytes: null,
    pushQueueDepth: null,
    pushLagSeconds: null,
    lastHeartbeatAt: "2026-01-01T10:05:10.000Z",
    idleSince: null,
    interruption: null,
    gitlabManager: null,
    agentProtocol: 3,
    claiming: true,
    releasing: null,
    parkedAt: null,
    ...overrides,
  };
}
