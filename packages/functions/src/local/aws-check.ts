import { type AutoScalingClient, DescribeAutoScalingGroupsCommand } from "@aws-sdk/client-auto-scaling";

/**
 * `--fleet aws` checks what it needs before it serves anything: a region, credentials AWS accepts,
 * and every Auto Scaling group the pools name. Without this, a missing region or expired credentials
 * would show up only at the first ScaleFleet run, as an error in the journal.
 */

export class AwsFleetError extends Error {}

export interface AwsFleetCheck {
  region: string;
  /** The AWS account the groups live in (from their ARNs): only its roles may speak for instances. */
  account: string;
  /** Its partition (`aws`, `aws-cn`, …), from the same ARNs: runner configs name instance ARNs. */
  partition: string;
}

const errorName = (error: unknown) =>
  (error as { name?: string; Code?: string })?.name ?? (error as { Code?: string })?.Code ?? "Error";
const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

const credentialErrors = new Set([
  "CredentialsProviderError",
  "UnrecognizedClientException",
  "InvalidClientTokenId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "ExpiredTokenException",
  "InvalidAccessKeyId",
  "AuthFailure",
]);

export async function checkAwsFleet(
  autoScaling: AutoScalingClient,
  stage: string,
  groups: readonly string[],
): Promise<AwsFleetCheck> {
  let region: string;
  try {
    region = await autoScaling.config.region();
  } catch {
    region = "";
  }
  if (!region) {
    throw new AwsFleetError(
      "--fleet aws: no AWS region is configured; set AWS_REGION (or a region in your AWS profile)",
    );
  }
  try {
    await autoScaling.config.credentials();
  } catch (error) {
    throw new AwsFleetError(
      `--fleet aws: no AWS credentials found (${message(error)}); set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
    );
  }
  const found = new Map<string, string>();
  try {
    // Up to 100 names a call; a stage has two groups per pool.
    for (let i = 0; i < groups.length; i += 100) {
      const out = await autoScaling.send(
        new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: groups.slice(i, i + 100) }),
      );
      for (const group of out.AutoScalingGroups ?? []) {
        if (group.AutoScalingGroupName)
          found.set(group.AutoScalingGroupName, group.AutoScalingGroupARN ?? "");
      }
    }
  } catch (error) {
    const name = errorName(error);
    if (credentialErrors.has(name)) {
      throw new AwsFleetError(
        `--fleet aws: AWS refused the credentials in ${region} (${name}: ${message(error)})`,
      );
    }
    if (name === "AccessDenied" || name === "AccessDeniedException") {
      throw new AwsFleetError(
        `--fleet aws: the credentials may not call autoscaling:DescribeAutoScalingGroups in ${region} (${message(error)})`,
      );
    }
    throw new AwsFleetError(
      `--fleet aws: could not describe the Auto Scaling groups in ${region} (${name}: ${message(error)})`,
    );
  }
  const missing = groups.filter((name) => !found.has(name));
  if (missing.length) {
    throw new AwsFleetError(
      `--fleet aws: no Auto Scaling group ${missing.join(", ")} in ${region}; deploy stage ${stage} ` +
        `there, or name the groups in each pool's "autoScalingGroups"`,
    );
  }
  const arn = [...found.values()].find((value) => value);
  const [, partition, account] = /^arn:(aws[a-z-]*):autoscaling:[^:]*:(\d{12}):/.exec(arn ?? "") ?? [];
  if (!account || !partition)
    throw new AwsFleetError(`--fleet aws: the groups' ARNs name no AWS account (${arn ?? "none"})`);
  return { region, account, partition };
}
