import type { SimInstance } from "./instance";
import type { SimJob } from "./job";

/** One pool of the simulated fleet: the forge's queue for its jobs, and its instances. */
export interface SimPool {
  index: number;
  name: string;
  /** The forge's queue: jobs waiting for a runner, oldest first (from `head`). */
  waiting: SimJob[];
  head: number;
  /** Instances not terminated (live and stopped). */
  instances: SimInstance[];
}
