import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadHearthConfig, parseHearthConfig, stageSettings } from "@hearth/core/config";
import { defaultPools, type PoolConfigInput, poolConfigSchema } from "@hearth/core/pools";
import { createTableInput } from "@hearth/core/table";
import { describe, expect, it } from "vitest";
import {
  architectureOf,
  burstGroup,
  checkInstanceTypes,
  launchTemplate,
  userData,
  warmGroup,
} from "../lib/fleet";
import { componentNames, groupNames, parameterPaths } from "../lib/names";
import { dynamoArgs } from "../lib/storage";

const pool = (input: Partial<PoolConfigInput> = {}) =>
  poolConfigSchema.parse({
    name: "x86_64",
    labels: ["nix"],
    architecture: "x86_64",
    instanceTypes: ["c7a.xlarge", "c6i.xlarge", "m6a.xlarge"],
    ...input,
  });

describe("stage settings", () => {
  it("default to the pools local mode runs, and the documented thresholds", () => {
    const settings = stageSettings(parseHearthConfig({}), "production");
    expect(settings.pools).toEqual(defaultPools);
    expect(settings.fleet.rootVolumeGiB).toBe(100);
    expect(settings.alarms).toEqual({
      email: undefined,
      thresholds: {
        oldestQueuedSeconds: 900,
        webhookRejectedPercent: 25,
        api5xxPercent: 5,
        minimumRequests: 5,
        lambdaErrors: 3,
        scaleFleetFailures: 1,
        unroutableAfterSeconds: 600,
        interruptionsPerHour: 10,
        pushLagSeconds: 3600,
        freeDiskGiB: 5,
      },
    });
  });

  it("take a stage's own keys over the top-level ones, key by key", () => {
    const config = parseHearthConfig({
      pools: [{ name: "small", labels: ["nix"], architecture: "arm64", instanceTypes: ["t4g.large"] }],
      alarms: { email: "all@example.com" },
      fleet: { rootVolumeGiB: 60 },
      stages: {
        production: {
          alarms: { email: "ops@example.com", thresholds: { oldestQueuedSeconds: 600 } },
          fleet: { rootVolumeGiB: 200, rootVolumeGiBByPool: { small: 300 } },
        },
      },
    });
    const production = stageSettings(config, "production");
    expect(production.pools.map((p) => p.name)).toEqual(["small"]);
    expect(production.alarms.email).toBe("ops@example.com");
    expect(production.alarms.thresholds.oldestQueuedSeconds).toBe(600);
    expect(production.alarms.thresholds.lambdaErrors).toBe(3);
    expect(production.fleet.rootVolumeGiB).toBe(200);
    const staging = stageSettings(config, "staging");
    expect(staging.alarms.email).toBe("all@example.com");
    expect(staging.fleet.rootVolumeGiB).toBe(60);
    expect(
      launchTemplate(production, "eu-west-1", production.pools[0] as never).blockDeviceMappings[0]?.ebs
        .volumeSize,
    ).toBe(300);
  });

  it("come from hearth.config.json, or from the defaults when there is none", () => {
    const dir = mkdtempSync(join(tmpdir(), "hearth-config-"));
    const file = join(dir, "hearth.config.json");
    writeFileSync(file, JSON.stringify({ stages: { dev: { alarms: { email: "dev@example.com" } } } }));
    expect(stageSettings(loadHearthConfig(file), "dev").alarms.email).toBe("dev@example.com");
    expect(loadHearthConfig(join(dir, "absent.json"))).toEqual(parseHearthConfig({}));
    expect(() => loadHearthConfig(join(dir, "absent.json"), { required: true })).toThrow(/no such file/);
    writeFileSync(file, "{ not json");
    expect(() => loadHearthConfig(file)).toThrow(/hearth.config.json: not JSON/);
  });

  it("refuse what cannot deploy, naming the setting", () => {
    expect(() => parseHearthConfig({ fleet: { vpcId: "vpc-0abc" } })).toThrow(/vpcId and fleet.subnetIds/);
    expect(() => parseHearthConfig({ alarms: { email: "not an address" } })).toThrow(/alarms.email/);
    expect(() => parseHearthConfig({ pool: [] })).toThrow(/pool/);
    expect(() => stageSettings(parseHearthConfig({}), "Prod_1")).toThrow(/stage "Prod_1"/);
    expect(() =>
      stageSettings(parseHearthConfig({ fleet: { rootVolumeGiBByPool: { gpu: 500 } } }), "dev"),
    ).toThrow(/names no pool gpu/);
  });
});

