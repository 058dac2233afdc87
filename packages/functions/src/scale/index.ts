import { isThrottling } from "@hearth/core/fleet-aws";
import type { PoolPlan } from "@hearth/core/planner";
import {
  type Applied,
  apply,
  holdLease,
  LEASE_SECONDS,
  type Observation,
  observe,
  planObservation,
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
  /** Started for a new job while another run waited: this run takes the lease from it at its first Observe. */
  supersede: z.boolean().optional(),
  observation: z.unknown().optional(),
  plan: z.unknown().optional(),
  error: z.object({ Error: z.string().optional(), Cause: z.unknown().optional() }).optional(),
});

/** Apply's answer when another run took the lease: no calls, and the workflow stops. */
const yielded: Applied = {
  calls: [],
  released: [],
  refused: [],
  releasing: [],
  unmarked: [],
  settled: true,
  waitSeconds: 0,
};

/** Errors the workflow retries carry this name (the ASL `Retry` matches it). */
export class Throttled extends Error {
  override name = "Hearth.Throttled";
}

export async function step<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (isThrottling(error)) throw new Throttled(error instanceof Error ? error.message : String(error));
    throw error;
  }
}

export function scaleFleetTasks(deps: ScalingDeps, log: Logger) {
  /**
   * Runs a step while holding the pool's lease: renewed before the work and again after it (also
   * when the work fails and will be retried), so the lease's bound covers one step, not a whole
   * iteration. Undefined when another run holds the lease: this run stops.
   */
  async function holding<T>(
    run: { pool: string; holder: string },
    work: () => Promise<T>,
    /** After the work: the epoch ms until which the run will wait, if it will (a new job may then supersede it). */
    waitingUntil?: (result: T) => number | undefined,
    /** Before the work: take the lease from a run that still waits (a superseding run's first step). */
    supersede = false,
  ) {
    const taken =
      (await holdLease(deps, run.pool, run.holder)) ||
      (supersede && (await deps.leases.supersede(scaleLease(run.pool), run.holder, LEASE_SECONDS, 0)));
    if (!taken) return undefined;
    let result: T;
    try {
      result = await work();
    } catch (error) {
      await holdLease(deps, run.pool, run.holder).catch(() => false);
      throw error;
    }
    return (await holdLease(deps, run.pool, run.holder, waitingUntil?.(result))) ? result : undefined;
  }

  return {
    observe: (input: unknown) =>
      step(async () => {
        const run = runSchema.parse(input);
        const previous = (run.observation as Observation | undefined)?.iteration ?? run.iteration;
        // A superseding run's first Observe takes the lease from the run that waits; if that one is at
        // work again, this one stops and leaves the job to it.
        const first = run.observation === undefined;
        const observation = await holding(
          run,
          () => observe(deps, run.pool, previous),
          undefined,
          first && run.supersede === true,
        );
        if (!observation) return { leaseLost: true, iteration: previous };
        return { ...observation, leaseLost: false };
      }),

    plan: (input: unknown) =>
      step(async () => {
        const run = runSchema.parse(input);
        return planObservation(deps, run.observation as Observation);
      }),

    apply: (input: unknown) =>
      step(async () => {
        const run = runSchema.parse(input);
        const observation = run.observation as Observation;
        const applied = await holding(
          run,
          () => apply(deps, observation, run.plan as PoolPlan),
          // The workflow waits after an unsettled Apply, unless the run is out of iterations.
          (result) =>
            result.settled || observation.iteration >= run.maxIterations
              ? undefined
              : deps.now().getTime() + result.waitSeconds * 1000,
        );
        // Lost before applying: nothing was changed, and the run that holds the lease decides.
        if (!applied) return { ...yielded, leaseLost: true };
        return { ...applied, leaseLost: false };
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
