import * as z from "zod";
import { strictObject } from "../config/keys";
import { normalizeLabels, type Source } from "../jobs";

/**
 * Pools: which instances run which jobs. Pure data, shared by infra (ASGs, launch templates), local
 * mode, the planner and the simulator, so one file describes the fleet everywhere.
 *
 * Each pool has two Auto Scaling groups: `warm` (on-demand, with a warm pool of Stopped instances that
 * keep their Nix store) and `burst` (spot, mixed instance types). Warm pools do not work with spot or
 * mixed-instance groups, which is why there are two.
 */

export const architectures = ["x86_64", "arm64"] as const;
export type Architecture = (typeof architectures)[number];

const nonNegative = z.number().finite().nonnegative();

/** Every GitHub self-hosted runner carries it, so pools leave it out and routing ignores it. */
const selfHosted = "self-hosted";

const labels = z
  .array(z.string().trim().min(1).max(100))
  .min(1)
  .max(50)
  // Stored as the ledger stores job labels, so that routing compares like with like.
  .transform((values) => normalizeLabels(values))
  .refine((values) => !values.includes(selfHosted), {
    message: "`self-hosted` is implied for every pool; leave it out",
  });

/** GitHub's rules for account names: letters, digits and single inner hyphens, at most 39. */
const githubAccount = z
  .string()
  .regex(/^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/, "a GitHub user or organization name");

/**
 * Where a pool's GitHub runners register: a repository, or an organization's runner group (the API
 * requires a group; 1 is the organization's default group). Exactly one of the two.
 */
const githubRunnerScope = strictObject({
  repository: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/, "`owner/name`")
    .refine(
      (value) => githubAccount.safeParse(value.split("/")[0]).success,
      "the owner is not a GitHub account name",
    )
    .refine((value) => ![".", ".."].includes(value.split("/")[1] ?? ""), "not a repository name")
    .optional(),
  organization: githubAccount.optional(),
  runnerGroupId: z.number().int().min(1).optional(),
})
  .superRefine((value, ctx) => {
    if ((value.repository === undefined) === (value.organization === undefined)) {
      ctx.addIssue({ code: "custom", message: "give exactly one of `repository` and `organization`" });
    }
    if (value.repository !== undefined && value.runnerGroupId !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["runnerGroupId"],
        message: "runner groups belong to organizations; a repository's runners have none",
      });
    }
  })
  .transform((value): { repository: string } | { organization: string; runnerGroupId: number } =>
    value.repository !== undefined
      ? { repository: value.repository }
      : { organization: value.organization ?? "", runnerGroupId: value.runnerGroupId ?? 1 },
  );

/**
 * GitLab's rules for a namespace or project path segment: letters, digits, `_`, `-` and `.`, starting
 * with a letter, digit or `_`, not ending in `.git` or `.atom`
 * (https://docs.gitlab.com/user/reserved_names/).
 */
const gitlabSegment = /^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,253}[A-Za-z0-9_-])?$/;
const gitlabPath = (what: string, minSegments: number) =>
  z
    .string()
    .min(1)
    .max(2048)
    .refine(
      (value) => {
        const segments = value.split("/");
        return (
          segments.length >= minSegments &&
          segments.every((segment) => gitlabSegment.test(segment) && !/\.(git|atom)$/.test(segment))
        );
      },
      { message: what },
    );

/**
 * Where a pool's GitLab runner is created by `npm run runners`: a project, a group (by full path,
 * `group/subgroup`), or the whole instance (administrators only). Exactly one of the three.
 */
const gitlabRunnerScope = strictObject({
  project: gitlabPath("a project's full path, `group/project` (subgroups allowed)", 2).optional(),
  group: gitlabPath("a group's full path, `group` or `group/subgroup`", 1).optional(),
  instance: z.literal(true, { error: "`instance` takes only `true`" }).optional(),
})
  .superRefine((value, ctx) => {
    const given = [value.project, value.group, value.instance].filter((part) => part !== undefined);
    if (given.length !== 1) {
      ctx.addIssue({ code: "custom", message: "give exactly one of `project`, `group` and `instance`" });
    }
  })
  .transform(
    (value): GitLabRunnerScope =>
      value.project !== undefined
        ? { project: value.project }
        : value.group !== undefined
          ? { group: value.group }
          : { instance: true },
  );

