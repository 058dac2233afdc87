import * as z from "zod/mini";

/**
 * The heartbeat's answer, as far as the agent acts on it (docs/PROTOCOL.md). Read leniently: fields
 * the agent does not know are ignored, and an entry it cannot read is dropped rather than failing the
 * whole answer.
 */

const runnerConfigSchema = z.object({
  slot: z.int().check(z.gte(0), z.lte(63)),
  runnerId: z.int().check(z.gt(0)),
  name: z.optional(z.string().check(z.maxLength(200))),
  parameter: z.string().check(z.minLength(1), z.maxLength(2048)),
});
export type RunnerConfigInstruction = z.infer<typeof runnerConfigSchema>;

export interface Instructions {
  /** The protocol the answer speaks: 0 when it names none. */
  protocol: number;
  runnerConfigs: RunnerConfigInstruction[];
  drain: boolean;
  /** Version 2: stop claiming jobs, the instance is being released (false: claim). */
  release: boolean;
  /**
   * Version 3: stop claiming jobs, while the pool holds its spot runners for a retry that must land on
   * on-demand capacity, or while another store is better placed for the pool's queued jobs (false:
   * claim).
   */
  hold: boolean;
}

export function readAnswer(body: unknown): Instructions {
  const answer = (body ?? {}) as { protocol?: unknown; instructions?: unknown };
  const protocol = typeof answer.protocol === "number" && answer.protocol >= 0 ? answer.protocol : 0;
  // A version-0 answer carries no instructions: start no GitHub runner, keep heartbeating.
  if (protocol < 1 || typeof answer.instructions !== "object" || answer.instructions === null) {
    return { protocol, runnerConfigs: [], drain: false, release: false, hold: false };
  }
  const instructions = answer.instructions as {
    runnerConfigs?: unknown;
    drain?: unknown;
    release?: unknown;
    hold?: unknown;
  };
  const configs = Array.isArray(instructions.runnerConfigs) ? instructions.runnerConfigs : [];
  return {
    protocol,
    runnerConfigs: configs.flatMap((entry) => {
      const parsed = runnerConfigSchema.safeParse(entry);
      return parsed.success ? [parsed.data] : [];
    }),
    drain: instructions.drain === true,
    release: instructions.release === true,
    hold: instructions.hold === true,
  };
}

/** The refusal's code, if the body is `{ error: { code } }`. */
export function refusalCode(body: unknown): string | undefined {
  const code = (body as { error?: { code?: unknown } } | null)?.error?.code;
  return typeof code === "string" ? code : undefined;
}
