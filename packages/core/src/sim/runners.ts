import type { SimInstance } from "./instance";
import type { SimJob } from "./job";
import type { SimPool } from "./pool";

/**
 * How runners claim queued jobs, the same for every policy.
 *
 * The queue is first come, first served: when k slots are free, the k oldest jobs start (a runner
 * asks the forge for a job and gets the oldest it can run). Which job lands on which free slot
 * favours warm stores: first every job with a free slot warm for its cache key takes one, then the
 * others take the slots warm for the fewest jobs still waiting, so that they do not take a warm
 * store from a later job. Hearth's agent polls sooner when its store is warm for a queued job; the
 * simulator gives every policy's runners that advantage.
 */
export function claimJobs(pool: SimPool, start: (job: SimJob, instance: SimInstance) => void): void {
  const waiting = pool.waiting.length - pool.head;
  if (waiting === 0) return;
  let free = 0;
  for (const instance of pool.instances) free += instance.freeSlots();
  const count = Math.min(free, waiting);
  if (count <= 0) return;
  const batch = pool.waiting.slice(pool.head, pool.head + count);
  pool.head += count;
  const open = pool.instances.filter((instance) => instance.canTake());
  // Jobs of the batch not started yet, per cache key.
  const pending = new Map<string, number>();
  for (const job of batch) pending.set(job.trace.cacheKey, (pending.get(job.trace.cacheKey) ?? 0) + 1);
  const claim = (job: SimJob, instance: SimInstance) => {
    pending.set(job.trace.cacheKey, (pending.get(job.trace.cacheKey) ?? 1) - 1);
    start(job, instance);
    if (!instance.canTake()) open.splice(open.indexOf(instance), 1);
  };
  const cold: SimJob[] = [];
  for (const job of batch) {
    const instance = pick(open, job.trace.cacheKey, null);
    if (instance === null) cold.push(job);
    else claim(job, instance);
  }
  for (const job of cold) {
    const instance = pick(open, job.trace.cacheKey, pending);
    if (instance === null) throw new Error("runners ran out of free slots");
    claim(job, instance);
  }
  // Drop the claimed prefix now and then, so the queue does not grow without bound.
  if (pool.head > 1024 && pool.head * 2 > pool.waiting.length) {
    pool.waiting.splice(0, pool.head);
    pool.head = 0;
  }
}

/**
 * A free slot for a job. Without `pending`, only a slot warm for it; with `pending` (the batch's
 * jobs not started yet, per key), the slot warm for the fewest of them. Then the busiest instance
 * (so that idle ones stay idle and can be released), then the oldest.
 */
function pick(
  open: readonly SimInstance[],
  key: string,
  pending: Map<string, number> | null,
): SimInstance | null {
  let best: SimInstance | null = null;
  let bestCost = 0;
  for (const instance of open) {
    let cost = 0;
    if (pending === null) {
      if (!instance.keys.includes(key)) continue;
    } else {
      for (const held of instance.keys) cost += pending.get(held) ?? 0;
    }
    if (
      best === null ||
      cost < bestCost ||
      (cost === bestCost &&
        (instance.busy > best.busy || (instance.busy === best.busy && instance.serial < best.serial)))
    ) {
      best = instance;
      bestCost = cost;
    }
  }
  return best;
}
