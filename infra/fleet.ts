import { api } from "./api";
import { poolComponent, scope, settings } from "./config";
import { burstGroup, launchTemplate, signingKeyParameter, warmGroup } from "./lib/fleet";
import { checked, heartbeatPolicy, instancePolicy, instanceRolePath, trustPolicy } from "./lib/iam";
import { groupNames, parameterPaths, resourcePrefix, stageTags } from "./lib/names";
import { binaryCacheSigningKey, runnerTokens } from "./secrets";

/**
 * The runners: per pool a launch template, a warm group (on-demand, with a warm pool of Stopped
 * instances) and a burst group (spot, mixed types), and an instance role. A pool whose `warm.market`
 * is `spot` gets no warm group: Hearth keeps it through EC2, launching from the burst group's
 * template into its subnets. The groups start empty
 * (or at `warm.minReady`); Hearth's ScaleFleet sets their capacity from then on, and a deploy leaves
 * what it set alone.
 */
const { stage } = settings;
const paths = parameterPaths(stage);

// The network: the given VPC and subnets, or the account's default VPC (public subnets, so the
// instances reach the forges and caches without a NAT gateway's hourly cost).
const vpcId = settings.fleet.vpcId ?? aws.ec2.getVpcOutput({ default: true }).id;
const subnetIds =
  settings.fleet.subnetIds ??
  aws.ec2.getSubnetsOutput({
    filters: [
      { name: "vpc-id", values: [vpcId] },
      { name: "default-for-az", values: ["true"] },
    ],
  }).ids;

/** No inbound rule at all: access is through Session Manager, which the instance dials out to. */
const securityGroup = new aws.ec2.SecurityGroup("RunnerSecurityGroup", {
  name: `${resourcePrefix(stage)}-runners`,
  description: `Hearth ${stage} runners: no inbound; all outbound (forges, caches, AWS APIs)`,
  vpcId,
  ingress: [],
  egress: [
    {
      description: "Runners fetch sources, caches and packages",
      protocol: "-1",
      fromPort: 0,
      toPort: 0,
      cidrBlocks: ["0.0.0.0/0"],
      ipv6CidrBlocks: ["::/0"],
    },
  ],
  tags: stageTags(stage),
});

/** The Nix binary cache: the configured bucket, or a private one of the stage's. */
const cacheBucket = settings.fleet.binaryCacheBucket
  ? undefined
  : new sst.aws.Bucket("BinaryCache", { transform: { bucket: { forceDestroy: stage !== "production" } } });
export const cacheBucketName = settings.fleet.binaryCacheBucket ?? (cacheBucket as sst.aws.Bucket).name;

/** What the agent learns at boot that only the deploy knows (not secret: a String parameter). */
const agentConfig = new aws.ssm.Parameter("AgentConfig", {
  name: paths.agentConfig,
  type: "String",
  description: `Hearth ${stage}: where the runner agent reports and caches`,
  value: $util.all([api.url, cacheBucketName, scope]).apply(([url, bucket, where]) =>
    JSON.stringify({
      heartbeatUrl: `${url}/agent/heartbeat`,
      binaryCache: `s3://${bucket}?region=${where.region}`,
    }),
  ),
  tags: stageTags(stage),
});

/** The cache's signing key, for every pool's instances (their roles name this parameter). */
const signingKey = signingKeyParameter(stage);
const cacheSigningKey = new aws.ssm.Parameter("BinaryCacheSigningKey", {
  name: signingKey.name,
  type: signingKey.type,
  description: signingKey.description,
  value: binaryCacheSigningKey.value,
  tags: stageTags(stage),
});

export const groupNamesByPool: Record<string, { warm: string; burst: string }> = {};
export const amiParameters: string[] = [];

