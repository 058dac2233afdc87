import type { SweepActOutcome, SweepDeps, SweepSurvey } from ".";

export async function sweepFinish(
  deps: SweepDeps,
  input: { survey: SweepSurvey; outcomes: SweepActOutcome[] },
): Promise<void> {
  await deps.journal.write({
    pool: null,
    kind: "sweep",
    reason: `sweep ${input.survey.sweepId} finished`,
    details: { complete: input.survey.complete, actions: input.outcomes.length },
  });
}
