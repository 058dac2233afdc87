import type { FleetPort } from "../fleet";
import type { GitLabJobs } from "../gitlab-api";
import type { HeartbeatHold } from "../heartbeat";
import type { InstanceRegistry } from "../instances";
import type { Journal } from "../journal";
import type { Leases } from "../leases";
import type { Ledger } from "../ledger";
import type { PoolConfig } from "../pools";
import type { RunnerDeps } from "../runners";
import type { ScalingRecords } from "./records";

/** What ScaleFleet's steps, the webhook's request for a run and the minute tick work with. */
export interface ScalingDeps {
  pools: readonly PoolConfig[];
  ledger: Ledger;
  registry: InstanceRegistry;
  journal: Journal;
  leases: Leases;
  scalingRecords: ScalingRecords;
  fleet: FleetPort;
  /** Looks up GitLab tags the webhook could not; absent when no API token is configured. */
  gitlab?: GitLabJobs;
  /** Runner identity: an instance leaving service has its runners deleted. Absent: not wired. */
  runners?: RunnerDeps | undefined;
  /**
   * The retry hold (core's retries): Observe tries the pool's waiting retries again (the fallback when
   * no instance heartbeats) and says whether the pool holds its spot runners. Absent: never held.
   */
  hold?: HeartbeatHold | undefined;
  now: () => Date;
}

export function poolOf(deps: Pick<ScalingDeps, "pools">, name: string): PoolConfig {
  const pool = deps.pools.find((p) => p.name === name);
  if (!pool) throw new Error(`unknown pool ${name}`);
  return pool;
}
