import { claimQueuedJobs, type ListeningRunner, type Random } from "../rules";
import type { SimInstance, SimJob, SimPool } from "./state";

/**
 * How runners claim queued jobs, the same for every policy (`claimQueuedJobs`): when k slots are
 * free, the k oldest jobs start, each on a slot the forge picks at random among the free ones. A
 * policy places jobs only through which instances have listening runners.
 */
export function claimJobs(
  pool: SimPool,
  random: Random,
  start: (job: SimJob, instance: SimInstance) => void,
): void {
  const waiting = pool.waiting.length - pool.head;
  if (waiting === 0) return;
  const listening: Array<ListeningRunner<SimInstance>> = [];
  for (const instance of pool.instances) {
    const free = instance.freeSlots();
    if (free > 0) listening.push({ runner: instance, free });
  }
  if (listening.length === 0) return;
  // Every slot of a pool runs every job of it, so the claims are the queue's oldest jobs.
  const claims = claimQueuedJobs(queuedJobs(pool), listening, random);
  pool.head += claims.length;
  for (const { job, runner } of claims) start(job, runner);
  // Drop the claimed prefix now and then, so the queue does not grow without bound.
  if (pool.head > 1024 && pool.head * 2 > pool.waiting.length) {
    pool.waiting.splice(0, pool.head);
    pool.head = 0;
  }
}

/** The forge's queue, oldest first, without copying it. */
function* queuedJobs(pool: SimPool): Generator<SimJob> {
  for (let at = pool.head; at < pool.waiting.length; at++) yield pool.waiting[at] as SimJob;
}
