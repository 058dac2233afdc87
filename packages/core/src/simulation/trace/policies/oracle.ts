import type { SimJob } from "../fleet";
import type { FleetModel } from "../model";

/**
 * `oracle`: the lower bound no real policy reaches. Every job starts the moment it arrives, on a
 * warm store, and is billed only while it runs, at the spot price per slot.
 */
export function oracleCost(
  jobs: readonly SimJob[],
  model: FleetModel,
): { cost: number; slotSeconds: number } {
  let slotSeconds = 0;
  for (const job of jobs) slotSeconds += job.trace.warmSeconds;
  return { cost: (slotSeconds * model.spotHourly) / model.slotsPerInstance / 3600, slotSeconds };
}
