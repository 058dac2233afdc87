import type { ScalingDeps } from "./deps";

/** Starting a ScaleFleet run for a pool, and the lease that keeps one run per pool. */

/**
 * How long a ScaleFleet run's lease outlives its last renewal. A live run renews it at the start and
 * at the end of Observe and of Apply (each a Lambda with a 60 s timeout), and between those only Plan
 * (10 s) and a Wait (at most 15 s) or a retry's backoff (at most 30 s) pass; so a live run renews well
 * within this, and a run that died (aborted, timed out, its Lambda or its host killed) leaves the pool
 * to the next webhook or tick within 90 s.
 */
export const LEASE_SECONDS = 90;
export const scaleLease = (pool: string) => `scale#${pool}`;

/**
 * A new job may supersede a run that waits at least this much longer: a run about to observe again
 * will see the job itself, for less than a new execution costs.
 */
export const SUPERSEDE_MARGIN_MS = 2_000;

/**
 * Keeps the run's lease while it loops; false when another run holds it now (this one stops).
 * `waitingUntil`: the run is about to wait until then (epoch ms), so a new job may supersede it.
 */
export async function holdLease(
  deps: Pick<ScalingDeps, "leases">,
  pool: string,
  holder: string,
  waitingUntil?: number,
): Promise<boolean> {
  if (await deps.leases.renew(scaleLease(pool), holder, LEASE_SECONDS, waitingUntil)) return true;
  return deps.leases.acquire(scaleLease(pool), holder, LEASE_SECONDS);
}

/**
 * What to say when a run could not start because another holds the pool's lease: which run, and until
 * when at the latest. Said at most once per pool every `everyMs`, so a burst of webhooks logs one line.
 */
export function leaseNotices(
  deps: Pick<ScalingDeps, "leases" | "now">,
  say: (fields: { pool: string; holder: string; leaseUntil: string; seconds: number }) => void,
  everyMs = 60_000,
) {
  const said = new Map<string, number>();
  return async (pool: string): Promise<void> => {
    const now = deps.now().getTime();
    const last = said.get(pool);
    if (last !== undefined && now - last < everyMs) return;
    said.set(pool, now);
    const lease = await deps.leases.get(scaleLease(pool));
    if (!lease) return;
    say({
      pool,
      holder: lease.holder,
      leaseUntil: new Date(lease.until).toISOString(),
      seconds: Math.max(0, Math.round((lease.until - now) / 1000)),
    });
  };
}

export type ScaleRequest = "covered" | "running" | "started" | "superseded";

/**
 * Starts a ScaleFleet run (StartExecution). `supersede`: the run takes the pool's lease from a run
 * that waits, at its first Observe (`leases.supersede`), or stops there if that run is at work again.
 */
export type StartRun = (pool: string, holder: string, options?: { supersede?: boolean }) => Promise<void>;

/**
 * A queued job arrived for `pool`: start a ScaleFleet run unless spare capacity already covers it or
 * a run is under way (the lease). A burst of webhooks thus starts one execution.
 * - `covered: false`: spare slots do not count (the tick; or a pool whose placement may keep the
 *   job off a free slot while its warm store resumes, which only a run decides).
 * - `wake` (on unless false): when the run under way is waiting (between iterations, up to 15 s),
 *   a new run supersedes it and observes now (it takes the lease at its first Observe); the waiting
 *   one stops at its next step. Without it the job would wait for the end of that wait before any
 *   instance starts for it.
 */
export async function requestScale(
  deps: Pick<ScalingDeps, "leases" | "scalingRecords">,
  pool: string,
  start: StartRun,
  holder: string,
  options: { covered?: boolean; wake?: boolean } = {},
): Promise<ScaleRequest> {
  if (options.covered !== false && (await deps.scalingRecords.takeSpareSlot(pool))) return "covered";
  if (!(await deps.leases.acquire(scaleLease(pool), holder, LEASE_SECONDS))) {
    if (options.wake === false || !(await deps.leases.waiting(scaleLease(pool), SUPERSEDE_MARGIN_MS)))
      return "running";
    // The new run takes the lease itself, at its first step: if this start fails, the waiting run
    // keeps the pool, as if no job had come.
    await start(pool, holder, { supersede: true });
    return "superseded";
  }
  try {
    await start(pool, holder);
  } catch (error) {
    await deps.leases.release(scaleLease(pool), holder);
    throw error;
  }
  return "started";
}
