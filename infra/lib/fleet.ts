import type { StageSettings } from "../../packages/core/src/config/file";
import type { Group } from "../../packages/core/src/instances/vocabulary";
import type { Architecture, PoolConfig } from "../../packages/core/src/pools";
import { groupNames, parameterPaths, resourcePrefix, stageTags, tagKeys } from "./names";

/**
 * What a pool's EC2 side is, as plain data: its launch template and its two Auto Scaling groups.
 * infra/fleet.ts hands these to Pulumi (`aws.ec2.LaunchTemplate`, `aws.autoscaling.Group`); the
 * property names are Pulumi's, and the type checker holds infra to them.
 */

const gravitonFamily = /^(?:a1|[a-z]+\d+[a-z]*g[a-z]*(?:-[a-z]+)?)$/;

/** The CPU architecture of an instance type: Graviton families carry a `g` after their generation. */
export function architectureOf(instanceType: string): Architecture {
  const family = instanceType.split(".")[0] ?? "";
  return gravitonFamily.test(family) ? "arm64" : "x86_64";
}

/** Refuses a pool whose instance types do not all match its architecture (and so its AMI). */
export function checkInstanceTypes(pool: PoolConfig): void {
  const wrong = pool.instanceTypes.filter((type) => architectureOf(type) !== pool.architecture);
  if (wrong.length) {
    throw new Error(
      `pool ${pool.name} is ${pool.architecture}, but ${wrong.join(", ")} ${wrong.length > 1 ? "are" : "is"} not`,
    );
  }
}

/** The image: the pool's own (`ami-…` or `resolve:ssm:…`), else the stage's parameter for the architecture. */
export function imageOf(stage: string, pool: PoolConfig): string {
  return pool.ami ?? `resolve:ssm:${parameterPaths(stage).ami(pool.architecture)}`;
}

/**
 * User data: the facts an instance needs to find its configuration, as JSON, and nothing secret. The
 * agent reads it from IMDS; credentials come from Parameter Store under the instance's role, never
 * from here (user data is readable by anyone who can describe the instance).
 */
export function userData(stage: string, region: string, pool: PoolConfig): string {
  const paths = parameterPaths(stage);
  return JSON.stringify({
    hearth: {
      version: 1,
      stage,
      region,
      pool: pool.name,
      slots: pool.slotsPerInstance,
      agentConfigParameter: paths.agentConfig,
      credentialsParameter: paths.poolCredentials(pool.name),
      runnerConfigPrefix: paths.runnerConfigs,
      maxJobSeconds: pool.maxJobMinutes * 60,
    },
  });
}

export interface LaunchTemplateSpec {
  name: string;
  description: string;
  imageId: string;
  instanceType: string;
  updateDefaultVersion: boolean;
  metadataOptions: {
    httpEndpoint: "enabled";
    httpTokens: "required";
    httpPutResponseHopLimit: number;
    instanceMetadataTags: "enabled";
  };
  blockDeviceMappings: Array<{
    deviceName: string;
    ebs: {
      volumeSize: number;
      volumeType: "gp3";
      encrypted: "true";
      deleteOnTermination: "true";
      iops: number;
      throughput: number;
    };
  }>;
  monitoring: { enabled: boolean };
  tagSpecifications: Array<{ resourceType: "instance" | "volume"; tags: Record<string, string> }>;
  userData: string;
}

export function launchTemplate(
  settings: StageSettings,
  region: string,
  pool: PoolConfig,
): LaunchTemplateSpec {
  checkInstanceTypes(pool);
  const tags = { ...stageTags(settings.stage), [tagKeys.pool]: pool.name };
  const [instanceType] = pool.instanceTypes;
  if (!instanceType) throw new Error(`pool ${pool.name} has no instance type`);
  return {
    name: `${resourcePrefix(settings.stage)}-${pool.name}`,
    description: `Hearth ${settings.stage}: runners of pool ${pool.name} (${pool.architecture})`,
    imageId: imageOf(settings.stage, pool),
    // The warm group launches this type; the burst group overrides it with every type of the pool.
    instanceType,
    // Both groups follow `$Latest`, so a deploy that changes the template reaches new launches at once.
    updateDefaultVersion: true,
    metadataOptions: {
      httpEndpoint: "enabled",
      // IMDSv2 only: a session token is required, so a server-side request forgery cannot read it.
      httpTokens: "required",
      // Jobs run on the host, not in containers: one hop is all the agent needs.
      httpPutResponseHopLimit: 1,
      instanceMetadataTags: "enabled",
    },
    blockDeviceMappings: [
      {
        deviceName: settings.fleet.rootDeviceName,
        ebs: {
          // The Nix store lives here; a stopped warm-pool instance keeps it, and pays only for this.
          volumeSize: settings.fleet.rootVolumeGiBByPool[pool.name] ?? settings.fleet.rootVolumeGiB,
          volumeType: "gp3",
          encrypted: "true",
          deleteOnTermination: "true",
          // gp3's baseline, included in its price.
          iops: 3000,
          throughput: 125,
        },
      },
    ],
    monitoring: { enabled: false },
    tagSpecifications: [
      { resourceType: "instance", tags: { ...tags, Name: `${resourcePrefix(settings.stage)}-${pool.name}` } },
      { resourceType: "volume", tags },
    ],
    userData: Buffer.from(userData(settings.stage, region, pool)).toString("base64"),
  };
}

