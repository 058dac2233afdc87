import { isThrottling } from "@hearth/core/fleet-aws";
import type { PoolPlan } from "@hearth/core/planner";
import {
  apply,
  holdLease,
  type Observation,
  observe,
  planPool,
  type ScalingDeps,
  scaleLease,
} from "@hearth/core/scaling";
import * as z from "zod";
import type { Logger } from "../log";

/**
 * The ScaleFleet workflow's tasks. Each takes the workflow state and returns its result; the same
 * functions run as Lambdas in AWS and as local handlers under aws-local-stepfunctions.
 */

const runSchema = z.object({
  pool: z.string().min(1),
  holder: z.string().min(1),
  iteration: z.number().int().nonnegative().default(0),
  maxIterations: z.number().int().positive(),
  observation: z.unknown().optional(),
  plan: z.unknown().optional(),
  error: z.object({ Error: z.string().optional(), Cause: z.unknown().optional() }).optional(),
});

/** Errors the workflow retries carry this name (the ASL `Retry` matches it). */
class Throttled extends Error {
  override name = "Hearth.Throttled";
}

async function step<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (isThrottling(error)) throw new Throttled(error instanceof Error ? error.message : String(error));
    throw error;
  }
}

export function scaleFleetTasks(deps: ScalingDeps, log: Logger) {
  return {
    observe: (input: unknown) =>
      step(async () => {
        const run = runSchema.parse(input);
        const previous = (run.observation as Observation | undefined)?.iteration ?? run.iteration;
        if (!(await holdLease(deps, run.pool, run.holder))) return { leaseLost: true, iteration: previous };
        return { ...(await observe(deps, run.pool, previous)), leaseLost: false };
      }),

    plan: (input: unknown) =>
      step(async () => {
        const run = runSchema.parse(input);
        return planPool(deps, run.observation as Observation);
      }),

    apply: (input: unknown) =>
      step(async () => {
        const run = runSchema.parse(input);
        return apply(deps, run.observation as Observation, run.plan as PoolPlan);
      }),

    finish: (input: unknown) =>
      step(async () => {
        const run = runSchema.parse(input);
        await deps.leases.release(scaleLease(run.pool), run.holder);
        return {};
      }),

    recordFailure: (input: unknown) =>
      step(async () => {
        const run = runSchema.parse(input);
        const cause =
          typeof run.error?.Cause === "string" ? run.error.Cause : JSON.stringify(run.error?.Cause ?? "");
        log.error("scale fleet failed", { pool: run.pool, error: run.error?.Error, cause });
        await deps.journal.write({
          pool: run.pool,
          kind: "error",
          reason: `ScaleFleet failed: ${run.error?.Error ?? "unknown error"}`,
          details: { cause: cause.slice(0, 500) },
        });
        await deps.leases.release(scaleLease(run.pool), run.holder);
        return {};
      }),
  };
}

export type ScaleFleetTasks = ReturnType<typeof scaleFleetTasks>;