/** Where a pool's GitLab runner is registered (`POST /user/runners`' runner type). */
export type GitLabRunnerScope = { project: string } | { group: string } | { instance: true };

/** What a pool's warm group runs on (`warm.market`). */
export const warmMarkets = ["on-demand", "spot"] as const;
export type WarmMarket = (typeof warmMarkets)[number];
export const DEFAULT_WARM_MARKET: WarmMarket = "spot";

/** Retries per interrupted job unless a pool says otherwise (`retryInterrupted`). */
export const DEFAULT_RETRY_INTERRUPTED = 2;

export const poolConfigSchema = strictObject({
  /** Used in AWS resource names, so kept short and plain. */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, "letters, digits, `_` or `-`, at most 32"),
  /** GitHub runner labels or GitLab runner tags (besides the implied `self-hosted`). */
  labels,
  architecture: z.enum(architectures),
  /**
   * EC2 instance types. The warm group uses the first (warm pools take no mixed-instance policy);
   * the burst group spreads over all of them for spot capacity.
   */
  instanceTypes: z.array(z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/)).min(1),
  /** Concurrent jobs per instance (GitLab `concurrent`, or GitHub runners per instance). */
  slotsPerInstance: z.number().int().min(1).max(64).default(2),
  /**
   * The longest a job may run, in minutes (GitHub's own default job timeout is 360). GitLab ends a
   * longer job itself (the runner's `maximum_timeout`, set by `npm run runners`; at least 10 minutes
   * in GitLab); on GitHub the agent stops the runner (its user data carries the limit).
   */
  maxJobMinutes: z.number().int().min(10).max(7200).default(360),
  /** The warm group: instances in service and Stopped ones whose stores are kept. */
  warm: strictObject({
    /**
     * The most Stopped instances the warm pool keeps (each pays EBS only, and keeps its store).
     * The planner sizes it from the forecast within this bound.
     */
    warmPoolSize: z.number().int().min(0).max(1000).default(50),
    /** Instances kept in service and ready even when nothing is queued. */
    minReady: z.number().int().min(0).max(500).default(0),
    /**
     * What the warm group runs on.
     * - `on-demand`: an Auto Scaling group with a warm pool of Stopped instances; AWS picks which
     *   stopped instance resumes.
     * - `spot`: Hearth keeps the group itself through EC2 (`RunInstances`, `StartInstances`,
     *   `StopInstances` by id). Its instances are persistent spot instances whose interruption stops
     *   them, store kept, so warm capacity runs at the spot price; the planner names which stopped
     *   store starts; capacity for retried jobs is launched on-demand into the same group.
     */
    market: z.enum(warmMarkets).default(DEFAULT_WARM_MARKET),
  }).prefault({}),
  burst: strictObject({
    /** Share of burst capacity bought on the spot market; the rest is on-demand. */
    spotShare: z.number().min(0).max(1).default(1),
    /** Let the burst group fall back to on-demand when spot capacity is short. */
    onDemandFallback: z.boolean().default(true),
  }).prefault({}),
  /**
   * The most instances running (warm and burst together): in service, and on their way into the
   * warm pool until stopped. Stopped instances are not counted.
   */
  maxInstances: z.number().int().min(1).max(1000).default(50),
  idleTimeouts: strictObject({
    /**
     * How long a warm instance may sit idle before it goes back to the warm pool. Short: stopping
     * keeps the store and a resume costs seconds.
     */
    warmSeconds: nonNegative.default(30),
    /**
     * How long a burst instance may sit idle before it is terminated. Longer: terminating a spot
     * instance throws its warm store away, and idle spot capacity is cheap.
     */
    burstSeconds: nonNegative.default(300),
  }).prefault({}),
  /** AMI id (`ami-…`) or an SSM parameter (`resolve:ssm:/…`); the infra default when absent. */
  ami: z.string().min(1).optional(),
  /** Seconds from the request until the runner is ready. */
  boot: strictObject({
    /** A new instance from the AMI. */
    coldSeconds: nonNegative.default(75),
    /** A Stopped warm-pool instance resuming. */
    warmSeconds: nonNegative.default(25),
  }).prefault({}),
  /** Where this pool's GitHub runners register; a pool without it registers no GitHub runner. */
  github: githubRunnerScope.optional(),
  /**
   * Where this pool's GitLab runner is registered, for `npm run runners`; a pool without it has its
   * runner token set by hand (`GitlabRunnerToken<Pool>`), or serves no GitLab jobs.
   */
  gitlab: gitlabRunnerScope.optional(),
  /**
   * How many times a job interrupted by a spot warning is retried, once its forge has ended it as
   * failed (GitLab: the job's retry; GitHub: the run's failed jobs re-run). Counted along the chain
   * of retries: with 2, a retry that is interrupted again is retried once more, and that one is not.
   * 0 turns retries off.
   */
  retryInterrupted: z.number().int().min(0).max(3).default(DEFAULT_RETRY_INTERRUPTED),
  /**
   * The last retry a job may have (`lastRetry`) runs on on-demand capacity: the pool holds its spot
   * runners until it has started, and plans its capacity on demand. An interruption of it would lose
   * the job. Earlier retries run wherever a runner claims them, as any job: spot interruptions are
   * rare, and holding a pool's spot runners stalls every job that arrives meanwhile.
   */
  retryOnDemand: z.boolean().default(true),
  /**
   * Which free slots listen for jobs (`stores/placement`). `warm-first`: while a job is queued, only
   * the stores warm for the pool's oldest queued job listen (cold ones too once it has waited a little,
   * or when none is warm for it), and none while nothing is queued, so that a forge, which hands a job
   * to any listening runner, hands it to a warm store. `any`: every free slot listens.
   */
  placement: z.enum(["warm-first", "any"]).default("warm-first"),
  /** This pool takes GitLab jobs without tags (and jobs whose tags are not known yet). */
  untagged: z.boolean().default(false),
  /**
   * This pool takes a job that several pools match equally well (`[self-hosted]`, or a tag every
   * pool has). At most one pool says so; without one, the first pool of the list is the default.
   */
  default: z.boolean().default(false),
  /**
   * Existing Auto Scaling groups for local mode's `--fleet aws` (single-host controller mode). A
   * stage deployed with SST names its own, `hearth-<stage>-<pool>-warm` and `-burst`.
   */
  autoScalingGroups: strictObject({
    warm: z.string().regex(/^[\w.:/-]{1,255}$/, "an Auto Scaling group name"),
    burst: z.string().regex(/^[\w.:/-]{1,255}$/, "an Auto Scaling group name"),
  }).optional(),
});
export type PoolConfig = z.infer<typeof poolConfigSchema>;

