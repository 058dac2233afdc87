import type { ReconciliationSettings } from "../config/file";
import { RateGovernor, RateGovernors } from "../polling/governor";
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