for (const pool of settings.pools) {
  const name = poolComponent.get(pool.name) as string;
  const tags = { ...stageTags(stage), "hearth:pool": pool.name };

  const role = new aws.iam.Role(`Pool${name}InstanceRole`, {
    description: `Hearth ${stage}: runner instances of pool ${pool.name}`,
    assumeRolePolicy: JSON.stringify(trustPolicy("ec2.amazonaws.com")),
    // The path the control plane's iam:PassRole names, when it launches a kept warm group's instances.
    path: instanceRolePath(stage),
    tags,
  });
  new aws.iam.RolePolicy(`Pool${name}InstancePolicy`, {
    role: role.name,
    policy: $util
      .all([scope, cacheBucketName])
      .apply(([where, bucket]) =>
        JSON.stringify(
          checked(
            instancePolicy(where, { pool: pool.name, cacheBucket: bucket }),
            stage,
            `${pool.name} instances`,
          ),
        ),
      ),
  });
  new aws.iam.RolePolicy(`Pool${name}HeartbeatPolicy`, {
    role: role.name,
    policy: $util
      .all([scope, api.nodes.api.id])
      .apply(([where, apiId]) =>
        JSON.stringify(checked(heartbeatPolicy(where, apiId), stage, `${pool.name} heartbeat`)),
      ),
  });
  const profile = new aws.iam.InstanceProfile(`Pool${name}InstanceProfile`, { role: role.name, tags });

  // The pool's runner credentials, for its instances only (their role names this parameter): a
  // SecureString under the account's aws/ssm key, copied from the stage's secret.
  const token = runnerTokens.get(pool.name) as sst.Secret;
  new aws.ssm.Parameter(`Pool${name}Credentials`, {
    name: paths.poolCredentials(pool.name),
    type: "SecureString",
    description: `Hearth ${stage}: runner credentials of pool ${pool.name}`,
    value: $util
      .all([token.value])
      .apply(([value]) =>
        JSON.stringify({ gitlab: value.trim() ? { url: settings.gitlab.url, token: value.trim() } : null }),
      ),
    tags,
  });

  const template = $util.all([scope]).apply(([where]) => launchTemplate(settings, where.region, pool));
  const launch = new aws.ec2.LaunchTemplate(`Pool${name}LaunchTemplate`, {
    name: template.name,
    description: template.description,
    imageId: template.imageId,
    instanceType: template.instanceType,
    updateDefaultVersion: template.updateDefaultVersion,
    metadataOptions: template.metadataOptions,
    blockDeviceMappings: template.blockDeviceMappings,
    monitoring: template.monitoring,
    tagSpecifications: template.tagSpecifications,
    userData: template.userData,
    iamInstanceProfile: { arn: profile.arn },
    vpcSecurityGroupIds: [securityGroup.id],
    tags,
  });
  const version = "$Latest";

  const warm = warmGroup(stage, pool);
  // `warm.market: spot`: no warm Auto Scaling group; the fleet driver keeps the warm group itself.
  if (pool.warm.market !== "spot")
    new aws.autoscaling.Group(
      `Pool${name}Warm`,
      {
        name: warm.name,
        minSize: warm.minSize,
        maxSize: warm.maxSize,
        desiredCapacity: warm.desiredCapacity,
        vpcZoneIdentifiers: subnetIds,
        launchTemplate: { id: launch.id, version },
        protectFromScaleIn: warm.protectFromScaleIn,
        healthCheckType: warm.healthCheckType,
        healthCheckGracePeriod: warm.healthCheckGracePeriod,
        suspendedProcesses: warm.suspendedProcesses,
        waitForCapacityTimeout: warm.waitForCapacityTimeout,
        warmPool: warm.warmPool,
        tags: warm.tags,
      },
      // The agent's config must exist before an instance boots (a pool with `minReady` launches at once).
      { ignoreChanges: warm.ignoreChanges, dependsOn: [agentConfig, cacheSigningKey] },
    );

  const burst = burstGroup(stage, pool);
  new aws.autoscaling.Group(
    `Pool${name}Burst`,
    {
      name: burst.name,
      minSize: burst.minSize,
      maxSize: burst.maxSize,
      desiredCapacity: burst.desiredCapacity,
      vpcZoneIdentifiers: subnetIds,
      protectFromScaleIn: burst.protectFromScaleIn,
      healthCheckType: burst.healthCheckType,
      healthCheckGracePeriod: burst.healthCheckGracePeriod,
      suspendedProcesses: burst.suspendedProcesses,
      waitForCapacityTimeout: burst.waitForCapacityTimeout,
      capacityRebalance: burst.capacityRebalance,
      mixedInstancesPolicy: {
        instancesDistribution: burst.mixedInstancesPolicy.instancesDistribution,
        launchTemplate: {
          launchTemplateSpecification: { launchTemplateId: launch.id, version },
          overrides: burst.mixedInstancesPolicy.overrides,
        },
      },
      tags: burst.tags,
    },
    { ignoreChanges: burst.ignoreChanges, dependsOn: [agentConfig, cacheSigningKey] },
  );

  groupNamesByPool[pool.name] = groupNames(stage, pool.name);
  const ami = paths.ami(pool.architecture);
  if (!pool.ami && !amiParameters.includes(ami)) amiParameters.push(ami);
}
