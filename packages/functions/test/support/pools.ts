import { defaultPools, type PoolConfig } from "@hearth/core/pools";

/**
 * The default pools with `warm.market: on-demand`: warm groups that are Auto Scaling groups with warm
 * pools, for the tests of that path (the default, spot, has its own).
 */
export const autoScalingPools: PoolConfig[] = defaultPools.map((pool) => ({
  ...pool,
  warm: { ...pool.warm, market: "on-demand" },
}));
