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

/** Keeps the run's lease while it loops; false when another run holds it now (this one stops). */
export async function holdLease(
  deps: Pick<ScalingDeps, "leases">,
  pool: string,
  holder: string,
): Promise<boolean> {
  if (await deps.leases.renew(scaleLease(pool), holder, LEASE_SECONDS)) return true;
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

/**
 * A queued job arrived for `pool`: start a ScaleFleet run unless spare capacity already covers it or
 * a run is under way (the lease). A burst of webhooks thus starts one execution.
 */
export async function requestScale(
  deps: Pick<ScalingDeps, "leases" | "scalingRecords">,
  pool: string,
  start: (pool: string, holder: string) => Promise<void>,
  holder: string,
  options: { covered?: boolean } = {},
): Promise<"covered" | "running" | "started"> {
  if (options.covered !== false && (await deps.scalingRecords.takeSpareSlot(pool))) return "covered";
  if (!(await deps.leases.acquire(scaleLease(pool), holder, LEASE_SECONDS))) return "running";
  try {
    await start(pool, holder);
  } catch (error) {
    await deps.leases.release(scaleLease(pool), holder);
    throw error;
  }
  return "started";
}
