import { heartbeatSchema } from "@hearth/core/instances";
import { describe, expect, it } from "vitest";
import { readAnswer } from "../src/answer";
import { parseAgentFile, parseAgentParameter, resolveAgentFile } from "../src/config";

const file = {
  stage: "production",
  region: "eu-west-1",
  pool: "default",
  slots: 2,
  agentConfigParameter: "/hearth/production/agent",
  poolCredentialsParameter: "/hearth/production/pools/default/credentials",
  runnerConfigPrefix: "/hearth/production/runners/",
  stateDir: "/var/lib/hearth-agent",
  runnerCommand: "/run/current-system/sw/bin/Runner.Listener",
  gitlabRunnerService: "gitlab-runner.service",
  gitlabSystemIdFile: "/var/lib/gitlab-runner/.runner_system_id",
  pushQueueDir: "/var/lib/hearth-cache/queue",
};

describe("the agent's config", () => {
  it("reads the NixOS module's file, with the image's defaults", () => {
    expect(parseAgentFile(JSON.stringify(file))).toMatchObject({
      ...file,
      runnerConfigDir: "/run/hearth/runners",
      runnerUnit: "hearth-github-runner",
      heartbeatSeconds: 15,
    });
  });

  it("names the field at fault", () => {
    expect(() => parseAgentFile(JSON.stringify({ ...file, slots: 0 }))).toThrow(
      /the agent config is invalid at slots/,
    );
    expect(() => parseAgentFile(JSON.stringify({ ...file, slot: 2 }))).toThrow(/invalid at \(root\)/);
    expect(() => parseAgentFile("{")).toThrow("the agent config is not JSON");
  });

  it("takes the stage's part from the user data when the file leaves it null; the file wins, but not over the pool's slots", () => {
    const image = {
      ...file,
      stage: null,
      region: null,
      pool: null,
      slots: 2,
      agentConfigParameter: null,
      poolCredentialsParameter: null,
      runnerConfigPrefix: null,
    };
    const userData = JSON.stringify({
      hearth: {
        version: 1,
        stage: "staging",
        region: "us-east-1",
        pool: "gpu",
        slots: 4,
        agentConfigParameter: "/hearth/staging/agent",
        credentialsParameter: "/hearth/staging/pools/gpu/credentials",
        runnerConfigPrefix: "/hearth/staging/runners",
      },
    });
    expect(resolveAgentFile(parseAgentFile(JSON.stringify(image)), userData)).toMatchObject({
      stage: "staging",
      region: "us-east-1",
      pool: "gpu",
      slots: 4,
      poolCredentialsParameter: "/hearth/staging/pools/gpu/credentials",
    });
    expect(
      resolveAgentFile(parseAgentFile(JSON.stringify({ ...image, stage: "production" })), userData).stage,
    ).toBe("production");
    // The job time limit: the pool's (in the user data, as GitLab's maximum_timeout is) over the image's.
    const limited = parseAgentFile(JSON.stringify({ ...image, maxJobSeconds: 21600 }));
    expect(resolveAgentFile(limited, userData).maxJobSeconds).toBe(21600);
    const poolLimit = JSON.stringify({ hearth: { ...JSON.parse(userData).hearth, maxJobSeconds: 36000 } });
    expect(resolveAgentFile(limited, poolLimit).maxJobSeconds).toBe(36000);
    expect(resolveAgentFile(parseAgentFile(JSON.stringify(image)), userData).maxJobSeconds).toBeNull();
    expect(() => resolveAgentFile(parseAgentFile(JSON.stringify(image)), "not json")).toThrow(
      "neither the agent config nor the instance's user data says stage, region, pool, agentConfigParameter, poolCredentialsParameter, runnerConfigPrefix",
    );
  });

  it("reads the agent config parameter as infra writes it", () => {
    const written = JSON.stringify({
      heartbeatUrl: "https://abc123.execute-api.eu-west-1.amazonaws.com/agent/heartbeat",
      binaryCache: "s3://hearth-cache?region=eu-west-1",
    });
    expect(parseAgentParameter(written).heartbeatUrl).toMatch(/agent\/heartbeat$/);
    expect(() => parseAgentParameter(JSON.stringify({ binaryCache: "s3://x" }))).toThrow(/at heartbeatUrl/);
  });
});

describe("the answer", () => {
  it("gives no instructions in version 0, and drops entries it cannot read", () => {
    expect(readAnswer({ status: "ok", instance: "i-0123456789abcdef0", runner: "ready" })).toEqual({
      protocol: 0,
      runnerConfigs: [],
      drain: false,
      release: false,
      hold: false,
    });
    expect(
      readAnswer({
        protocol: 1,
        instructions: {
          runnerConfigs: [{ slot: 1, runnerId: 5, parameter: "/p" }, { slot: "x" }],
          drain: true,
          cancel: [],
        },
      }),
    ).toEqual({
      protocol: 1,
      runnerConfigs: [{ slot: 1, runnerId: 5, parameter: "/p" }],
      drain: true,
      release: false,
      hold: false,
    });
    expect(
      readAnswer({
        protocol: 2,
        instructions: { runnerConfigs: [], drain: false, cancel: [], release: true },
      }),
    ).toEqual({ protocol: 2, runnerConfigs: [], drain: false, release: true, hold: false });
    expect(
      readAnswer({
        protocol: 3,
        instructions: { runnerConfigs: [], drain: false, cancel: [], release: false, hold: true },
      }),
    ).toEqual({ protocol: 3, runnerConfigs: [], drain: false, release: false, hold: true });
  });
});

describe("the heartbeat's optional store figures", () => {
  const v0 = {
    instanceId: "i-0123456789abcdef0",
    runner: "ready",
    slots: 2,
    runningJobs: [],
    cacheKeys: [],
    storeBytes: null,
    interruption: null,
  };

  it("keeps a heartbeat without them valid, and takes them or null", () => {
    expect(heartbeatSchema.safeParse(v0).success).toBe(true);
    expect(
      heartbeatSchema.safeParse({ ...v0, protocol: 1, slotRunners: [], gitlabManager: null }).success,
    ).toBe(true);
    expect(
      heartbeatSchema.safeParse({
        ...v0,
        freeDiskBytes: 53_687_091_200,
        pushQueueDepth: 3,
        pushLagSeconds: 12,
      }).success,
    ).toBe(true);
    expect(
      heartbeatSchema.safeParse({ ...v0, freeDiskBytes: null, pushQueueDepth: null, pushLagSeconds: null })
        .success,
    ).toBe(true);
  });

  it("refuses them out of bounds", () => {
    for (const bad of [
      { freeDiskBytes: -1 },
      { freeDiskBytes: 1.5 },
      { pushQueueDepth: 10_000_001 },
      { pushLagSeconds: 31_536_001 },
      { pushLagSeconds: "12" },
    ]) {
      expect(heartbeatSchema.safeParse({ ...v0, ...bad }).success, JSON.stringify(bad)).toBe(false);
    }
  });
});
