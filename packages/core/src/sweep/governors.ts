import type { ReconciliationSettings } from "../config/file";
import type { Leases } from "../leases";
import { RateGovernor, RateGovernors } from "../polling/governor";
import {
  loadReconciliationState,
  type ReconciledForge,
  reconciliationLease,
  saveGovernors,
} from "../polling/state";
import type { Store } from "../table";
import type { SweepGovernors } from ".";

/**
 * The sweep's governors when the host has none to share with polling (a Lambda of its own): the same
 * share of each token's budget, with a burst of one sweep interval's worth of it, since a sweep spends
 * its calls at once every `sweepMinutes` rather than evenly (the default burst, a minute's worth,
 * would leave a sweep of a few scopes and stuck jobs incomplete every time).
 */
export function createSweepGovernors(
  settings: Pick<ReconciliationSettings, "budgetShare" | "sweepMinutes">,
  now: () => number,
): SweepGovernors {
  const share = settings.budgetShare;
  // GitHub: 5,000 calls an hour per installation until its headers say otherwise.
  const github = { assumedLimit: 5000, windowSeconds: 3600 };
  // GitLab.com: 2,000 authenticated API calls a minute; a self-managed instance's headers say its own.
  const gitlab = { assumedLimit: 2000, windowSeconds: 60 };
  const burst = (limit: { assumedLimit: number; windowSeconds: number }) =>
    Math.max(1, Math.ceil((limit.assumedLimit * share * settings.sweepMinutes * 60) / limit.windowSeconds));
  return {
    github: new RateGovernors({ ...github, share, burst: Math.min(burst(github), 5000 * share), now }),
    gitlab: new RateGovernor({ ...gitlab, share, burst: Math.min(burst(gitlab), 2000 * share), now }),
  };
}

/**
 * The budget polling and the sweep spend together: the governors' state that polling stores per
 * forge (`RECONCILE#<forge>`). A survey runs under both forges' reconciliation leases, so that no poll
 * spends meanwhile; its governors start from what is stored (polling's calls and earlier sweeps')
 * and what they spent is stored back. The Act step's few reads start from the stored state too, and
 * are not stored (at most one fresh read or two per due action).
 */
export interface SweepBudget {
  /** `work` under the leases, with the stored budget; undefined (work not run) when a poll held them. */
  during<T>(holder: string, work: () => Promise<T>): Promise<T | undefined>;
  /** The governors brought up to what is stored. */
  refresh(): Promise<void>;
}

/** How long a survey may hold the reconciliation leases: longer than the sweep's task may run. */
export const SWEEP_LEASE_SECONDS = 300;

export function storedSweepBudget(options: {
  store: Store;
  leases: Leases;
  governors: SweepGovernors;
  /** A poll holds a lease for seconds: the survey asks again this many times, `waitMs` apart. */
  attempts?: number;
  waitMs?: number;
  sleep?: (ms: number) => Promise<void>;
}): SweepBudget {
  const { store, leases, governors } = options;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((done) => setTimeout(done, ms)));
  const gitlabGovernors = { snapshot: () => ({ gitlab: governors.gitlab.snapshot() }) };
  const forges: ReconciledForge[] = ["github", "gitlab"];

  async function load() {
    const [github, gitlab] = await Promise.all([
      loadReconciliationState(store, "github"),
      loadReconciliationState(store, "gitlab"),
    ]);
    governors.github.restore(github.governors);
    const stored = gitlab.governors.gitlab;
    if (stored) governors.gitlab.restore(stored);
    return { github, gitlab };
  }

  async function acquire(holder: string): Promise<ReconciledForge[]> {
    const held: ReconciledForge[] = [];
    for (const forge of forges) {
      if (await leases.acquire(reconciliationLease(forge), holder, SWEEP_LEASE_SECONDS)) held.push(forge);
      else break;
    }
    if (held.length === forges.length) return held;
    for (const forge of held) await leases.release(reconciliationLease(forge), holder);
    return [];
  }

  return {
    async during(holder, work) {
      let held: ReconciledForge[] = [];
      const attempts = options.attempts ?? 10;
      for (let attempt = 0; attempt < attempts && held.length === 0; attempt++) {
        if (attempt > 0) await sleep(options.waitMs ?? 2000);
        held = await acquire(holder);
      }
      if (held.length === 0) return undefined;
      let loaded: Awaited<ReturnType<typeof load>> | undefined;
      try {
        loaded = await load();
        return await work();
      } finally {
        // What the survey spent, failed or not. Under the leases no poll wrote the items meanwhile,
        // so the versions loaded still hold.
        if (loaded) {
          await saveGovernors(store, loaded.github, governors.github);
          await saveGovernors(store, loaded.gitlab, gitlabGovernors);
        }
        for (const forge of held) await leases.release(reconciliationLease(forge), holder);
      }
    },
    async refresh() {
      await load();
    },
  };
}