/**
 * Whether Hearth keeps the pool's warm group itself (`warm.market: spot`): it then starts a stopped
 * instance by id, so the planner names which store resumes.
 */
export const namesStores = (pool: PoolConfig): boolean => pool.warm.market === "spot";

/**
 * Whether the `retryNumber`th retry of an interrupted job (1 for the first) is the last its pool
 * allows: no retry follows it if it is interrupted too, so it goes on demand (`retryOnDemand`).
 */
export const lastRetry = (pool: Pick<PoolConfig, "retryInterrupted">, retryNumber: number): boolean =>
  retryNumber >= pool.retryInterrupted;
export type PoolConfigInput = z.input<typeof poolConfigSchema>;

export const poolsConfigSchema = z
  .array(poolConfigSchema)
  .min(1)
  .superRefine((pools, ctx) => {
    const names = new Set<string>();
    for (const [index, pool] of pools.entries()) {
      if (names.has(pool.name)) {
        ctx.addIssue({ code: "custom", path: [index, "name"], message: `duplicate pool ${pool.name}` });
      }
      names.add(pool.name);
    }
    if (pools.filter((pool) => pool.untagged).length > 1) {
      ctx.addIssue({ code: "custom", message: "at most one pool may take untagged jobs" });
    }
    const defaults = pools.filter((pool) => pool.default).map((pool) => pool.name);
    if (defaults.length > 1) {
      ctx.addIssue({
        code: "custom",
        message: `at most one pool may be the default, and "default": true is on ${defaults.join(", ")}`,
      });
    }
  });

