import { randomUUID } from "node:crypto";
import {
  type AutoScalingClient,
  type AutoScalingGroup,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  DescribeScalingActivitiesCommand,
  DescribeWarmPoolCommand,
  DetachInstancesCommand,
  type Instance,
  PutWarmPoolCommand,
  SetDesiredCapacityCommand,
  SetInstanceProtectionCommand,
  UpdateAutoScalingGroupCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  CancelSpotInstanceRequestsCommand,
  DeleteTagsCommand,
  DescribeInstancesCommand,
  type EC2Client,
  type Instance as Ec2Instance,
  type LaunchTemplateSpecification,
  RunInstancesCommand,
  StartInstancesCommand,
  StopInstancesCommand,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  AddTagsToResourceCommand,
  DeleteParameterCommand,
  PutParameterCommand,
  type SSMClient,
} from "@aws-sdk/client-ssm";
import { resourcePrefix, stageTags, tagKeys } from "../deploy";
import {
  type CapacityTarget,
  checkRunnerConfigHandOver,
  describeCall,
  type FleetGroup,
  type FleetInstance,
  type FleetObservation,
  type FleetPort,
  givesUpWaitingStore,
  parseRunnerConfigParameter,
  type ReleaseResult,
  runnerConfigParameter,
} from "../fleet";
import { unstartedNamedStores } from "../fleet/named-stores";
import type { Group, Lifecycle } from "../instances";
import type { PoolConfig } from "../pools";
import { retryBusyErrors } from "./retry";

export {
  backoffMs,
  defaultFleetRetry,
  type FleetRetry,
  fleetClientConfig,
  isThrottling,
  retryBusyErrors,
} from "./retry";

/**
 * The AWS driver: per pool, a warm group (on-demand, warm pool of Stopped instances with
 * ReuseOnScaleIn) and a burst group (spot, mixed instances, price-capacity-optimized; no Capacity
 * Rebalancing: HandleInterruption detaches an instance at risk, and the group replaces it once).
 * Every instance launches protected from scale-in; Hearth releases one by unprotecting
 * it and lowering desired capacity, so the group can only take the instance Hearth chose.
 *
 * A pool with `warm.market: spot` has no warm Auto Scaling group: Hearth keeps its warm group itself
 * through EC2, as the instances tagged with the stage, the pool and `hearth:group=warm` (and no Auto
 * Scaling group's tag). They are persistent spot requests whose interruption stops the instance,
 * store kept; Hearth starts and stops them by id, so the planner names which stopped store starts.
 * They launch from the burst group's launch template into its subnets, so no other config is needed.
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
  /** SSM path under which JIT runner configs are written: `<prefix>/<instance id>/<slot>-<runner id>`. */
  runnerConfigPrefix: string;
  /** The stage: every runner config carries its tags (`hearth:app`, `hearth:stage`). */
  stage: string;
  /**
   * The stage's AWS account and partition (its scope, known at deploy): a runner config is bound to
   * `arn:<partition>:ec2:<region>:<account>:instance/<id>`, the region being the SSM client's.
   * Given, not asked of STS, so that a hand-over costs one call.
   */
  account: string;
  partition: string;
  now?: () => Date;
}

/** Spot launches failing for these reasons mean: not now, not here. Fall back to on-demand. */
const spotShortage =
  /InsufficientInstanceCapacity|InsufficientCapacity|UnfulfillableCapacity|MaxSpotInstanceCountExceeded|SpotMaxPriceTooLow|capacity-not-available|There is no Spot capacity/i;
/**
 * A stopped instance that will not start now: no capacity for it, or (a spot instance an
 * interruption stopped) only EC2 may start it again, once capacity returns. Another store may start.
 */
const cannotStart =
  /InsufficientInstanceCapacity|InsufficientCapacity|InsufficientHostCapacity|IncorrectInstanceState|IncorrectSpotRequestState|UnsupportedOperation|SpotMaxPriceTooLow|MaxSpotInstanceCountExceeded/i;
/** How recent a failed spot launch must be to keep the fallback on. */
const FALLBACK_WINDOW_MS = 30 * 60_000;
/** SetInstanceProtection takes at most 50 instance ids per call. */
const PROTECTION_BATCH = 50;
/** DescribeInstances: ids per `instance-id` filter (EC2 caps filter values), and page size. */
const DESCRIBE_BATCH = 200;
const DESCRIBE_PAGE = 1000;
/** A standard SSM parameter holds at most 4 KB; GitHub's JIT configs can be larger. */
const STANDARD_PARAMETER_BYTES = 4096;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Auto Scaling lifecycle states (group and warm pool) as the fleet port sees them:
 * `Pending*` → pending, `InService` → in-service, `Warmed:Pending*` → stopping (on its way into the
 * warm pool), `Warmed:Stopped`/`Hibernated`/`Running` → stopped (parked in the warm pool),
 * `Warmed:Terminat*`, `Terminat*`, `Detach*`, `Standby`, `Quarantined`, … → terminating.
 */
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

/** EC2's instance state as the fleet port sees it (for instances no group may hold). */
function ec2Lifecycle(state: string | undefined): Lifecycle {
  switch (state) {
    case "pending":
      return "pending";
    case "running":
      return "in-service";
    case "stopping":
      return "stopping";
    case "stopped":
      return "stopped";
    default:
      return "terminating";
  }
}

/**
 * The stopped instances a warm pool is sized to keep: MaxGroupPreparedCapacity (or, when unset or
 * -1, the group's MaxSize) less the desired capacity, and never fewer than MinSize.
 */
function warmPoolTarget(group: AutoScalingGroup): number | null {
  const config = group.WarmPoolConfiguration;
  if (!config) return null;
  const prepared =
    config.MaxGroupPreparedCapacity != null && config.MaxGroupPreparedCapacity >= 0
      ? config.MaxGroupPreparedCapacity
      : (group.MaxSize ?? 0);
  return Math.max(config.MinSize ?? 0, prepared - (group.DesiredCapacity ?? 0), 0);
}

