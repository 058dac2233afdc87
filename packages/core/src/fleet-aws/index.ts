import {
  type AutoScalingClient,
  type AutoScalingGroup,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  DescribeScalingActivitiesCommand,
  DescribeWarmPoolCommand,
  type Instance,
  PutWarmPoolCommand,
  SetDesiredCapacityCommand,
  SetInstanceProtectionCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import { DescribeInstancesCommand, type EC2Client } from "@aws-sdk/client-ec2";
import { PutParameterCommand, type SSMClient } from "@aws-sdk/client-ssm";
import {
  describeCall,
  type FleetGroup,
  type FleetInstance,
  type FleetObservation,
  type FleetPort,
  type Lifecycle,
  type ReleaseResult,
} from "../fleet";
import type { Group } from "../instances";
import type { PoolConfig } from "../pools";
import { defaultRetry, type RetryOptions, withRetries } from "./retry";

export { isThrottling, withRetries } from "./retry";

/**
 * The AWS driver: per pool, a warm group (on-demand, warm pool of Stopped instances with
 * ReuseOnScaleIn) and a burst group (spot, mixed instances, price-capacity-optimized, capacity
 * rebalance). Every instance launches protected from scale-in; Hearth releases one by unprotecting
 * it and lowering desired capacity, so the group can only take the instance Hearth chose.
 */

export interface PoolGroups {
  warm: string;
  burst: string;
}

export interface AwsFleetOptions {
  autoScaling: AutoScalingClient;
  ec2: EC2Client;
  ssm: SSMClient;
  /** Auto Scaling group names per pool (from infra, or the pool config in single-host mode). */
  groups: Record<string, PoolGroups>;
  /** SSM parameter path under which JIT runner configs are written: `<prefix>/<instance id>`. */
  runnerConfigPrefix: string;
  retry?: RetryOptions;
  now?: () => Date;
}

/** Spot launches failing for these reasons mean: not now, not here. Fall back to on-demand. */
const spotShortage =
  /InsufficientInstanceCapacity|InsufficientCapacity|UnfulfillableCapacity|MaxSpotInstanceCountExceeded|SpotMaxPriceTooLow|capacity-not-available|There is no Spot capacity/i;
/** How recent a failed spot launch must be to keep the fallback on. */
const FALLBACK_WINDOW_MS = 30 * 60_000;

function lifecycleOf(state: string | undefined): Lifecycle {
  const value = state ?? "";
  if (value.startsWith("Warmed:")) {
    if (value.startsWith("Warmed:Terminat")) return "terminating";
    if (value === "Warmed:Stopped" || value === "Warmed:Hibernated" || value === "Warmed:Running")
      return "stopped";
    return "stopping";
  }
  if (value.startsWith("Pending")) return "pending";
  if (value === "InService") return "in-service";
  // Terminating, Detaching, Standby, …: on the way out of service.
  return "terminating";
}

export function createAwsFleet(options: AwsFleetOptions): FleetPort {
  const { autoScaling, ec2, ssm } = options;
  const retry = options.retry ?? defaultRetry;
  const now = options.now ?? (() => new Date());
  const call = <T>(fn: () => Promise<T>) => withRetries(fn, retry);

  function groupsOf(pool: PoolConfig): PoolGroups {
    const names = options.groups[pool.name];
    if (!names) throw new Error(`no Auto Scaling groups are configured for pool ${pool.name}`);
    return names;
  }

  async function describeGroups(
    pool: PoolConfig,
  ): Promise<{ warm: AutoScalingGroup; burst: AutoScalingGroup }> {
    const names = groupsOf(pool);
    const out = await call(() =>
      autoScaling.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [names.warm, names.burst] }),
      ),
    );
    const find = (name: string) => {
      const group = out.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === name);
      if (!group) throw new Error(`Auto Scaling group ${name} (pool ${pool.name}) does not exist`);
      return group;
    };
    return { warm: find(names.warm), burst: find(names.burst) };
  }

  async function warmPoolInstances(name: string): Promise<Instance[]> {
    const instances: Instance[] = [];
    let token: string | undefined;
    do {
      const page = await call(() =>
        autoScaling.send(new DescribeWarmPoolCommand({ AutoScalingGroupName: name, NextToken: token })),
      );
      instances.push(...(page.Instances ?? []));
      token = page.NextToken;
    } while (token);
    return instances;
  }

  async function launchDetails(ids: string[]) {
    const details = new Map<string, { spot: boolean; launchedAt: string }>();
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      const out = await call(() => ec2.send(new DescribeInstancesCommand({ InstanceIds: chunk })));
      for (const reservation of out.Reservations ?? []) {
        for (const instance of reservation.Instances ?? []) {
          if (!instance.InstanceId) continue;
          details.set(instance.InstanceId, {
            spot: instance.InstanceLifecycle === "spot",
            launchedAt: (instance.LaunchTime ?? now()).toISOString(),
          });
        }
      }
    }
    return details;
  }

  const spotPercent = (pool: PoolConfig) => Math.round((1 - pool.burst.spotShare) * 100);

  async function recentSpotShortage(groupName: string): Promise<boolean> {
    const out = await call(() =>
      autoScaling.send(
        new DescribeScalingActivitiesCommand({ AutoScalingGroupName: groupName, MaxRecords: 20 }),
      ),
    );
    const since = now().getTime() - FALLBACK_WINDOW_MS;
    return (out.Activities ?? []).some(
      (activity) =>
        activity.StatusCode === "Failed" &&
        (activity.StartTime?.getTime() ?? 0) >= since &&
        spotShortage.test(`${activity.StatusMessage ?? ""} ${activity.Description ?? ""}`),
    );
  }

  return {
    async observe(pool) {
      const { warm, burst } = await describeGroups(pool);
      const warmPool = warm.WarmPoolConfiguration
        ? await warmPoolInstances(warm.AutoScalingGroupName ?? "")
        : [];
      const members: Array<{ group: Group; instance: Instance }> = [
        ...(warm.Instances ?? []).map((instance) => ({ group: "warm" as const, instance })),
        ...warmPool.map((instance) => ({ group: "warm" as const, instance })),
        ...(burst.Instances ?? []).map((instance) => ({ group: "burst" as const, instance })),
      ];
      const details = await launchDetails(members.map((m) => m.instance.InstanceId ?? "").filter(Boolean));
      const instances: FleetInstance[] = members
        .filter((m) => m.instance.InstanceId)
        .map(({ group, instance }) => {
          const id = instance.InstanceId as string;
          const detail = details.get(id);
          return {
            id,
            pool: pool.name,
            group,
            market: detail?.spot ? "spot" : "on-demand",
            az: instance.AvailabilityZone ?? "",
            lifecycle: lifecycleOf(instance.LifecycleState),
            protectedFromScaleIn: instance.ProtectedFromScaleIn ?? false,
            launchedAt: detail?.launchedAt ?? now().toISOString(),
          };
        });
      const prepared = warm.WarmPoolConfiguration?.MaxGroupPreparedCapacity;
      const groups: FleetGroup[] = [
        {
          pool: pool.name,
          group: "warm",
          name: warm.AutoScalingGroupName ?? "",
          desired: warm.DesiredCapacity ?? 0,
          max: warm.MaxSize ?? 0,
          warmPoolSize:
            prepared != null && prepared >= 0
              ? Math.max(warm.WarmPoolConfiguration?.MinSize ?? 0, prepared - (warm.DesiredCapacity ?? 0))
              : (warm.WarmPoolConfiguration?.MinSize ?? null),
          onDemandFallback: false,
        },
        {
          pool: pool.name,
          group: "burst",
          name: burst.AutoScalingGroupName ?? "",
          desired: burst.DesiredCapacity ?? 0,
          max: burst.MaxSize ?? 0,
          warmPoolSize: null,
          onDemandFallback:
            pool.burst.spotShare > 0 &&
            burst.MixedInstancesPolicy?.InstancesDistribution?.OnDemandPercentageAboveBaseCapacity === 100,
        },
      ];
      return { groups, instances } satisfies FleetObservation;
    },

    async lookup(instanceId) {
      const out = await call(() =>
        autoScaling.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] })),
      );
      const member = out.AutoScalingInstances?.[0];
      if (!member?.AutoScalingGroupName) return undefined;
      const owner = Object.entries(options.groups).find(
        ([, names]) =>
          names.warm === member.AutoScalingGroupName || names.burst === member.AutoScalingGroupName,
      );
      if (!owner) return undefined;
      const [pool, names] = owner;
      const detail = (await launchDetails([instanceId])).get(instanceId);
      return {
        id: instanceId,
        pool,
        group: names.warm === member.AutoScalingGroupName ? "warm" : "burst",
        market: detail?.spot ? "spot" : "on-demand",
        az: member.AvailabilityZone ?? "",
        lifecycle: lifecycleOf(member.LifecycleState),
        protectedFromScaleIn: member.ProtectedFromScaleIn ?? false,
        launchedAt: detail?.launchedAt ?? now().toISOString(),
      };
    },

    async release(pool, instanceIds, stillIdle) {
      const { warm, burst } = await describeGroups(pool);
      const calls: string[] = [];
      const result: ReleaseResult = { released: [], refused: [], calls };
      const wanted = new Set(instanceIds);
      for (const group of [warm, burst]) {
        const name = group.AutoScalingGroupName ?? "";
        const inService = (group.Instances ?? []).filter(
          (i) => i.LifecycleState === "InService" && i.InstanceId,
        );
        const chosen: string[] = [];
        for (const instance of inService) {
          const id = instance.InstanceId as string;
          if (!wanted.has(id)) continue;
          wanted.delete(id);
          // Asked right before unprotecting: the registry may have seen a job start since the plan.
          if (await stillIdle(id)) chosen.push(id);
          else result.refused.push(id);
        }
        // Anything unprotected that Hearth did not choose now (a crash between steps, a manual
        // change) is protected again, so that scale-in can only take the chosen instances.
        const strays = inService
          .filter((i) => !i.ProtectedFromScaleIn && !chosen.includes(i.InstanceId as string))
          .map((i) => i.InstanceId as string);
        if (strays.length) {
          await call(() =>
            autoScaling.send(
              new SetInstanceProtectionCommand({
                AutoScalingGroupName: name,
                InstanceIds: strays,
                ProtectedFromScaleIn: true,
              }),
            ),
          );
          calls.push(
            describeCall("SetInstanceProtection", { group: name, instances: strays, protected: true }),
          );
        }
        if (chosen.length) {
          await call(() =>
            autoScaling.send(
              new SetInstanceProtectionCommand({
                AutoScalingGroupName: name,
                InstanceIds: chosen,
                ProtectedFromScaleIn: false,
              }),
            ),
          );
          calls.push(
            describeCall("SetInstanceProtection", { group: name, instances: chosen, protected: false }),
          );
          result.released.push(...chosen);
        }
      }
      // Not in service in this pool's groups (already gone, or never ours): nothing to release.
      result.refused.push(...wanted);
      return result;
    },

    async setCapacity(pool, target) {
      const { warm, burst } = await describeGroups(pool);
      const calls: string[] = [];
      const setDesired = async (group: AutoScalingGroup, desired: number) => {
        const name = group.AutoScalingGroupName ?? "";
        const capped = Math.min(desired, group.MaxSize ?? desired);
        if (capped === group.DesiredCapacity) return;
        await call(() =>
          autoScaling.send(
            new SetDesiredCapacityCommand({
              AutoScalingGroupName: name,
              DesiredCapacity: capped,
              HonorCooldown: false,
            }),
          ),
        );
        calls.push(describeCall("SetDesiredCapacity", { group: name, desired: capped }));
      };

      await setDesired(warm, target.warm);
      const warmName = warm.AutoScalingGroupName ?? "";
      const warmPool = warm.WarmPoolConfiguration;
      const prepared = Math.min(target.warm, warm.MaxSize ?? target.warm) + target.warmPoolSize;
      if (
        !warmPool ||
        warmPool.MinSize !== target.warmPoolSize ||
        warmPool.MaxGroupPreparedCapacity !== prepared
      ) {
        // Warm pool size = MaxGroupPreparedCapacity − desired, and at least MinSize.
        await call(() =>
          autoScaling.send(
            new PutWarmPoolCommand({
              AutoScalingGroupName: warmName,
              MinSize: target.warmPoolSize,
              MaxGroupPreparedCapacity: prepared,
              PoolState: "Stopped",
              InstanceReusePolicy: { ReuseOnScaleIn: true },
            }),
          ),
        );
        calls.push(
          describeCall("PutWarmPool", {
            group: warmName,
            minSize: target.warmPoolSize,
            maxPrepared: prepared,
          }),
        );
      }

      const burstName = burst.AutoScalingGroupName ?? "";
      const current = burst.MixedInstancesPolicy?.InstancesDistribution?.OnDemandPercentageAboveBaseCapacity;
      if (pool.burst.spotShare > 0 && pool.burst.onDemandFallback && target.burst > 0) {
        const shortage = await recentSpotShortage(burstName);
        const wantedPercent = shortage ? 100 : spotPercent(pool);
        if (current !== wantedPercent) {
          await call(() =>
            autoScaling.send(
              new UpdateAutoScalingGroupCommand({
                AutoScalingGroupName: burstName,
                MixedInstancesPolicy: {
                  InstancesDistribution: { OnDemandPercentageAboveBaseCapacity: wantedPercent },
                },
              }),
            ),
          );
          calls.push(
            describeCall("UpdateAutoScalingGroup", { group: burstName, onDemandPercent: wantedPercent }),
          );
        }
      }
      await setDesired(burst, target.burst);
      return calls;
    },

    async handRunnerConfig(instanceId, encodedJitConfig) {
      const name = `${options.runnerConfigPrefix.replace(/\/+$/, "")}/${instanceId}`;
      await call(() =>
        ssm.send(
          new PutParameterCommand({
            Name: name,
            Value: encodedJitConfig,
            Type: "SecureString",
            Overwrite: true,
          }),
        ),
      );
      // The value is a credential: the journal names the parameter, never its value.
      return [describeCall("PutParameter", { name, type: "SecureString" })];
    },
  };
}
