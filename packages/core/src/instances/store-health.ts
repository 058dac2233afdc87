import { reportsOnTime } from "../fleet";
import type { InstanceRecord } from "./index";

/**
 * A pool's worst store health, over its instances whose agent reports now: what the status page
 * sums up and the alarms watch. A store whose builds are not reaching the binary cache (no signing
 * key, no access to the bucket) leaves every other store, and every fresh spot instance, to build
 * them again; a store short of disk fails its jobs' builds.
 */
export interface PoolStoreHealth {
  /** Instances whose agent reports on time (`reportsOnTime`: within the last 90 s). */
  reporting: number;
  /** The longest any of them has had a build waiting to be pushed to the binary cache; null if none measured it. */
  pushLagSeconds: number | null;
  /** The least free disk any of their stores has, in bytes; null if none measured it. */
  freeDiskBytes: number | null;
}

export function poolStoreHealth(records: readonly InstanceRecord[], now: number): PoolStoreHealth {
  const health: PoolStoreHealth = { reporting: 0, pushLagSeconds: null, freeDiskBytes: null };
  for (const record of records) {
    // A stopped or silent instance's figures are old: they say nothing of the store now.
    if (!reportsOnTime(record.lastHeartbeatAt, now)) continue;
    health.reporting++;
    if (record.pushLagSeconds !== null)
      health.pushLagSeconds = Math.max(health.pushLagSeconds ?? 0, record.pushLagSeconds);
    if (record.freeDiskBytes !== null)
      health.freeDiskBytes = Math.min(health.freeDiskBytes ?? Number.POSITIVE_INFINITY, record.freeDiskBytes);
  }
  return health;
}