/** The burst group's on-demand share above base capacity, as configured for the pool. */
const configuredOnDemandPercent = (pool: PoolConfig): number => Math.round((1 - pool.burst.spotShare) * 100);

const errorName = (error: unknown): string => (error as { name?: unknown })?.name as string;

/** Whether Hearth keeps the pool's warm group itself through EC2 (no warm Auto Scaling group). */
const keepsWarmGroup = (pool: PoolConfig): boolean => pool.warm.market === "spot";

/** An instance of a warm group Hearth keeps, as DescribeInstances shows it. */
interface KeptInstance {
  id: string;
  state: "pending" | "running" | "stopping" | "stopped";
  /** Launched to be stopped into the warm pool (`hearth:parking`). */
  parking: boolean;
  spot: boolean;
  /** The spot request that keeps a persistent spot instance, cancelled before it is terminated. */
  requestId?: string;
  subnet?: string;
  az: string;
  launchedAt: Date;
  instanceType?: string;
  /** When spot capacity was short, for an on-demand instance launched in its place. */
  fallbackAt?: number;
  /** Stopped by a spot interruption (`Server.SpotInstanceShutdown`): only EC2 starts it again. */
  stoppedByInterruption: boolean;
  /** When its persistent spot request ends (`hearth:spot-until`): no start after that. */
  spotUntil?: number;
}

/**
 * How long a spot warm store's persistent request lasts (`SpotMarketOptions.ValidUntil`, which
 * defaults to 7 days: EC2 API Reference). A stopped store whose request ends within
 * `SPOT_REQUEST_MARGIN_MS` is retired rather than started.
 */
const SPOT_REQUEST_DAYS = 365;
const SPOT_REQUEST_MARGIN_MS = 24 * 3600_000;

/**
 * How many stores started for warmth (the plan's `optional`) are started at once: a plan may name
 * most of the warm pool, and StartInstances one at a time would hold Apply for seconds.
 */
const WARMTH_STARTS_AT_ONCE = 10;

/**
 * EC2's state reason for an instance a spot interruption stopped (EC2 API Reference, StateReason);
 * one Hearth stopped says `Client.UserInitiatedShutdown`.
 */
const SPOT_STOP_REASON = "Server.SpotInstanceShutdown";

const tagOf = (instance: Ec2Instance, key: string): string | undefined =>
  instance.Tags?.find((tag) => tag.Key === key)?.Value;

/** A running-or-about-to instance of the group: launching or in service, or on its way to the pool. */
const live = (i: KeptInstance) => i.state === "pending" || i.state === "running";

/** Removes a secret from an error's message and stack before it can reach a log or the journal. */
function redact(error: unknown, secret: string): unknown {
  if (!(error instanceof Error) || !secret) return error;
  const scrub = (text: string) => text.split(secret).join("[redacted]");
  try {
    error.message = scrub(error.message);
    if (error.stack) error.stack = scrub(error.stack);
    return error;
  } catch {
    return new Error(scrub(error.message));
  }
}

