import { SimAsg } from "../asg";
import type { SimInstance, SimPool } from "../fleet";
import { every, type Policy, type PolicyContext, randomFor } from "../policy";

/**
 * `terraform-nixos`: the Terraform module for GitLab runners on NixOS,
 * drestrepom/terraform-aws-gitlab-runner-nixos (scaling Lambda `scripts/lambda_function.py`,
 * `infra/lambda_function.py` in later versions). Every 60 s the Lambda polls GitLab's pending and
 * running jobs and sets the ASG's desired capacity:
 *   desired = ceil(running / slots) + ceil(pending × 1.0 / slots), growing by at most 10 per step,
 *   with no idle minimum, and scaling in only when utilisation is below 0.3.
 * The ASG is 90% spot (mixed instances), and its instances are not protected from scale-in, so AWS
 * picks which to terminate, busy or not; their jobs are interrupted. Spot interruptions are not
 * handled: the runner keeps claiming jobs until the instance is reclaimed, and the ASG replaces it.
 * Best reasonable settings: the module's default maximum of 10 instances is raised to the fleet
 * model's 50 per pool, as a team with this traffic would set it.
 */
export const terraformNixos = {
  pollSeconds: 60,
  maxGrowthPerStep: 10,
  scaleInBelowUtilisation: 0.3,
  onDemandShare: 0.1,
};

export function terraformNixosPolicy(context: PolicyContext): Policy {
  const { fleet, model } = context;
  const random = randomFor(context, "asg");
  const groups = new Map<SimPool, SimAsg>();
  for (const pool of fleet.pools) {
    const asg: SimAsg = new SimAsg(fleet, pool, {
      group: "asg",
      market: (group) => {
        const onDemand = group.countMembers((i) => i.market === "on-demand");
        return onDemand < Math.round(terraformNixos.onDemandShare * group.desired) ? "on-demand" : "spot";
      },
      warmPoolSize: null,
      protectedFromScaleIn: false,
      random,
    });
    groups.set(pool, asg);
  }

  const poll = () => {
    for (const pool of fleet.pools) {
      const asg = groups.get(pool) as SimAsg;
      const pending = fleet.queuedCount(pool);
      let running = 0;
      for (const instance of pool.instances) running += instance.busy;
      const slots = model.slotsPerInstance;
      const current = asg.desired;
      let desired = Math.ceil(running / slots) + Math.ceil(pending / slots);
      desired = Math.min(desired, current + terraformNixos.maxGrowthPerStep, model.maxInstancesPerPool);
      if (desired > current) asg.setDesired(desired);
      else if (desired < current) {
        const utilisation = current === 0 ? 0 : running / (current * slots);
        if (utilisation < terraformNixos.scaleInBelowUtilisation) asg.setDesired(desired);
      }
    }
  };

  return {
    observer: {
      instanceTerminated: (instance: SimInstance) => {
        if (instance.owner instanceof SimAsg) instance.owner.forget(instance);
      },
    },
    start() {
      every(context, terraformNixos.pollSeconds, 0, poll);
    },
  };
}
