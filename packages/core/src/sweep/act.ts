import type { SweepAction, SweepActOutcome, SweepDeps } from ".";

export async function sweepAct(
  _deps: SweepDeps,
  input: { sweepId: string; action: SweepAction },
): Promise<SweepActOutcome> {
  return { kind: "refused", action: input.action, why: "acting is not built yet" };
}
