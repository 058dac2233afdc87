import type { SweepDeps, SweepSurvey } from ".";

export async function sweepSurvey(deps: SweepDeps, input: { sweepId: string }): Promise<SweepSurvey> {
  return {
    sweepId: input.sweepId,
    complete: false,
    unknown: [{ listing: "sweep", reason: "the survey is not built yet" }],
    marked: { "ghost-runner": 0, "orphan-instance": 0, "stuck-job": 0, "stale-job": 0, "offline-manager": 0 },
    due: [],
    cleared: 0,
    applied: 0,
    dryRun: deps.settings.dryRun,
  };
}
