import {
  type Claimed,
  claimInterruption,
  type DrainProgress,
  drainInterrupted,
  type InterruptionDeps,
  type InterruptionNotice,
  InvalidInterruptionEvent,
  noticeFromEvent,
  noticeSchema,
  parseInterruptionEvents,
  recordInterruptionFailure,
  settleInterrupted,
} from "@hearth/core/interruptions";
import * as z from "zod";
import type { Logger } from "../log";
import { step } from "../scale";

/**
 * HandleInterruption's tasks: each takes the execution's state and returns its step's result, as
 * Lambdas in AWS and as local handlers under aws-local-stepfunctions. An execution starts with an
 * EventBridge event as AWS delivers it (the rules' target is the state machine itself), or with
 * `{ notice }` (the heartbeat, local mode).
 */

const progressSchema = z.object({
  pool: z.string().min(1),
  startedAt: z.string(),
  drainedAt: z.string(),
  beatSeen: z.string().nullable(),
  waitSeconds: z.number(),
  done: z.boolean(),
  outcome: z.enum(["waiting", "gone", "terminated", "superseded", "gave-up"]),
});

const stateSchema = z.object({
  notice: noticeSchema.optional(),
  claim: z
    .object({ pool: z.string().nullable(), previous: z.enum(["rebalance", "warning"]).nullable() })
    .optional(),
  progress: progressSchema.optional(),
  error: z.object({ Error: z.string().optional(), Cause: z.unknown().optional() }).optional(),
});

/** The execution's notice: its `notice`, or the EventBridge event it was started with. */
export function noticeOf(input: unknown): InterruptionNotice {
  if (input && typeof input === "object" && "detail-type" in input) return noticeFromEvent(input);
  const notice = stateSchema.parse(input).notice;
  if (!notice) throw new InvalidInterruptionEvent("the execution's input is neither an event nor a notice");
  return notice;
}

export function handleInterruptionTasks(deps: InterruptionDeps, log: Logger) {
  return {
    claim: (input: unknown): Promise<Claimed> => step(() => claimInterruption(deps, noticeOf(input))),

    drain: (input: unknown): Promise<DrainProgress> =>
      step(async () => {
        const state = stateSchema.parse(input);
        return drainInterrupted(deps, noticeOf(input), state.claim ?? { pool: null, previous: null });
      }),

    settle: (input: unknown): Promise<DrainProgress> =>
      step(async () => {
        const state = stateSchema.parse(input);
        if (!state.progress) throw new Error("Settle needs Drain's progress");
        return settleInterrupted(deps, noticeOf(input), state.progress);
      }),

    recordFailure: (input: unknown) =>
      step(async () => {
        const state = stateSchema.parse(input);
        let instanceId = "unknown instance";
        try {
          instanceId = noticeOf(input).instanceId;
        } catch {
          // A malformed input failed Claim itself: the failure is journaled without an instance.
        }
        const cause =
          typeof state.error?.Cause === "string"
            ? state.error.Cause
            : JSON.stringify(state.error?.Cause ?? "");
        log.error("handle interruption failed", { instance: instanceId, error: state.error?.Error, cause });
        await recordInterruptionFailure(deps, {
          instanceId,
          pool: state.claim?.pool ?? null,
          error: state.error?.Error ?? "unknown error",
          cause,
        });
        return {};
      }),
  };
}

export type HandleInterruptionTasks = ReturnType<typeof handleInterruptionTasks>;

/** Starts HandleInterruption for a notice: `started`, or `already-started` for a duplicate name. */
export type StartHandleInterruption = (notice: InterruptionNotice) => Promise<"started" | "already-started">;

export interface EventOutcome {
  instanceId: string;
  kind: InterruptionNotice["kind"];
  outcome: "started" | "already-started";
}

/**
 * Events as EventBridge delivers them (one, or a list), each starting HandleInterruption; a bad
 * event refuses the whole body before anything starts (`InvalidInterruptionEvent`).
 */
export async function acceptInterruptionEvents(
  body: unknown,
  start: StartHandleInterruption,
): Promise<EventOutcome[]> {
  const notices = parseInterruptionEvents(body);
  const outcomes: EventOutcome[] = [];
  for (const notice of notices) {
    outcomes.push({ instanceId: notice.instanceId, kind: notice.kind, outcome: await start(notice) });
  }
  return outcomes;
}