export function createAwsFleet(options: AwsFleetOptions): FleetPort {
  const { autoScaling, ec2, ssm } = options;
  // Throttling is retried by the clients' own strategy (`fleetClientConfig`); these join it.
  for (const client of [autoScaling, ec2, ssm]) retryBusyErrors(client);
  const now = options.now ?? (() => new Date());
  let resolvedRegion: Promise<string> | undefined;
  const region = () => {
    resolvedRegion ??= ssm.config.region();
    return resolvedRegion;
  };

  function groupsOf(pool: PoolConfig): PoolGroups {
    const names = options.groups[pool.name];
    if (!names) throw new Error(`no Auto Scaling groups are configured for pool ${pool.name}`);
    return names;
  }

  /** The pool's Auto Scaling groups: no warm one where Hearth keeps the warm group itself. */
  async function describeGroups(
    pool: PoolConfig,
  ): Promise<{ warm: AutoScalingGroup | undefined; burst: AutoScalingGroup }> {
    const names = groupsOf(pool);
    const kept = keepsWarmGroup(pool);
    const out = await autoScaling.send(
      new DescribeAutoScalingGroupsCommand({
        AutoScalingGroupNames: kept ? [names.burst] : [names.warm, names.burst],
      }),
    );
    const find = (name: string) => {
      const group = out.AutoScalingGroups?.find((g) => g.AutoScalingGroupName === name);
      if (!group) throw new Error(`Auto Scaling group ${name} (pool ${pool.name}) does not exist`);
      return group;
    };
    return { warm: kept ? undefined : find(names.warm), burst: find(names.burst) };
  }

  /** The tags of a warm group Hearth keeps: how EC2 finds its instances, and how they launch. */
  const keptTags = (pool: PoolConfig): Record<string, string> => ({
    ...stageTags(options.stage),
    [tagKeys.pool]: pool.name,
    [tagKeys.group]: "warm",
  });

  /** Whether an EC2 instance is of a warm group Hearth keeps: its tags, and in no Auto Scaling group. */
  const keptPoolOf = (instance: Ec2Instance): string | undefined => {
    const pool = tagOf(instance, tagKeys.pool);
    if (
      tagOf(instance, tagKeys.stage) !== options.stage ||
      tagOf(instance, tagKeys.group) !== "warm" ||
      tagOf(instance, tagKeys.autoScalingGroup) !== undefined ||
      pool === undefined ||
      !Object.hasOwn(options.groups, pool)
    )
      return undefined;
    return pool;
  };

  function keptInstance(instance: Ec2Instance): KeptInstance | undefined {
    const state = instance.State?.Name;
    if (!instance.InstanceId) return undefined;
    if (state !== "pending" && state !== "running" && state !== "stopping" && state !== "stopped")
      return undefined;
    const fallback = Date.parse(tagOf(instance, tagKeys.spotFallback) ?? "");
    const until = Date.parse(tagOf(instance, tagKeys.spotUntil) ?? "");
    return {
      id: instance.InstanceId,
      state,
      parking: tagOf(instance, tagKeys.parking) === "true",
      spot: instance.InstanceLifecycle === "spot",
      ...(instance.SpotInstanceRequestId ? { requestId: instance.SpotInstanceRequestId } : {}),
      ...(instance.SubnetId ? { subnet: instance.SubnetId } : {}),
      az: instance.Placement?.AvailabilityZone ?? "",
      launchedAt: instance.LaunchTime ?? now(),
      ...(instance.InstanceType ? { instanceType: instance.InstanceType } : {}),
      ...(Number.isFinite(fallback) ? { fallbackAt: fallback } : {}),
      stoppedByInterruption:
        (state === "stopping" || state === "stopped") && instance.StateReason?.Code === SPOT_STOP_REASON,
      ...(Number.isFinite(until) ? { spotUntil: until } : {}),
    };
  }

  /** The instances carrying all of `tags` that exist (not shutting down or terminated), every page. */
  async function describeTagged(tags: Record<string, string>): Promise<Ec2Instance[]> {
    const found: Ec2Instance[] = [];
    let token: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeInstancesCommand({
          Filters: [
            ...Object.entries(tags).map(([key, value]) => ({ Name: `tag:${key}`, Values: [value] })),
            { Name: "instance-state-name", Values: ["pending", "running", "stopping", "stopped"] },
          ],
          MaxResults: DESCRIBE_PAGE,
          NextToken: token,
        }),
      );
      for (const reservation of page.Reservations ?? []) found.push(...(reservation.Instances ?? []));
      token = page.NextToken;
    } while (token);
    return found;
  }

  /** The instances of the pool's warm group Hearth keeps (not terminated). */
  async function keptWarmInstances(pool: PoolConfig): Promise<KeptInstance[]> {
    const found: KeptInstance[] = [];
    for (const instance of await describeTagged(keptTags(pool))) {
      const kept = keptPoolOf(instance) === pool.name ? keptInstance(instance) : undefined;
      if (kept) found.push(kept);
    }
    return found;
  }

  /** The latest spot shortage an on-demand stand-in records, if within the fallback window. */
  function recentFallback(kept: readonly KeptInstance[]): number | undefined {
    const since = now().getTime() - FALLBACK_WINDOW_MS;
    const times = kept.flatMap((i) =>
      i.fallbackAt !== undefined && i.fallbackAt >= since ? [i.fallbackAt] : [],
    );
    return times.length ? Math.max(...times) : undefined;
  }

  function keptFleetInstance(pool: string, i: KeptInstance): FleetInstance {
    return {
      id: i.id,
      pool,
      group: "warm",
      market: i.spot ? "spot" : "on-demand",
      az: i.az,
      // Launched for the warm pool: on its way to it until stopped, never in service.
      lifecycle: i.parking && live(i) ? "stopping" : ec2Lifecycle(i.state),
      // Nothing scales the group in but Hearth.
      protectedFromScaleIn: true,
      launchedAt: i.launchedAt.toISOString(),
      ...(i.instanceType ? { instanceType: i.instanceType } : {}),
      ...(i.stoppedByInterruption ? { stoppedByInterruption: true } : {}),
    };
  }

  /**
   * Cancels the spot requests of the given instances, then terminates them: a persistent request
   * whose instance is terminated while the request stands launches a new one.
   */
  async function retire(instances: readonly KeptInstance[], calls: string[]) {
    if (instances.length === 0) return;
    const requests = instances.flatMap((i) => (i.requestId ? [i.requestId] : []));
    if (requests.length) {
      await ec2.send(new CancelSpotInstanceRequestsCommand({ SpotInstanceRequestIds: requests }));
      calls.push(describeCall("CancelSpotInstanceRequests", { requests }));
    }
    const ids = instances.map((i) => i.id);
    await ec2.send(new TerminateInstancesCommand({ InstanceIds: ids }));
    calls.push(describeCall("TerminateInstances", { instances: ids }));
  }

  /**
   * Sizes a warm group Hearth keeps: stops what was launched for the warm pool once it runs, brings
   * the instances in service up to `target.warm` (on-demand for retries, then the stopped stores in
   * the planner's order, then new spot instances, on-demand when spot is short), and keeps the warm
   * pool at `target.warmPoolSize` (parking new spot instances, or retiring the oldest extra stores).
   * Never stops an instance in service: only `release` does.
   */
  async function setKeptWarmCapacity(
    pool: PoolConfig,
    burst: AutoScalingGroup,
    target: CapacityTarget,
    calls: string[],
  ) {
    const kept = await keptWarmInstances(pool);
    const first = calls.length;

    // 1. Launched for the warm pool and running now: stopped, store kept.
    const parkedRunning = kept.filter((i) => i.parking && i.state === "running");
    if (parkedRunning.length) {
      const ids = parkedRunning.map((i) => i.id);
      await ec2.send(new StopInstancesCommand({ InstanceIds: ids }));
      calls.push(describeCall("StopInstances", { instances: ids }));
      for (const i of parkedRunning) i.state = "stopping";
    }

    // The burst group's launch template and subnets, read only when something launches.
    const launchSource = () => {
      const template =
        burst.MixedInstancesPolicy?.LaunchTemplate?.LaunchTemplateSpecification ?? burst.LaunchTemplate;
      const subnets = (burst.VPCZoneIdentifier ?? "")
        .split(",")
        .map((subnet) => subnet.trim())
        .filter(Boolean);
      if (!template?.LaunchTemplateId && !template?.LaunchTemplateName)
        throw new Error(
          `burst group ${burst.AutoScalingGroupName} (pool ${pool.name}) has no launch template`,
        );
      if (subnets.length === 0)
        throw new Error(`burst group ${burst.AutoScalingGroupName} (pool ${pool.name}) has no subnets`);
      return { template, subnets };
    };
    // Subnets in use by the group, so that new instances go where it has the fewest.
    const subnetUse = new Map<string, number>();
    for (const i of kept) if (i.subnet) subnetUse.set(i.subnet, (subnetUse.get(i.subnet) ?? 0) + 1);
    const fallbackSince = recentFallback(kept);

    /**
     * Launches `count` instances, one RunInstances per subnet (the least used first), each all or
     * nothing (MinCount = MaxCount). Returns how many launched: a spot shortage stops it.
     */
    const launch = async (
      count: number,
      how: { spot: boolean; parking?: boolean; fallbackAt?: number },
    ): Promise<number> => {
      if (count <= 0) return 0;
      const { template, subnets } = launchSource();
      const perSubnet = new Map<string, number>();
      for (let n = 0; n < count; n++) {
        const subnet = [...subnets].sort(
          (a, b) =>
            (subnetUse.get(a) ?? 0) +
            (perSubnet.get(a) ?? 0) -
            ((subnetUse.get(b) ?? 0) + (perSubnet.get(b) ?? 0)),
        )[0] as string;
        perSubnet.set(subnet, (perSubnet.get(subnet) ?? 0) + 1);
      }
      const base = keptTags(pool);
      const validUntil = new Date(now().getTime() + SPOT_REQUEST_DAYS * 86_400_000);
      const instanceTags = {
        ...base,
        ...(how.spot ? { [tagKeys.spotUntil]: validUntil.toISOString() } : {}),
        Name: `${resourcePrefix(options.stage)}-${pool.name}`,
        ...(how.parking ? { [tagKeys.parking]: "true" } : {}),
        ...(how.fallbackAt !== undefined
          ? { [tagKeys.spotFallback]: new Date(how.fallbackAt).toISOString() }
          : {}),
      };
      const asTags = (tags: Record<string, string>) =>
        Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
      let launched = 0;
      for (const [subnet, n] of perSubnet) {
        const market = how.spot ? "spot" : "on-demand";
        const ran = (outcome: { failed?: string } = {}) =>
          describeCall("RunInstances", {
            subnet,
            count: n,
            market,
            ...(how.parking ? { parking: true } : {}),
            ...outcome,
          });
        try {
          await ec2.send(
            new RunInstancesCommand({
              LaunchTemplate: {
                ...(template.LaunchTemplateId
                  ? { LaunchTemplateId: template.LaunchTemplateId }
                  : { LaunchTemplateName: template.LaunchTemplateName }),
                ...(template.Version ? { Version: template.Version } : {}),
              } satisfies LaunchTemplateSpecification,
              InstanceType: pool.instanceTypes[0] as never,
              MinCount: n,
              MaxCount: n,
              SubnetId: subnet,
              // The SDK's own retries send the same token: a lost answer never launches twice.
              ClientToken: randomUUID(),
              ...(how.spot
                ? {
                    InstanceMarketOptions: {
                      MarketType: "spot",
                      SpotOptions: {
                        SpotInstanceType: "persistent",
                        InstanceInterruptionBehavior: "stop",
                        ValidUntil: validUntil,
                      },
                    },
                  }
                : {}),
              TagSpecifications: [
                { ResourceType: "instance", Tags: asTags(instanceTags) },
                { ResourceType: "volume", Tags: asTags(base) },
                ...(how.spot
                  ? [{ ResourceType: "spot-instances-request" as const, Tags: asTags(base) }]
                  : []),
              ],
            }),
          );
        } catch (error) {
          if (how.spot && spotShortage.test(`${errorName(error)} ${(error as Error)?.message ?? ""}`)) {
            calls.push(ran({ failed: errorName(error) }));
            return launched;
          }
          throw error;
        }
        calls.push(ran());
        subnetUse.set(subnet, (subnetUse.get(subnet) ?? 0) + n);
        launched += n;
      }
      return launched;
    };

    // 2. In service up to target.warm. More in service than asked: nothing stops (only release does).
    let need = Math.max(
      0,
      Math.min(target.warm, pool.maxInstances) - kept.filter((i) => live(i) && !i.parking).length,
    );
    const onDemand = Math.min(need, Math.max(0, target.onDemand ?? 0));
    need -= await launch(onDemand, { spot: false });

    // A store whose spot request is about to end goes: started, it could not be started again.
    const ending = kept.filter(
      (i) =>
        i.state === "stopped" &&
        i.spotUntil !== undefined &&
        i.spotUntil - now().getTime() < SPOT_REQUEST_MARGIN_MS,
    );
    // A store a spot interruption stopped is EC2's to start again, when capacity returns; one that
    // has waited too long is given up.
    const givenUp = kept.filter(
      (i) =>
        i.state === "stopped" &&
        i.stoppedByInterruption &&
        givesUpWaitingStore(i.launchedAt.getTime(), now().getTime()) &&
        !ending.includes(i),
    );
    await retire([...ending, ...givenUp], calls);
    const stopped = kept.filter(
      (i) => i.state === "stopped" && !i.stoppedByInterruption && !ending.includes(i),
    );
    const named = (target.resume ?? []).flatMap((id) => stopped.filter((i) => i.id === id));
    const others = stopped
      .filter((i) => !named.includes(i))
      .sort((a, b) => b.launchedAt.getTime() - a.launchedAt.getTime());
    const wanted = need;
    let started = 0;
    /** Starts one stopped store: its calls, and whether it started (a refusal for capacity is no error). */
    const start = async (store: KeptInstance): Promise<{ calls: string[]; ok: boolean }> => {
      const made: string[] = [];
      if (store.parking) {
        // Into service now: no longer on its way to the warm pool.
        await ec2.send(new DeleteTagsCommand({ Resources: [store.id], Tags: [{ Key: tagKeys.parking }] }));
        made.push(describeCall("DeleteTags", { instances: [store.id], tag: tagKeys.parking }));
        store.parking = false;
      }
      try {
        await ec2.send(new StartInstancesCommand({ InstanceIds: [store.id] }));
      } catch (error) {
        if (!cannotStart.test(`${errorName(error)} ${(error as Error)?.message ?? ""}`)) throw error;
        made.push(describeCall("StartInstances", { instances: [store.id], failed: errorName(error) }));
        return { calls: made, ok: false };
      }
      made.push(describeCall("StartInstances", { instances: [store.id] }));
      store.state = "pending";
      return { calls: made, ok: true };
    };
    const candidates = [...named, ...others];
    let next = 0;
    // The capacity the queue needs one store at a time, in the plan's order, the next one tried when
    // a start is refused; then the stores for warmth (the plan may name most of the warm pool)
    // several at once, so that Apply does not wait for each in turn.
    const optional = Math.min(need, Math.max(0, target.optional ?? 0));
    while (need > 0 && next < candidates.length) {
      const wave = candidates.slice(
        next,
        next + (need > optional ? 1 : Math.min(need, WARMTH_STARTS_AT_ONCE)),
      );
      next += wave.length;
      const results = await Promise.allSettled(wave.map(start));
      let failure: unknown;
      for (const result of results) {
        if (result.status === "rejected") {
          failure ??= result.reason;
          continue;
        }
        calls.push(...result.value.calls);
        if (result.value.ok) {
          started += 1;
          need -= 1;
        }
      }
      if (failure !== undefined) throw failure;
    }
    // Named stores the plan counts as started that did not start: none of step 3's warm pool.
    const unstarted = unstartedNamedStores(named.length, target.resumes ?? wanted, started);

    // Stores started for warmth only: none launched in place of one that would not start.
    need = Math.max(0, need - optional);
    if (need > 0) {
      // Spot was short lately: on-demand stands in, recording the same shortage, so that spot is
      // tried again once the window has passed.
      let shortage = fallbackSince;
      if (shortage === undefined) {
        need -= await launch(need, { spot: true });
        if (need > 0) shortage = now().getTime();
      }
      if (need > 0) await launch(need, { spot: false, fallbackAt: shortage });
    }

    // 3. The warm pool: stopped stores, and those on their way (stopping, or launched to park). A store
    // a spot interruption stopped is none of it: it cannot start when a job needs it.
    const poolSize = Math.max(0, target.warmPoolSize);
    const parked =
      kept.filter(
        (i) =>
          !ending.includes(i) &&
          !i.stoppedByInterruption &&
          (i.state === "stopped" || i.state === "stopping" || (i.parking && live(i))),
      ).length - unstarted;
    if (parked < poolSize) {
      // No spot capacity lately: nothing to park (an on-demand store would start on-demand).
      if (fallbackSince === undefined) await launch(poolSize - parked, { spot: true, parking: true });
    } else if (parked > poolSize) {
      const keep = new Set(target.resume ?? []);
      // Stores that never served first (still tagged for parking), then the least recently started.
      const extra = kept
        .filter(
          (i) => i.state === "stopped" && !i.stoppedByInterruption && !keep.has(i.id) && !ending.includes(i),
        )
        .sort(
          (a, b) => Number(b.parking) - Number(a.parking) || a.launchedAt.getTime() - b.launchedAt.getTime(),
        )
        .slice(0, parked - poolSize);
      await retire(extra, calls);
    }
    // Only refusals (no spot to park, no store would start): nothing changed, so no call is reported
    // and the run may settle; the next run tries again.
    if (calls.slice(first).every((call) => call.includes("failed="))) calls.splice(first);
  }

  /** Stops the chosen idle instances of a warm group Hearth keeps: they join its warm pool. */
  async function releaseKept(
    pool: PoolConfig,
    wanted: Set<string>,
    stillIdle: (id: string) => Promise<boolean>,
    result: ReleaseResult,
  ) {
    const kept = await keptWarmInstances(pool);
    const chosen: string[] = [];
    for (const instance of kept) {
      if (!wanted.has(instance.id) || instance.state !== "running" || instance.parking) continue;
      wanted.delete(instance.id);
      if (await stillIdle(instance.id)) chosen.push(instance.id);
      else result.refused.push(instance.id);
    }
    if (chosen.length === 0) return;
    // A spot store is stopped, kept for its next job; an on-demand instance (a retried job's
    // capacity, or a stand-in while spot was short) is terminated, so the group keeps spot stores only.
    const byId = new Map(kept.map((instance) => [instance.id, instance]));
    const stop = chosen.filter((id) => byId.get(id)?.spot);
    const onDemand = chosen.flatMap((id) => {
      const instance = byId.get(id);
      return instance && !instance.spot ? [instance] : [];
    });
    if (stop.length) {
      await ec2.send(new StopInstancesCommand({ InstanceIds: stop }));
      result.calls.push(describeCall("StopInstances", { instances: stop }));
    }
    await retire(onDemand, result.calls);
    result.released.push(...chosen);
  }

  /** An instance EC2 knows, by id (an `instance-id` filter: an unknown id is no error). */
  async function ec2Instance(instanceId: string): Promise<Ec2Instance | undefined> {
    const page = await ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: "instance-id", Values: [instanceId] }] }),
    );
    return (page.Reservations ?? [])
      .flatMap((reservation) => reservation.Instances ?? [])
      .find((i) => i.InstanceId === instanceId);
  }

  async function warmPoolInstances(name: string): Promise<Instance[]> {
    const instances: Instance[] = [];
    let token: string | undefined;
    do {
      const page = await autoScaling.send(
        new DescribeWarmPoolCommand({ AutoScalingGroupName: name, NextToken: token }),
      );
      instances.push(...(page.Instances ?? []));
      token = page.NextToken;
    } while (token);
    return instances;
  }

  /**
   * Market and last launch of each instance. An `instance-id` filter rather than `InstanceIds`: an
   * id EC2 does not know yet (its API is eventually consistent, and Auto Scaling lists a launch at
   * once) is left out instead of failing the whole call with InvalidInstanceID.NotFound.
   */
  async function launchDetails(ids: readonly string[]) {
    const details = new Map<string, { spot: boolean; launchedAt: string }>();
    for (const chunk of chunks([...new Set(ids)], DESCRIBE_BATCH)) {
      let token: string | undefined;
      do {
        const page = await ec2.send(
          new DescribeInstancesCommand({
            Filters: [{ Name: "instance-id", Values: chunk }],
            MaxResults: DESCRIBE_PAGE,
            NextToken: token,
          }),
        );
        for (const reservation of page.Reservations ?? []) {
          for (const instance of reservation.Instances ?? []) {
            if (!instance.InstanceId) continue;
            details.set(instance.InstanceId, {
              spot: instance.InstanceLifecycle === "spot",
              launchedAt: (instance.LaunchTime ?? now()).toISOString(),
            });
          }
        }
        token = page.NextToken;
      } while (token);
    }
    return details;
  }

  async function recentSpotShortage(groupName: string): Promise<boolean> {
    const out = await autoScaling.send(
      new DescribeScalingActivitiesCommand({ AutoScalingGroupName: groupName, MaxRecords: 50 }),
    );
    const since = now().getTime() - FALLBACK_WINDOW_MS;
    return (out.Activities ?? []).some(
      (activity) =>
        activity.StatusCode === "Failed" &&
        (activity.StartTime?.getTime() ?? 0) >= since &&
        spotShortage.test(`${activity.StatusMessage ?? ""} ${activity.Description ?? ""}`),
    );
  }

  /** SetInstanceProtection in batches of 50 (the API's limit); appends one journal line per call. */
  async function setProtection(group: string, ids: readonly string[], value: boolean, calls: string[]) {
    for (const chunk of chunks(ids, PROTECTION_BATCH)) {
      await autoScaling.send(
        new SetInstanceProtectionCommand({
          AutoScalingGroupName: group,
          InstanceIds: chunk,
          ProtectedFromScaleIn: value,
        }),
      );
      calls.push(describeCall("SetInstanceProtection", { group, instances: chunk, protected: value }));
    }
  }

  /** The Auto Scaling group an instance is in now, if any. */
  async function membership(instanceId: string) {
    const out = await autoScaling.send(
      new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] }),
    );
    return out.AutoScalingInstances?.find((i) => i.InstanceId === instanceId && i.AutoScalingGroupName);
  }

  return {
    async observe(pool) {
      const { warm, burst } = await describeGroups(pool);
      const warmPool = warm?.WarmPoolConfiguration
        ? await warmPoolInstances(warm.AutoScalingGroupName ?? "")
        : [];
      // An instance moving between the group and its warm pool may show up in both lists for a
      // moment: the group's view wins.
      const members = new Map<string, { group: Group; instance: Instance }>();
      const add = (group: Group, list: readonly Instance[]) => {
        for (const instance of list) {
          if (instance.InstanceId && !members.has(instance.InstanceId))
            members.set(instance.InstanceId, { group, instance });
        }
      };
      add("warm", warm?.Instances ?? []);
      add("warm", warmPool);
      add("burst", burst.Instances ?? []);
      const details = await launchDetails([...members.keys()]);
      const instances: FleetInstance[] = [...members].map(([id, { group, instance }]) => {
        const detail = details.get(id);
        return {
          id,
          pool: pool.name,
          group,
          market: detail?.spot ? "spot" : "on-demand",
          az: instance.AvailabilityZone ?? "",
          lifecycle: lifecycleOf(instance.LifecycleState),
          protectedFromScaleIn: instance.ProtectedFromScaleIn ?? false,
          // Not yet visible to EC2 (eventual consistency): it was launched just now.
          launchedAt: detail?.launchedAt ?? now().toISOString(),
          ...(instance.InstanceType ? { instanceType: instance.InstanceType } : {}),
        };
      });
      const configured = configuredOnDemandPercent(pool);
      let warmGroup: FleetGroup;
      if (warm) {
        warmGroup = {
          pool: pool.name,
          group: "warm",
          name: warm.AutoScalingGroupName ?? "",
          desired: warm.DesiredCapacity ?? 0,
          max: warm.MaxSize ?? 0,
          warmPoolSize: warmPoolTarget(warm),
          onDemandFallback: false,
        };
      } else {
        // Hearth keeps the warm group: EC2's instances by their tags are the group.
        const kept = await keptWarmInstances(pool);
        instances.push(...kept.map((i) => keptFleetInstance(pool.name, i)));
        warmGroup = {
          pool: pool.name,
          group: "warm",
          name: groupsOf(pool).warm,
          desired: kept.filter((i) => live(i) && !i.parking).length,
          max: pool.maxInstances,
          // A store a spot interruption stopped waits for EC2: none of the warm pool.
          warmPoolSize: kept.filter((i) => i.state === "stopped" && !i.stoppedByInterruption).length,
          onDemandFallback: recentFallback(kept) !== undefined,
        };
      }
      const groups: FleetGroup[] = [
        warmGroup,
        {
          pool: pool.name,
          group: "burst",
          name: burst.AutoScalingGroupName ?? "",
          desired: burst.DesiredCapacity ?? 0,
          max: burst.MaxSize ?? 0,
          warmPoolSize: null,
          onDemandFallback:
            configured < 100 &&
            burst.MixedInstancesPolicy?.InstancesDistribution?.OnDemandPercentageAboveBaseCapacity === 100,
        },
      ];
      return { groups, instances } satisfies FleetObservation;
    },

    async lookup(instanceId) {
      const out = await autoScaling.send(
        new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] }),
      );
      const member = out.AutoScalingInstances?.find((i) => i.InstanceId === instanceId);
      if (!member?.AutoScalingGroupName) {
        // In no Auto Scaling group: of a warm group Hearth keeps, if it carries that group's tags.
        const instance = await ec2Instance(instanceId);
        const pool = instance && keptPoolOf(instance);
        const kept = pool && instance ? keptInstance(instance) : undefined;
        return pool && kept ? keptFleetInstance(pool, kept) : undefined;
      }
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
        ...(member.InstanceType ? { instanceType: member.InstanceType } : {}),
      };
    },

    async release(pool, instanceIds, stillIdle) {
      const { warm, burst } = await describeGroups(pool);
      const calls: string[] = [];
      const result: ReleaseResult = { released: [], refused: [], calls };
      const wanted = new Set(instanceIds);
      for (const group of warm ? [warm, burst] : [burst]) {
        const name = group.AutoScalingGroupName ?? "";
        // Only instances in service can be released (and protected: the API refuses warm-pool ones).
        const inService = (group.Instances ?? []).filter(
          (i): i is Instance & { InstanceId: string } => i.LifecycleState === "InService" && !!i.InstanceId,
        );
        const chosen = new Set<string>();
        for (const instance of inService) {
          const id = instance.InstanceId;
          if (!wanted.has(id)) continue;
          wanted.delete(id);
          // Asked right before unprotecting: the registry may have seen a job start since the plan.
          if (await stillIdle(id)) chosen.add(id);
          else result.refused.push(id);
        }
        // Anything unprotected that Hearth did not choose now (a crash between steps, a manual
        // change, a refused instance released earlier) is protected again first, so that the next
        // scale-in can only take the chosen instances.
        const strays = inService.filter((i) => !i.ProtectedFromScaleIn && !chosen.has(i.InstanceId));
        await setProtection(
          name,
          strays.map((i) => i.InstanceId),
          true,
          calls,
        );
        const unprotect = inService.filter(
          (i) => chosen.has(i.InstanceId) && i.ProtectedFromScaleIn !== false,
        );
        await setProtection(
          name,
          unprotect.map((i) => i.InstanceId),
          false,
          calls,
        );
        result.released.push(...chosen);
      }
      if (!warm && wanted.size > 0) await releaseKept(pool, wanted, stillIdle, result);
      // Not in service in this pool's groups (already gone, in the warm pool, or never ours): left
      // alone, and reported so that desired capacity keeps counting it.
      result.refused.push(...wanted);
      return result;
    },

    async setCapacity(pool, target) {
      const { warm, burst } = await describeGroups(pool);
      const calls: string[] = [];
      /** Within the group's bounds: SetDesiredCapacity refuses anything outside [MinSize, MaxSize]. */
      const bounded = (group: AutoScalingGroup, desired: number) =>
        Math.max(group.MinSize ?? 0, Math.min(Math.max(0, desired), group.MaxSize ?? desired));
      const setDesired = async (group: AutoScalingGroup, desired: number) => {
        const name = group.AutoScalingGroupName ?? "";
        if (desired === group.DesiredCapacity) return;
        await autoScaling.send(
          new SetDesiredCapacityCommand({
            AutoScalingGroupName: name,
            DesiredCapacity: desired,
            HonorCooldown: false,
          }),
        );
        calls.push(describeCall("SetDesiredCapacity", { group: name, desired }));
      };

      if (warm) {
        // Desired first, then the warm pool: scaling out draws on the stopped instances before the
        // pool is refilled, and on scale-in the old, larger bound leaves room for the instances that
        // return to the pool (ReuseOnScaleIn) with their stores.
        const warmDesired = bounded(warm, target.warm);
        await setDesired(warm, warmDesired);
        const warmName = warm.AutoScalingGroupName ?? "";
        const warmPool = warm.WarmPoolConfiguration;
        const minSize = Math.max(0, target.warmPoolSize);
        // Warm pool size = MaxGroupPreparedCapacity − desired, and at least MinSize.
        const prepared = warmDesired + minSize;
        if (
          !warmPool ||
          warmPool.MinSize !== minSize ||
          warmPool.MaxGroupPreparedCapacity !== prepared ||
          warmPool.PoolState !== "Stopped" ||
          warmPool.InstanceReusePolicy?.ReuseOnScaleIn !== true
        ) {
          await autoScaling.send(
            new PutWarmPoolCommand({
              AutoScalingGroupName: warmName,
              MinSize: minSize,
              MaxGroupPreparedCapacity: prepared,
              PoolState: "Stopped",
              InstanceReusePolicy: { ReuseOnScaleIn: true },
            }),
          );
          calls.push(describeCall("PutWarmPool", { group: warmName, minSize, maxPrepared: prepared }));
        }
      } else {
        await setKeptWarmCapacity(pool, burst, target, calls);
      }

      const burstName = burst.AutoScalingGroupName ?? "";
      const distribution = burst.MixedInstancesPolicy?.InstancesDistribution;
      if (distribution) {
        // AWS's default share is 100 % on-demand when none is set.
        const current = distribution.OnDemandPercentageAboveBaseCapacity ?? 100;
        const configured = configuredOnDemandPercent(pool);
        let wanted = configured;
        // Spot launches failed lately: on-demand stands in until the failures are older than the
        // window. Looked at when the group is to grow, or to leave a fallback that is on.
        if (
          pool.burst.onDemandFallback &&
          configured < 100 &&
          (target.burst > 0 || current !== configured) &&
          (await recentSpotShortage(burstName))
        ) {
          wanted = 100;
        }
        if (current !== wanted) {
          // Only the field that changes: the group keeps its allocation strategy and the rest.
          await autoScaling.send(
            new UpdateAutoScalingGroupCommand({
              AutoScalingGroupName: burstName,
              MixedInstancesPolicy: {
                InstancesDistribution: { OnDemandPercentageAboveBaseCapacity: wanted },
              },
            }),
          );
          calls.push(describeCall("UpdateAutoScalingGroup", { group: burstName, onDemandPercent: wanted }));
        }
      }
      await setDesired(burst, bounded(burst, target.burst));
      return calls;
    },

    async handRunnerConfig(handOver) {
      checkRunnerConfigHandOver(handOver);
      const { instanceId, encodedJitConfig } = handOver;
      const name = runnerConfigParameter(options.runnerConfigPrefix, handOver);
      const instanceArn = `arn:${options.partition}:ec2:${await region()}:${options.account}:instance/${instanceId}`;
      // The instance role's OwnRunnerConfig statement lets an instance read a parameter only when this
      // tag holds its own ARN (`ec2:SourceInstanceARN`).
      const tags = { ...stageTags(options.stage), [tagKeys.instanceArn]: instanceArn };
      // GitHub's JIT configs have outgrown the standard tier's 4 KB (PutParameter then fails with a
      // ValidationException). A large value asks for Advanced outright; Intelligent-Tiering keeps a
      // small one in the free standard tier and upgrades the parameter when a value needs it.
      const tier =
        Buffer.byteLength(encodedJitConfig, "utf8") > STANDARD_PARAMETER_BYTES
          ? "Advanced"
          : "Intelligent-Tiering";
      const calls: string[] = [];
      try {
        // Created, never overwritten: PutParameter refuses Tags together with Overwrite ("tags and
        // overwrite can't be used together"; the API reference sends tag changes of an existing
        // parameter to AddTagsToResource), and the tag must be there from the first moment.
        // https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html
        await ssm.send(
          new PutParameterCommand({
            Name: name,
            Value: encodedJitConfig,
            Type: "SecureString",
            Tier: tier,
            Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
          }),
        );
        calls.push(describeCall("PutParameter", { name, type: "SecureString", tier }));
      } catch (error) {
        if (errorName(error) !== "ParameterAlreadyExists") throw redact(error, encodedJitConfig);
        // The name is this runner's own (GitHub never reuses a runner id): a retried hand-over. The
        // value is written again and the tags put back, so the retry ends as the first attempt would.
        try {
          await ssm.send(
            new PutParameterCommand({
              Name: name,
              Value: encodedJitConfig,
              Type: "SecureString",
              Tier: tier,
              Overwrite: true,
            }),
          );
          calls.push(describeCall("PutParameter", { name, type: "SecureString", tier, overwrite: true }));
          await ssm.send(
            new AddTagsToResourceCommand({
              ResourceType: "Parameter",
              ResourceId: name,
              Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
            }),
          );
          calls.push(describeCall("AddTagsToResource", { parameter: name, instance: instanceId }));
        } catch (again) {
          throw redact(again, encodedJitConfig);
        }
      }
      // The value is a credential: the journal names the parameter, never its value.
      return { parameter: name, calls };
    },

    async withdrawRunnerConfig(parameter) {
      if (!parseRunnerConfigParameter(options.runnerConfigPrefix, parameter)) {
        throw new Error(
          `${JSON.stringify(parameter)} is not a runner config parameter under ${options.runnerConfigPrefix}`,
        );
      }
      try {
        await ssm.send(new DeleteParameterCommand({ Name: parameter }));
        return [describeCall("DeleteParameter", { name: parameter })];
      } catch (error) {
        // Consumed and deleted already (by the instance, or an earlier withdrawal): the same outcome.
        if (errorName(error) === "ParameterNotFound")
          return [describeCall("DeleteParameter", { name: parameter, found: false })];
        throw error;
      }
    },

    async detach(pool, instanceId) {
      const names = groupsOf(pool);
      const member = await membership(instanceId);
      // Out of its groups already (an earlier detach, or gone): nothing to do.
      if (!member) return [];
      const group = member.AutoScalingGroupName ?? "";
      if (group !== names.warm && group !== names.burst)
        throw new Error(`${instanceId} is in ${group}, not in a group of pool ${pool.name}`);
      const state = member.LifecycleState ?? "";
      // Detaching or terminating: on its way out; DetachInstances takes only InService or Standby.
      if (state !== "InService" && state !== "Standby") return [];
      await autoScaling.send(
        new DetachInstancesCommand({
          AutoScalingGroupName: group,
          InstanceIds: [instanceId],
          ShouldDecrementDesiredCapacity: false,
        }),
      );
      return [describeCall("DetachInstances", { group, instances: [instanceId], decrement: false })];
    },

    async terminate(instanceId) {
      const member = await membership(instanceId);
      if (member) {
        throw new Error(
          `${instanceId} is still in ${member.AutoScalingGroupName}: terminating it would make the group replace it`,
        );
      }
      // Of a warm group Hearth keeps: in no group, so it may go, its persistent request first.
      const instance = await ec2Instance(instanceId);
      const kept = instance && keptPoolOf(instance) ? keptInstance(instance) : undefined;
      if (kept) {
        const calls: string[] = [];
        await retire([kept], calls);
        return calls;
      }
      try {
        await ec2.send(new TerminateInstancesCommand({ InstanceIds: [instanceId] }));
        return [describeCall("TerminateInstances", { instances: [instanceId] })];
      } catch (error) {
        if (errorName(error) === "InvalidInstanceID.NotFound")
          return [describeCall("TerminateInstances", { instances: [instanceId], found: false })];
        throw error;
      }
    },

    async tagged(pool) {
      const found: FleetInstance[] = [];
      for (const instance of await describeTagged({
        ...stageTags(options.stage),
        [tagKeys.pool]: pool.name,
      })) {
        if (!instance.InstanceId) continue;
        const tag = (key: string) => instance.Tags?.find((t) => t.Key === key)?.Value;
        const spot = instance.InstanceLifecycle === "spot";
        const group: Group =
          tag(tagKeys.group) === "warm" || tag(tagKeys.group) === "burst"
            ? (tag(tagKeys.group) as Group)
            : spot
              ? "burst"
              : "warm";
        found.push({
          id: instance.InstanceId,
          pool: pool.name,
          group,
          market: spot ? "spot" : "on-demand",
          az: instance.Placement?.AvailabilityZone ?? "",
          lifecycle: ec2Lifecycle(instance.State?.Name),
          protectedFromScaleIn: false,
          launchedAt: (instance.LaunchTime ?? now()).toISOString(),
          ...(instance.InstanceType ? { instanceType: instance.InstanceType } : {}),
        });
      }
      return found;
    },

    async exists(instanceId) {
      const page = await ec2.send(
        new DescribeInstancesCommand({ Filters: [{ Name: "instance-id", Values: [instanceId] }] }),
      );
      const instance = (page.Reservations ?? [])
        .flatMap((reservation) => reservation.Instances ?? [])
        .find((i) => i.InstanceId === instanceId);
      const state = instance?.State?.Name;
      return instance !== undefined && state !== "shutting-down" && state !== "terminated";
    },
  };
}