/** The two pools the traces in traces/ use; infra deploys these unless configured otherwise. */
export const defaultPools: PoolConfig[] = poolsConfigSchema.parse([
  {
    name: "x86_64",
    labels: ["nix", "x86_64-linux"],
    architecture: "x86_64",
    instanceTypes: ["c6a.xlarge", "c6i.xlarge", "c7a.xlarge", "m6a.xlarge"],
    untagged: true,
  },
  {
    name: "aarch64",
    labels: ["nix", "aarch64-linux"],
    architecture: "arm64",
    instanceTypes: ["c7g.xlarge", "c6g.xlarge", "m7g.xlarge", "m6g.xlarge"],
  },
] satisfies PoolConfigInput[]);

export interface RoutableJob {
  source: Source;
  /** Normalized (lower-cased) labels or tags; meaningless while `labelsKnown` is false. */
  labels: readonly string[];
  labelsKnown: boolean;
}

export type Route = { pool: string } | { unroutable: string };

/**
 * Labels that ask for GitHub's hosted runners. A job that asks for one was never meant for Hearth, so
 * it is unroutable even if a pool happened to carry the label.
 */
const githubHosted = /^(ubuntu|windows|macos)-[a-z0-9.-]+$|^(ubuntu|windows|macos)$/;

/**
 * GitHub gives every self-hosted runner default labels: `self-hosted`, its OS and its architecture
 * (https://docs.github.com/en/actions/hosting-your-own-runners/managing-self-hosted-runners/using-labels-with-self-hosted-runners).
 * Hearth's runners keep them, so a job asking for `[self-hosted, linux, x64]` runs on an x86_64 pool.
 */
const githubDefaultLabels = (pool: PoolConfig): string[] => [
  "linux",
  pool.architecture === "arm64" ? "arm64" : "x64",
];

function pickPool(
  pools: readonly PoolConfig[],
  wanted: readonly string[],
  implied: (pool: PoolConfig) => readonly string[] = () => [],
): PoolConfig | undefined {
  const fallback = defaultPool(pools);
  const rank = (pool: PoolConfig) => (pool === fallback ? -1 : pools.indexOf(pool));
  const candidates = pools.filter((pool) =>
    wanted.every((label) => pool.labels.includes(label) || implied(pool).includes(label)),
  );
  // The most specific match wins: fewest labels the job did not ask for. A tie goes to the default
  // pool, then to the pool listed first: an order the config's author chose, unlike the names'.
  candidates.sort((a, b) => a.labels.length - b.labels.length || rank(a) - rank(b));
  return candidates[0];
}

/** The pool that takes ties: the one marked `default`, else the first. */
export const defaultPool = (pools: readonly PoolConfig[]): PoolConfig | undefined =>
  pools.find((pool) => pool.default) ?? pools[0];

/**
 * The pool that runs `job`.
 *
 * GitHub: labels match case-insensitively, `self-hosted` is implied, and the job's labels must be a
 * subset of the pool's. GitLab: the job's tags must be a subset of the pool's; an untagged job goes to
 * the pool marked `untagged`. GitLab's Job Hook does not carry tags, so a GitLab job whose tags are not
 * known yet is routed as untagged (once the API lookup fills them in, it is routed again). When pools
 * match equally, the default pool takes the job (`defaultPool`).
 */
export function routeJob(job: RoutableJob, pools: readonly PoolConfig[]): Route {
  const wanted = normalizeLabels(job.labels);
  if (job.source === "github") {
    const hosted = wanted.find((label) => githubHosted.test(label));
    if (hosted !== undefined) return { unroutable: `asks for the GitHub-hosted runner label "${hosted}"` };
    // A job that asks only for `self-hosted` may run on any pool; the most generic one takes it, and
    // among equally generic ones the default pool.
    const own = wanted.filter((label) => label !== selfHosted);
    const pool = pickPool(pools, own, githubDefaultLabels);
    return pool ? { pool: pool.name } : { unroutable: `no pool has every label of [${own.join(", ")}]` };
  }
  if (!job.labelsKnown || wanted.length === 0) {
    const pool = pools.find((candidate) => candidate.untagged);
    if (pool) return { pool: pool.name };
    const why = job.labelsKnown ? "untagged" : "tags not known yet (routed as untagged)";
    return { unroutable: `${why}, and no pool takes untagged jobs` };
  }
  const pool = pickPool(pools, wanted);
  return pool ? { pool: pool.name } : { unroutable: `no pool has every tag of [${wanted.join(", ")}]` };
}

export const isRouted = (route: Route): route is { pool: string } => "pool" in route;
