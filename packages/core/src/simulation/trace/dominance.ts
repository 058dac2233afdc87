/**
 * Issue 15's rule for comparing Hearth with a baseline: Hearth dominates it when its p95 wait is at
 * most the baseline's or the warm-resume floor, whichever is larger (a job cannot start sooner than a
 * stopped store resumes, unless a slot is already free), and its cost at most the baseline's.
 */

/** The warm-resume floor: 25 s of resume, and the heartbeat and webhook delays around it. */
export const WAIT_FLOOR_SECONDS = 35;

/** What the rule compares of a policy's run. */
export interface PolicyFigures {
  policy: string;
  waitP95: number;
  costUsd: number;
}

/** Why `candidate` does not dominate `baseline`: empty when it does. */
export function dominanceGaps(candidate: PolicyFigures, baseline: PolicyFigures): string[] {
  const gaps: string[] = [];
  const wait = Math.max(baseline.waitP95, WAIT_FLOOR_SECONDS);
  if (candidate.waitP95 > wait) gaps.push(`p95 > ${wait.toFixed(0)} s`);
  if (candidate.costUsd > baseline.costUsd) gaps.push(`cost > $${baseline.costUsd.toFixed(2)}`);
  return gaps;
}

/** Each baseline `candidate` does not dominate, said with why: "ghr+cache (cost > $97.62)". */
export function dominanceMisses(candidate: PolicyFigures, baselines: readonly PolicyFigures[]): string[] {
  return baselines.flatMap((baseline) => {
    const gaps = dominanceGaps(candidate, baseline);
    return gaps.length > 0 ? [`${baseline.policy} (${gaps.join(", ")})`] : [];
  });
}
