import type { SimInstance } from "../fleet";
import { every, type Policy, type PolicyContext } from "../policy";

/**
 * `autogit`: AutoGit's dynamic runners (tzervas/autogit, docs/runners/AUTONOMOUS_RUNNERS.md). A
 * coordinator polls GitLab for pending jobs every 10 s and spawns runners for the ones no idle runner
 * can take; a runner idle for RUNNER_COOLDOWN_MINUTES (default 5) is removed; MAX_IDLE_RUNNERS
 * defaults to 0, so there is no warm pool. Runners are on-demand instances (AutoGit does not handle
 * spot interruptions); each runs as many jobs as the instance has slots, so one instance covers
 * `slots` pending jobs.
 */
export const autogit = { pollSeconds: 10, cooldownSeconds: 300 };

export function autogitPolicy(context: PolicyContext): Policy {
  const { fleet, model } = context;
  const poll = () => {
    const now = fleet.now;
    for (const pool of fleet.pools) {
      const idle: SimInstance[] = pool.instances.filter(
        (i) => i.state === "ready" && i.idleSince !== null && now - i.idleSince >= autogit.cooldownSeconds,
      );
      for (const instance of idle) fleet.terminate(instance);
      let free = 0;
      for (const instance of pool.instances) {
        if (instance.state === "launching" || instance.state === "ready")
          free += instance.slots - instance.busy;
      }
      const uncovered = fleet.queuedCount(pool) - free;
      for (let i = 0; i < Math.ceil(uncovered / model.slotsPerInstance); i++) {
        if (fleet.launch(pool, { market: "on-demand", group: "runner" }) === null) break;
      }
    }
  };
  return {
    observer: {},
    start() {
      every(context, autogit.pollSeconds, 0, poll);
    },
  };
}
