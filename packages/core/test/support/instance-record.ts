import { type InstanceRecord, registeredRecord } from "../../src/instances";

/**
 * An idle two-slot spot instance's record, as the registry keeps it, that heartbeated at
 * 2026-01-01T10:05:10Z speaking protocol 3; tests override what they are about.
 */
export function instanceRecord(overrides: Partial<InstanceRecord> = {}): InstanceRecord {
  const registration = {
    id: "i-0aaaaaaaaaaaaaaa1",
    pool: "x86_64",
    group: "burst" as const,
    market: "spot" as const,
    az: "eu-west-1a",
    launchedAt: "2026-01-01T09:00:00.000Z",
    slots: 2,
  };
  return {
    ...registeredRecord(registration, registration.launchedAt),
    runner: "ready",
    lastHeartbeatAt: "2026-01-01T10:05:10.000Z",
    agentProtocol: 3,
    claiming: true,
    ...overrides,
  };
}
