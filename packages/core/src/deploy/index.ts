/**
 * Deploy-time names: what infra calls a stage's AWS resources, and how local mode's `--fleet aws`
 * finds them by the same rule. The configuration itself is `config`.
 */

/** `hearth-<stage>`: the prefix of a stage's named AWS resources. */
export const resourcePrefix = (stage: string): string => `hearth-${stage}`;

/**
 * A pool's Auto Scaling group names on a stage: infra creates them, and local mode's `--fleet aws`
 * finds them by the same rule.
 */
export function groupNames(stage: string, pool: string): { warm: string; burst: string } {
  return { warm: `${resourcePrefix(stage)}-${pool}-warm`, burst: `${resourcePrefix(stage)}-${pool}-burst` };
}

/** Parameter Store paths. Each stage has its own subtree, so that a stage's IAM cannot reach another's. */
export const parameterPaths = (stage: string) => ({
  /** GitHub JIT runner configs, `<prefix>/<instance id>`, written by ScaleFleet, read by that instance. */
  runnerConfigs: `/hearth/${stage}/runners`,
  /** A pool's runner credentials (SecureString JSON), read by the pool's instances. */
  poolCredentials: (pool: string) => `/hearth/${stage}/pools/${pool}/credentials`,
  /** What the agent needs to know that only the deploy knows (API URL, cache bucket), one String. */
  agentConfig: `/hearth/${stage}/agent`,
  /** The NixOS AMI per architecture (data type `aws:ec2:image`), unless a pool names its own. */
  ami: (architecture: string) => `/hearth/${stage}/ami/${architecture}`,
});
