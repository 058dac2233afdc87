import { z } from "zod";
import { STORE_KEYS } from "../rules";

/**
 * The fleet model of `traces/README.md`: what an instance costs and how long things take.
 * Every policy runs on the same model; every value is a flag of `npm run simulate`.
 */
export const fleetModelSchema = z.object({
  slotsPerInstance: z.number().int().min(1).max(64).default(2),
  /** A new instance from the AMI to runner ready. */
  coldBootSeconds: z.number().nonnegative().default(75),
  /** A Stopped warm-pool instance to runner ready. */
  warmBootSeconds: z.number().nonnegative().default(25),
  onDemandHourly: z.number().nonnegative().default(0.145),
  spotHourly: z.number().nonnegative().default(0.05),
  stoppedHourly: z.number().nonnegative().default(0.011),
  /** An instance stays warm for the cache keys of the jobs it finished most recently (LRU, as GC). */
  storeKeys: z.number().int().min(0).default(STORE_KEYS),
  spotInterruptionsPerHour: z.number().nonnegative().default(0.05),
  spotWarningSeconds: z.number().nonnegative().default(120),
  /** A webhook reaches the control plane this long after the event. */
  webhookDelaySeconds: z.number().nonnegative().default(1),
  maxInstancesPerPool: z.number().int().min(1).default(50),
  /**
   * The binary cache (a policy's option): a job cold on its store whose key any instance of its pool
   * finished within `cacheWindowSeconds` runs for min(cold, warm + `cachePenaltySeconds`).
   */
  cachePenaltySeconds: z.number().nonnegative().default(60),
  cacheWindowSeconds: z
    .number()
    .nonnegative()
    .default(7 * 24 * 3600),
  /** Stores that survive spot: attaching and mounting a store volume adds this to the boot. */
  volumeAttachSeconds: z.number().nonnegative().default(20),
  /** Availability Zones an instance may land in (at random unless the policy pins one). */
  zones: z.number().int().min(1).default(3),
  /** A persistent spot instance's start finds spot capacity with this probability… */
  spotStartSuccess: z.number().min(0).max(1).default(0.9),
  /** …else it fails after this long. */
  spotStartFailSeconds: z.number().nonnegative().default(10),
});
export type FleetModel = z.infer<typeof fleetModelSchema>;

export const defaultFleetModel: FleetModel = fleetModelSchema.parse({});