export interface GroupTag {
  key: string;
  value: string;
  propagateAtLaunch: boolean;
}

const groupTags = (stage: string, pool: PoolConfig, group: Group): GroupTag[] =>
  Object.entries({ ...stageTags(stage), [tagKeys.pool]: pool.name, [tagKeys.group]: group }).map(
    ([key, value]) => ({ key, value, propagateAtLaunch: true }),
  );

/** Settings both groups share. */
interface GroupBase {
  name: string;
  minSize: number;
  maxSize: number;
  desiredCapacity: number;
  /** Every instance launches protected; Hearth unprotects the one it releases. */
  protectFromScaleIn: true;
  healthCheckType: "EC2";
  healthCheckGracePeriod: number;
  /** AZRebalance would terminate busy instances to even out zones; Hearth picks what goes. */
  suspendedProcesses: string[];
  /** A deploy does not wait for instances: the groups start empty and Hearth scales them. */
  waitForCapacityTimeout: "0";
  tags: GroupTag[];
  /** Properties Hearth changes at runtime; a deploy must not reset them (Pulumi `ignoreChanges`). */
  ignoreChanges: string[];
}

export interface WarmGroupSpec extends GroupBase {
  warmPool: {
    poolState: "Stopped";
    minSize: number;
    maxGroupPreparedCapacity: number;
    instanceReusePolicy: { reuseOnScaleIn: true };
  };
}

export interface BurstGroupSpec extends GroupBase {
  capacityRebalance: false;
  mixedInstancesPolicy: {
    instancesDistribution: {
      onDemandBaseCapacity: number;
      onDemandPercentageAboveBaseCapacity: number;
      onDemandAllocationStrategy: "lowest-price";
      spotAllocationStrategy: "price-capacity-optimized";
    };
    overrides: Array<{ instanceType: string }>;
  };
}

function base(stage: string, pool: PoolConfig, group: Group): GroupBase {
  return {
    name: groupNames(stage, pool.name)[group],
    minSize: 0,
    maxSize: pool.maxInstances,
    desiredCapacity: group === "warm" ? Math.min(pool.warm.minReady, pool.maxInstances) : 0,
    protectFromScaleIn: true,
    healthCheckType: "EC2",
    // A cold NixOS boot with a runner registering; EC2 status checks only, so this is generous.
    healthCheckGracePeriod: 300,
    suspendedProcesses: ["AZRebalance"],
    waitForCapacityTimeout: "0",
    tags: groupTags(stage, pool, group),
    ignoreChanges: ["desiredCapacity"],
  };
}

/** The warm group: on-demand, the pool's first instance type, a warm pool of Stopped instances. */
export function warmGroup(stage: string, pool: PoolConfig): WarmGroupSpec {
  const group = base(stage, pool, "warm");
  return {
    ...group,
    // The warm pool starts empty (its size is MaxGroupPreparedCapacity less the desired capacity);
    // the planner sizes it from the forecast. Stopped instances keep their EBS root, and so their store.
    warmPool: {
      poolState: "Stopped",
      minSize: 0,
      maxGroupPreparedCapacity: group.desiredCapacity,
      instanceReusePolicy: { reuseOnScaleIn: true },
    },
    ignoreChanges: [...group.ignoreChanges, "warmPool.minSize", "warmPool.maxGroupPreparedCapacity"],
  };
}

/**
 * The burst group: spot first across all the pool's types (price-capacity-optimized), on-demand for
 * the configured share. Capacity Rebalancing is off: HandleInterruption detaches an instance at risk
 * (the group replaces it once, in the type and zone its allocation strategy picks) and terminates it
 * only once idle; Capacity Rebalancing would launch a second replacement and terminate the old
 * instance once the new one is healthy, busy or not.
 */
export function burstGroup(stage: string, pool: PoolConfig): BurstGroupSpec {
  const group = base(stage, pool, "burst");
  return {
    ...group,
    capacityRebalance: false,
    mixedInstancesPolicy: {
      instancesDistribution: {
        onDemandBaseCapacity: 0,
        onDemandPercentageAboveBaseCapacity: Math.round((1 - pool.burst.spotShare) * 100),
        onDemandAllocationStrategy: "lowest-price",
        spotAllocationStrategy: "price-capacity-optimized",
      },
      overrides: pool.instanceTypes.map((instanceType) => ({ instanceType })),
    },
    // The driver raises the on-demand share to 100% while spot is short, and lowers it again.
    ignoreChanges: [
      ...group.ignoreChanges,
      "mixedInstancesPolicy.instancesDistribution.onDemandPercentageAboveBaseCapacity",
    ],
  };
}

/**
 * The binary cache's signing key as the instances read it: a SecureString (the account's aws/ssm key,
 * as the pools' credentials) under the stage's path, the value copied from the stage secret.
 */
export function signingKeyParameter(stage: string): {
  name: string;
  type: "SecureString";
  description: string;
} {
  return {
    name: parameterPaths(stage).binaryCacheSigningKey,
    type: "SecureString",
    description: `Hearth ${stage}: the Nix binary cache's secret signing key (npm run cache-key)`,
  };
}
