import type { Random } from "./random";

export { Random } from "./random";

/**
 * The rules of the fleet model (`traces/README.md`) that both simulators follow: the trace simulator
 * (`simulation/trace`, a million jobs in seconds) and the live simulated fleet (`simulation/fleet` and local mode's
 * runners). Each rule is what AWS or a forge does, not what a policy would like; written once so
 * that the two cannot drift apart.
 */

// The store's rule is the control plane's too: it believes a store holds what the model's stores hold.
export { rememberKey, STORE_KEYS } from "../../instances/store-keys";

/**
 * Which instance Auto Scaling takes when the choice is its own: which Stopped warm-pool instance
 * resumes on scale-out, which extra one leaves an oversized warm pool. AWS does not say, so the model
 * draws uniformly at random (seeded): a policy cannot count on getting a particular store back.
 * Returns undefined when there is nothing to choose from.
 */
export function awsChoice<T>(candidates: readonly T[], random: Random): T | undefined {
  if (candidates.length === 0) return undefined;
  return candidates[random.int(candidates.length)];
}

/** A runner with `free` slots listening for jobs. */
export interface ListeningRunner<R> {
  runner: R;
  free: number;
}

/**
 * How runners claim queued jobs, as the forges hand them out: a free slot with a listening runner
 * takes the oldest queued job it can run, and which listening slot gets which job is the forge's
 * choice, uniformly random among the listening slots that can run it (seeded). No runner prefers a
 * warm store by itself.
 *
 * `queued` is oldest first; `listening` counts each runner's free slots (runners without one may be
 * left out). Returns the claims in order, oldest job first; `listening` is left with the slots that
 * are still free. Without `canRun`, every runner can run every job (one pool), and the claims are
 * the oldest `min(queued, free slots)` jobs.
 */
export function claimQueuedJobs<J, R>(
  queued: Iterable<J>,
  listening: Array<ListeningRunner<R>>,
  random: Random,
  canRun?: (job: J, runner: R) => boolean,
): Array<{ job: J; runner: R }> {
  const claims: Array<{ job: J; runner: R }> = [];
  let free = 0;
  for (const entry of listening) free += Math.max(0, entry.free);
  if (free === 0) return claims;
  for (const job of queued) {
    let slots = 0;
    for (const entry of listening)
      if (entry.free > 0 && (!canRun || canRun(job, entry.runner))) slots += entry.free;
    if (slots === 0) continue;
    // One draw per claim, over slots rather than runners: a runner with two free slots is twice as
    // likely to be handed the job as a runner with one.
    let draw = slots === 1 ? 0 : random.int(slots);
    for (const entry of listening) {
      if (entry.free <= 0 || (canRun && !canRun(job, entry.runner))) continue;
      if (draw < entry.free) {
        entry.free--;
        free--;
        claims.push({ job, runner: entry.runner });
        break;
      }
      draw -= entry.free;
    }
    if (free === 0) break;
  }
  return claims;
}
