import { describe, expect, it } from "vitest";
import type { InstanceRecord } from "../src/instances";
import { poolStoreHealth } from "../src/instances/store-health";
import { instanceRecord } from "./support/instance-record";

const now = Date.parse("2026-01-05T10:00:00.000Z");
const ago = (ms: number) => new Date(now - ms).toISOString();
const record = (overrides: Partial<InstanceRecord>): InstanceRecord =>
  instanceRecord({ lastHeartbeatAt: ago(10_000), ...overrides });

describe("a pool's store health", () => {
  it("is the worst of its reporting instances: the longest push lag, the least free disk", () => {
    const health = poolStoreHealth(
      [
        record({ pushLagSeconds: 30, freeDiskBytes: 40e9 }),
        record({ pushLagSeconds: 5_400, freeDiskBytes: 60e9 }),
        record({ pushLagSeconds: 0, freeDiskBytes: 3e9 }),
      ],
      now,
    );
    expect(health).toEqual({ reporting: 3, pushLagSeconds: 5_400, freeDiskBytes: 3e9 });
  });

  it("leaves out instances that stopped reporting: a stopped store's figures are old", () => {
    const health = poolStoreHealth(
      [
        record({ pushLagSeconds: 9_000, freeDiskBytes: 1e9, lastHeartbeatAt: ago(91_000) }),
        record({ pushLagSeconds: 9_000, freeDiskBytes: 1e9, lastHeartbeatAt: null }),
        record({ pushLagSeconds: 12, freeDiskBytes: 50e9 }),
      ],
      now,
    );
    expect(health).toEqual({ reporting: 1, pushLagSeconds: 12, freeDiskBytes: 50e9 });
  });

  it("says null for a figure no reporting instance measured (an image without the binary cache)", () => {
    expect(poolStoreHealth([record({ freeDiskBytes: 20e9 })], now)).toEqual({
      reporting: 1,
      pushLagSeconds: null,
      freeDiskBytes: 20e9,
    });
    expect(poolStoreHealth([], now)).toEqual({ reporting: 0, pushLagSeconds: null, freeDiskBytes: null });
  });
});
