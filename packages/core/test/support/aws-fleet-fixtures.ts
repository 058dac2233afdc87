import {
  PutWarmPoolCommand,
  SetDesiredCapacityCommand,
  SetInstanceProtectionCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { type PoolConfig, poolConfigSchema } from "../../src/pools";
import type { MockedClients } from "./auto-scaling-fake";

/** What the AWS driver's tests and ScaleFleet's tests over it share: a clock, a pool, its groups. */

export const NOW = new Date("2026-03-02T12:00:00.000Z");
export const minutesAgo = (minutes: number) => new Date(NOW.getTime() - minutes * 60_000);
export const WARM = "hearth-x86-warm";
export const BURST = "hearth-x86-burst";

/** Instance ids as EC2 spells them (17 hex digits); the tag makes the tests readable. */
export const iid = (tag: number) => `i-${tag.toString(16).padStart(17, "0")}`;

/** A pool whose warm group is an Auto Scaling group with a warm pool (`warm.market: on-demand`). */
export const pool = (overrides: Partial<PoolConfig> = {}): PoolConfig => ({
  ...poolConfigSchema.parse({
    name: "x86",
    labels: ["nix", "x86_64-linux"],
    architecture: "x86_64",
    instanceTypes: ["c6a.xlarge", "c6i.xlarge", "c7a.xlarge"],
    warm: { market: "on-demand" },
  }),
  ...overrides,
});

/** The mutating Auto Scaling calls, in the order they were sent. */
export function mutations(autoScaling: MockedClients["autoScaling"]): string[] {
  const kinds = [
    [SetInstanceProtectionCommand, "SetInstanceProtection"],
    [SetDesiredCapacityCommand, "SetDesiredCapacity"],
    [PutWarmPoolCommand, "PutWarmPool"],
    [UpdateAutoScalingGroupCommand, "UpdateAutoScalingGroup"],
  ] as const;
  return autoScaling.calls().flatMap((call) => {
    const kind = kinds.find(([Command]) => call.args[0] instanceof Command);
    return kind ? [kind[1]] : [];
  });
}
