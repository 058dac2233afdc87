import type { SimJob } from "../fleet";
import type { FleetModel } from "../model";

/**
 * `oracle`: the lower bound no real policy reaches. Every job starts the moment it arrives, on a
 * warm store, and is billed only while it runs, at the spot price per slot, until the run ends at
 * `endSeconds` (a job still running then is not finished).
 */
export function oracleCost(
  jobs: readonly SimJob[],
  model: FleetModel,
  endSeconds: number,
): { cost: number; slotSeconds: number; finished: number } {
  let slotSeconds = 0;
  let finished = 0;
  for (const job of jobs) {
    const { createdAt, warmSeconds } = job.trace;
    slotSeconds += Math.max(0, Math.min(warmSeconds, endSeconds - createdAt));
    if (createdAt + warmSeconds <= endSeconds) finished++;
  }
  return { cost: (slotSeconds * model.spotHourly) / model.slotsPerInstance / 3600, slotSeconds, finished };
}