describe("names", () => {
  it("name each pool's groups after the stage and the pool", () => {
    expect(groupNames("production", "x86_64")).toEqual({
      warm: "hearth-production-x86_64-warm",
      burst: "hearth-production-x86_64-burst",
    });
    expect(parameterPaths("dev").poolCredentials("aarch64")).toBe("/hearth/dev/pools/aarch64/credentials");
    expect(parameterPaths("dev").ami("arm64")).toBe("/hearth/dev/ami/arm64");
  });

  it("turn pool names into component names, and refuse two that would collide", () => {
    const names = componentNames([{ name: "x86_64" }, { name: "gpu-large" }, { name: "aarch64" }]);
    expect([...names.values()]).toEqual(["X8664", "GpuLarge", "Aarch64"]);
    expect(() => componentNames([{ name: "gpu-large" }, { name: "gpu_large" }])).toThrow(/would share/);
    expect(() => componentNames([{ name: "Gpu" }, { name: "gpu" }])).toThrow(/would share/);
  });
});

describe("the launch template", () => {
  const settings = stageSettings(parseHearthConfig({}), "production");
  const template = launchTemplate(settings, "eu-west-1", pool());

  it("requires IMDSv2, with one hop", () => {
    expect(template.metadataOptions).toEqual({
      httpEndpoint: "enabled",
      httpTokens: "required",
      httpPutResponseHopLimit: 1,
      instanceMetadataTags: "enabled",
    });
  });

  it("has an encrypted gp3 root sized for the store, gone with the instance", () => {
    expect(template.blockDeviceMappings).toEqual([
      {
        deviceName: "/dev/xvda",
        ebs: {
          volumeSize: 100,
          volumeType: "gp3",
          encrypted: "true",
          deleteOnTermination: "true",
          iops: 3000,
          throughput: 125,
        },
      },
    ]);
  });

  it("boots the stage's AMI for the architecture, or the pool's own", () => {
    expect(template.imageId).toBe("resolve:ssm:/hearth/production/ami/x86_64");
    expect(launchTemplate(settings, "eu-west-1", pool({ ami: "ami-0123456789abcdef0" })).imageId).toBe(
      "ami-0123456789abcdef0",
    );
    expect(template.instanceType).toBe("c7a.xlarge");
  });

  it("tags instances and volumes with the app, stage and pool", () => {
    for (const spec of template.tagSpecifications) {
      expect(spec.tags).toMatchObject({
        "hearth:app": "hearth",
        "hearth:stage": "production",
        "hearth:pool": "x86_64",
      });
    }
  });

  it("carries no secret in user data: only where to find the configuration", () => {
    const decoded = JSON.parse(Buffer.from(template.userData, "base64").toString("utf8"));
    expect(decoded).toEqual({
      hearth: {
        version: 1,
        stage: "production",
        region: "eu-west-1",
        pool: "x86_64",
        slots: 2,
        agentConfigParameter: "/hearth/production/agent",
        credentialsParameter: "/hearth/production/pools/x86_64/credentials",
        runnerConfigPrefix: "/hearth/production/runners",
        // The pool's job time limit (maxJobMinutes, 360 by default), which the agent enforces.
        maxJobSeconds: 21_600,
      },
    });
    expect(JSON.parse(userData("s", "eu-west-1", pool({ maxJobMinutes: 90 }))).hearth.maxJobSeconds).toBe(
      5400,
    );
    // The function that writes it takes no secret: its inputs are the stage, the region and the pool.
    expect(userData.length).toBe(3);
  });

  it("refuses instance types of the other architecture", () => {
    expect(architectureOf("c7g.xlarge")).toBe("arm64");
    expect(architectureOf("m6gd.large")).toBe("arm64");
    expect(architectureOf("c7gn.2xlarge")).toBe("arm64");
    expect(architectureOf("a1.large")).toBe("arm64");
    expect(architectureOf("c7a.xlarge")).toBe("x86_64");
    expect(architectureOf("g4dn.xlarge")).toBe("x86_64");
    expect(architectureOf("m7i-flex.large")).toBe("x86_64");
    for (const each of defaultPools) expect(() => checkInstanceTypes(each)).not.toThrow();
    expect(() => checkInstanceTypes(pool({ instanceTypes: ["c7a.xlarge", "c7g.xlarge"] }))).toThrow(
      /x86_64, but c7g.xlarge is not/,
    );
  });
});

