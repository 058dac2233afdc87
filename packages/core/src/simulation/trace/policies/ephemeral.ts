import type { SimInstance } from "../fleet";
import { every, type Policy, type PolicyContext } from "../policy";

/**
 * `ephemeral`: an ARC-style controller of ephemeral NixOS runners (actions/actions-runner-controller,
 * runner scale sets: ephemeral runners, minRunners 0, maxRunners capping the set). It polls every
 * 10 s and starts one ephemeral runner per pending job, each on its own fresh (so cold) instance,
 * destroyed when its job ends; at most 7 run at once per pool. On-demand: the controller does not
 * handle spot interruptions.
 */
export const ephemeral = { pollSeconds: 10, maxRunners: 7 };

export function ephemeralPolicy(context: PolicyContext): Policy {
  const { fleet } = context;
  const poll = () => {
    for (const pool of fleet.pools) {
      let live = 0;
      let waiting = 0;
      for (const instance of pool.instances) {
        if (!instance.live) continue;
        live++;
        if (instance.jobsStarted === 0) waiting++;
      }
      const wanted = Math.min(fleet.queuedCount(pool) - waiting, ephemeral.maxRunners - live);
      for (let i = 0; i < wanted; i++) {
        if (fleet.launch(pool, { market: "on-demand", group: "ephemeral", maxJobs: 1 }) === null) break;
      }
    }
  };
  return {
    observer: {
      jobFinished: (_job, instance: SimInstance) => fleet.terminate(instance),
    },
    start() {
      every(context, ephemeral.pollSeconds, 0, poll);
    },
  };
}
