import type { Leases } from "@hearth/core/leases";
import type { PoolConfig } from "@hearth/core/pools";
import { scaleLease } from "@hearth/core/scaling";
import type { Logger } from "../log";

/**
 * Frees the ScaleFleet leases an earlier process of this data directory left. Called only while
 * holding the directory's lock, which proves that no other process of it is alive, so no run that
 * holds a lease here is: without this, scaling would wait for them to expire.
 */
export async function freeStaleLeases(leases: Leases, pools: readonly PoolConfig[], log: Logger) {
  const held: string[] = [];
  for (const pool of pools) {
    if (await leases.get(scaleLease(pool.name))) {
      await leases.clear(scaleLease(pool.name));
      held.push(pool.name);
    }
  }
  if (held.length) {
    log.info("freed ScaleFleet leases left by a previous process of this data directory", {
      pools: held.join(" "),
      why: "this process holds the directory's lock, so the runs that held them are gone",
    });
  }
}
