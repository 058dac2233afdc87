import {
  type SweepActOutcome,
  type SweepDeps,
  type SweepSurvey,
  sweepAct,
  sweepActionSchema,
  sweepClasses,
  sweepFinish,
  sweepSurvey,
} from "@hearth/core/sweep";
import * as z from "zod";
import type { Logger } from "../log";
import { step } from "../scale";

/**
 * The Sweep workflow's tasks (`sweepDefinition` in @hearth/core/workflows). Each takes its state's
 * input and returns its step's result; the same functions run as the sweep Lambda in AWS and as local
 * handlers under aws-local-stepfunctions. They check what Step Functions hands them, call core, and
 * return plain JSON.
 */

// Core checks a sweep's id and each action itself (`checkSweepId`, `sweepActionSchema`); these
// schemas give the states' shapes, with core's definition of an action.
const sweepId = z.string();
const actionSchema = sweepActionSchema;

const surveySchema = z.object({
  sweepId,
  complete: z.boolean(),
  unknown: z.array(z.object({ listing: z.string(), reason: z.string() })),
  marked: z.record(z.enum(sweepClasses), z.number()),
  due: z.array(actionSchema),
  cleared: z.number(),
  applied: z.number(),
  dryRun: z.boolean(),
});

const outcomeSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("done"), action: actionSchema, calls: z.array(z.string()) }),
  z.object({ kind: z.literal("cleared"), action: actionSchema, why: z.string() }),
  z.object({ kind: z.literal("dry-run"), action: actionSchema }),
  z.object({ kind: z.literal("refused"), action: actionSchema, why: z.string() }),
]);

const surveyInput = z.object({ sweepId });
const actInput = z.object({ sweepId, action: actionSchema });
const finishInput = z.object({
  survey: surveySchema,
  // Absent when nothing was due, or the survey was incomplete.
  outcomes: z.array(outcomeSchema).default([]),
});
const failureInput = z.object({
  survey: z.object({ sweepId }).partial().optional(),
  error: z.object({ Error: z.string().optional(), Cause: z.unknown().optional() }).optional(),
});

/** What one sweep found and did: the workflow's final state (local mode's `POST /sim/sweep` answers it). */
export interface SweepRun {
  survey: SweepSurvey;
  outcomes: SweepActOutcome[];
}

/** The sweep's Task states; `load` gives its dependencies, loaded at the first step. */
export function sweepTasks(load: () => Promise<SweepDeps>, log: Logger) {
  return {
    survey: (input: unknown): Promise<SweepSurvey> =>
      step(async () => {
        const survey = await sweepSurvey(await load(), surveyInput.parse(input));
        log.info("sweep surveyed", {
          sweep: survey.sweepId,
          complete: survey.complete,
          due: survey.due.length,
          cleared: survey.cleared,
          applied: survey.applied,
        });
        return survey;
      }),

    act: (input: unknown): Promise<SweepActOutcome> =>
      step(async () => {
        const outcome = await sweepAct(await load(), actInput.parse(input));
        log.info("sweep acted", { subject: outcome.action.subject, outcome: outcome.kind });
        return outcome;
      }),

    finish: (input: unknown): Promise<Record<string, never>> =>
      step(async () => {
        await sweepFinish(await load(), finishInput.parse(input) as SweepRun);
        return {};
      }),

    recordFailure: (input: unknown): Promise<Record<string, never>> =>
      step(async () => {
        const state = failureInput.parse(input);
        const cause =
          typeof state.error?.Cause === "string"
            ? state.error.Cause
            : JSON.stringify(state.error?.Cause ?? "");
        log.error("sweep failed", { sweep: state.survey?.sweepId, error: state.error?.Error, cause });
        await (await load()).journal.write({
          pool: null,
          kind: "error",
          reason: `Sweep failed: ${state.error?.Error ?? "unknown error"}`,
          details: { cause: cause.slice(0, 500) },
        });
        return {};
      }),
  };
}

export type SweepTasks = ReturnType<typeof sweepTasks>;
