import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it } from "vitest";
import { checkAwsFleet } from "../src/local/aws-check";

/**
 * `--fleet aws` at start-up: a region, credentials AWS accepts and every group, or one clear error.
 * Auto Scaling is mocked at the SDK's boundary; the region and credentials are the client's own.
 */

const autoScaling = mockClient(AutoScalingClient);
afterEach(() => autoScaling.reset());

const groups = ["hearth-ci-x86_64-warm", "hearth-ci-x86_64-burst"];
const credentials = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "example" };
const arn = (name: string) =>
  `arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:1234:autoScalingGroupName/${name}`;
const group = (name: string) => ({
  AutoScalingGroupName: name,
  AutoScalingGroupARN: arn(name),
  MinSize: 0,
  MaxSize: 10,
  DesiredCapacity: 0,
  DefaultCooldown: 300,
  AvailabilityZones: ["eu-west-1a"],
  HealthCheckType: "EC2",
  CreatedTime: new Date(),
});

describe("checkAwsFleet", () => {
  it("finds the groups, and the account and partition they live in", async () => {
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({ AutoScalingGroups: groups.map(group) });
    const client = new AutoScalingClient({ region: "eu-west-1", credentials });
    expect(await checkAwsFleet(client, "ci", groups)).toEqual({
      region: "eu-west-1",
      account: "123456789012",
      partition: "aws",
    });
  });

  it("reads the partition from the groups' ARNs (runner configs name instance ARNs in it)", async () => {
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: groups.map((name) => ({
        ...group(name),
        AutoScalingGroupARN: arn(name).replace("arn:aws:", "arn:aws-cn:").replace("eu-west-1", "cn-north-1"),
      })),
    });
    const client = new AutoScalingClient({ region: "cn-north-1", credentials });
    expect(await checkAwsFleet(client, "ci", groups)).toMatchObject({
      account: "123456789012",
      partition: "aws-cn",
    });
  });

  it("without a region", async () => {
    const client = new AutoScalingClient({ region: async () => "", credentials });
    await expect(checkAwsFleet(client, "ci", groups)).rejects.toThrow(
      /^--fleet aws: no AWS region is configured/,
    );
    expect(autoScaling.calls()).toHaveLength(0);
  });

  it("without credentials", async () => {
    const client = new AutoScalingClient({
      region: "eu-west-1",
      credentials: async () => {
        throw Object.assign(new Error("Could not load credentials from any providers"), {
          name: "CredentialsProviderError",
        });
      },
    });
    await expect(checkAwsFleet(client, "ci", groups)).rejects.toThrow(
      /^--fleet aws: no AWS credentials found/,
    );
    expect(autoScaling.calls()).toHaveLength(0);
  });

  it("with credentials AWS refuses", async () => {
    autoScaling.on(DescribeAutoScalingGroupsCommand).rejects(
      Object.assign(new Error("The security token included in the request is invalid."), {
        name: "InvalidClientTokenId",
      }),
    );
    const client = new AutoScalingClient({ region: "eu-west-1", credentials });
    await expect(checkAwsFleet(client, "ci", groups)).rejects.toThrow(
      "--fleet aws: AWS refused the credentials in eu-west-1 (InvalidClientTokenId: The security token included in the request is invalid.)",
    );
  });

  it("when a group is missing", async () => {
    autoScaling
      .on(DescribeAutoScalingGroupsCommand)
      .resolves({ AutoScalingGroups: [group(groups[0] as string)] });
    const client = new AutoScalingClient({ region: "eu-west-1", credentials });
    await expect(checkAwsFleet(client, "ci", groups)).rejects.toThrow(
      /^--fleet aws: no Auto Scaling group hearth-ci-x86_64-burst in eu-west-1; deploy stage ci there/,
    );
  });
});

describe("the status document with another stage's fleet", () => {
  it("names that stage, not local", async () => {
    const { startTestHearth } = await import("./support/local");
    const { hearth } = await startTestHearth({ stage: "ci" });
    try {
      const status = (await (await fetch(`${hearth.url}/api/status`)).json()) as { stage: string };
      expect(status.stage).toBe("ci");
    } finally {
      await hearth.close();
    }
  });
});