describe("the Auto Scaling groups", () => {
  const config = pool({ maxInstances: 40, warm: { minReady: 2 }, burst: { spotShare: 0.75 } });
  const warm = warmGroup("production", config);
  const burst = burstGroup("production", config);

  it("protect every new instance from scale-in, and leave zone rebalancing to Hearth", () => {
    for (const group of [warm, burst]) {
      expect(group.protectFromScaleIn).toBe(true);
      expect(group.suspendedProcesses).toEqual(["AZRebalance"]);
      expect(group.minSize).toBe(0);
      expect(group.maxSize).toBe(40);
      expect(group.waitForCapacityTimeout).toBe("0");
    }
  });

  it("keep a warm pool of stopped instances that go back on scale-in, starting empty", () => {
    expect(warm.name).toBe("hearth-production-x86_64-warm");
    expect(warm.desiredCapacity).toBe(2);
    expect(warm.warmPool).toEqual({
      poolState: "Stopped",
      minSize: 0,
      maxGroupPreparedCapacity: 2,
      instanceReusePolicy: { reuseOnScaleIn: true },
    });
  });

  it("burst on spot over every type of the pool, price-capacity-optimized, with capacity rebalance", () => {
    expect(burst.name).toBe("hearth-production-x86_64-burst");
    expect(burst.desiredCapacity).toBe(0);
    // HandleInterruption replaces at-risk instances itself (detach): AWS must not replace them again.
    expect(burst.capacityRebalance).toBe(false);
    expect(burst.mixedInstancesPolicy.overrides.map((o) => o.instanceType)).toEqual(config.instanceTypes);
    expect(burst.mixedInstancesPolicy.instancesDistribution).toEqual({
      onDemandBaseCapacity: 0,
      onDemandPercentageAboveBaseCapacity: 25,
      onDemandAllocationStrategy: "lowest-price",
      spotAllocationStrategy: "price-capacity-optimized",
    });
  });

  it("leave what Hearth sets at runtime alone on the next deploy", () => {
    expect(warm.ignoreChanges).toEqual([
      "desiredCapacity",
      "warmPool.minSize",
      "warmPool.maxGroupPreparedCapacity",
    ]);
    expect(burst.ignoreChanges).toEqual([
      "desiredCapacity",
      "mixedInstancesPolicy.instancesDistribution.onDemandPercentageAboveBaseCapacity",
    ]);
  });

  it("carry the tags the scaling policy's conditions require, onto their instances", () => {
    for (const group of [warm, burst]) {
      const tags = Object.fromEntries(group.tags.map((tag) => [tag.key, tag.value]));
      expect(tags).toMatchObject({
        "hearth:app": "hearth",
        "hearth:stage": "production",
        "hearth:pool": "x86_64",
      });
      expect(group.tags.every((tag) => tag.propagateAtLaunch)).toBe(true);
    }
  });
});

describe("the table", () => {
  it("has the keys, indexes and TTL local mode creates", () => {
    const args = dynamoArgs();
    const local = createTableInput("hearth");
    expect(Object.keys(args.fields).sort()).toEqual(
      (local.AttributeDefinitions ?? []).map((a) => a.AttributeName).sort(),
    );
    expect(Object.values(args.fields).every((type) => type === "string")).toBe(true);
    expect((local.AttributeDefinitions ?? []).every((a) => a.AttributeType === "S")).toBe(true);
    expect(args.primaryIndex).toEqual({
      hashKey: local.KeySchema?.find((k) => k.KeyType === "HASH")?.AttributeName,
      rangeKey: local.KeySchema?.find((k) => k.KeyType === "RANGE")?.AttributeName,
    });
    expect(
      Object.entries(args.globalIndexes).map(([name, index]) => ({
        IndexName: name,
        KeySchema: [
          { AttributeName: index.hashKey, KeyType: "HASH" },
          { AttributeName: index.rangeKey, KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: index.projection.toUpperCase() },
      })),
    ).toEqual(local.GlobalSecondaryIndexes);
    expect(args.ttl).toBe("expiresAt");
  });
});
