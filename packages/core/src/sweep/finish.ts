import { checkSweepId, type SweepActOutcome, type SweepDeps, type SweepSurvey } from ".";

/** What a sweep's outcomes come to, by kind. */
export function countOutcomes(outcomes: readonly SweepActOutcome[]): Record<SweepActOutcome["kind"], number> {
  const counts = { done: 0, cleared: 0, "dry-run": 0, refused: 0 };
  for (const outcome of outcomes) {
    if (outcome?.kind in counts) counts[outcome.kind] += 1;
    else throw new Error("sweepFinish: an outcome of no known kind");
  }
  return counts;
}

/** The Finish step: one journal entry that sums the sweep up (each mark and action has its own). */
export async function sweepFinish(
  deps: SweepDeps,
  input: { survey: SweepSurvey; outcomes: SweepActOutcome[] },
): Promise<void> {
  const survey = input?.survey;
  const outcomes = input?.outcomes;
  checkSweepId(survey?.sweepId, "sweepFinish");
  if (!Array.isArray(outcomes) || !Array.isArray(survey.due) || !Array.isArray(survey.unknown))
    throw new Error("sweepFinish: the survey's due and unknown, and the outcomes, must be lists");
  const counts = countOutcomes(outcomes);
  const marked = Object.values(survey.marked).reduce((sum, count) => sum + count, 0);
  const summary = survey.complete
    ? `${marked} marked, ${survey.due.length} due (${counts.done} done, ${counts["dry-run"]} dry run, ${counts.cleared} cleared, ${counts.refused} refused), ${survey.cleared} marks cleared, ${survey.applied} stuck jobs applied`
    : `incomplete (${survey.unknown.length} listing${survey.unknown.length === 1 ? "" : "s"} unknown): nothing marked or acted on; ${survey.applied} stuck jobs applied`;
  await deps.journal.write({
    pool: null,
    kind: "sweep",
    reason: `sweep ${survey.sweepId}${survey.dryRun ? " (dry run)" : ""}: ${summary}`,
    details: {
      sweepId: survey.sweepId,
      complete: survey.complete,
      dryRun: survey.dryRun,
      marked,
      due: survey.due.length,
      done: counts.done,
      refused: counts.refused,
      clearedOnAct: counts.cleared,
      dryRunActions: counts["dry-run"],
      cleared: survey.cleared,
      applied: survey.applied,
    },
  });
}
