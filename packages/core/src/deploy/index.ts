/**
 * Deploy-time names: what infra calls a stage's AWS resources, and how local mode's `--fleet aws`
 * finds them by the same rule. The configuration itself is `config`.
 */

/** The app's name in every resource name and tag. */
export const APP = "hearth";

/** Tags every Hearth resource carries that IAM conditions use; SST's default tags do not reach ASGs. */
export const tagKeys = {
  app: "hearth:app",
  stage: "hearth:stage",
  pool: "hearth:pool",
  group: "hearth:group",
  /** A runner config's instance (`arn:…:ec2:<region>:<account>:instance/<id>`): only it may read it. */
  instanceArn: "hearth:instance-arn",
  /**
   * A spot warm instance launched only to be stopped into the warm pool (`warm.market: spot`): it
   * counts as stopping until it is stopped, and loses the tag when it starts into service.
   */
  parking: "hearth:parking",
  /**
   * An on-demand warm instance launched because spot capacity was short (`warm.market: spot`); the
   * value is when the shortage was met (ISO): the group reports the fallback for a while after it.
   */
  spotFallback: "hearth:spot-fallback",
  /** When a spot warm store's persistent request ends (its `ValidUntil`): it is retired before then. */
  spotUntil: "hearth:spot-until",
  /** Auto Scaling's own tag on the instances a group launched (kept after a detach). */
  autoScalingGroup: "aws:autoscaling:groupName",
} as const;

export const stageTags = (stage: string): Record<string, string> => ({
  [tagKeys.app]: APP,
  [tagKeys.stage]: stage,
});

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
  /**
   * GitHub JIT runner configs, `<prefix>/<instance id>/<slot>-<runner id>` (a new name per runner),
   * written by the control plane, read by that instance only (its `hearth:instance-arn` tag).
   */
  runnerConfigs: `/hearth/${stage}/runners`,
  /** A pool's runner credentials (SecureString JSON), read by the pool's instances. */
  poolCredentials: (pool: string) => `/hearth/${stage}/pools/${pool}/credentials`,
  /** What the agent needs to know that only the deploy knows (API URL, cache bucket), one String. */
  agentConfig: `/hearth/${stage}/agent`,
  /** The NixOS AMI per architecture (data type `aws:ec2:image`), unless a pool names its own. */
  ami: (architecture: string) => `/hearth/${stage}/ami/${architecture}`,
  /** The binary cache's secret signing key (SecureString, Nix's format), read by every instance. */
  binaryCacheSigningKey: `/hearth/${stage}/binary-cache/signing-key`,
});

/**
 * A name in PascalCase, for SST component names (letters and digits): `oldest-queued-x86_64` →
 * `OldestQueuedX8664`. Component names must also start with a capital, so callers put a word first.
 */
export const pascal = (name: string): string =>
  name
    .split(/[_-]+/)
    .filter(Boolean)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join("");

/**
 * Pool names as parts of SST component names (`x86_64` → `X8664`, `gpu-large` → `GpuLarge`), used
 * after a word (`Pool${…}Warm`, `GitlabRunnerToken${…}`). Two pools that would map to the same part
 * are refused, since their resources would collide.
 */
export function componentNames(pools: readonly { name: string }[]): Map<string, string> {
  const names = new Map<string, string>();
  const taken = new Map<string, string>();
  for (const { name } of pools) {
    const part = pascal(name);
    const other = taken.get(part.toLowerCase());
    if (other !== undefined) {
      throw new Error(`pools "${other}" and "${name}" would share resource names (${part}); rename one`);
    }
    taken.set(part.toLowerCase(), name);
    names.set(name, part);
  }
  return names;
}

/**
 * Per pool, the name of the stage secret holding its GitLab runner's authentication token
 * (`GitlabRunnerToken<Pool>`): infra declares it, `npm run runners` sets it.
 */
export function gitlabRunnerTokenSecrets(pools: readonly { name: string }[]): Map<string, string> {
  return new Map([...componentNames(pools)].map(([pool, part]) => [pool, `GitlabRunnerToken${part}`]));
}
