import { reconciliationSchema } from "@hearth/core/config";
import { poolsConfigSchema } from "@hearth/core/pools";
import * as z from "zod";

/**
 * The SST links (`Resource.<Name>`) the Lambdas read at runtime, with the shape of each, and which
 * function links which. Plain data with no SST import: infra links exactly these names to each
 * function (and the type checker holds it to declaring a component for every one), and the tests run
 * each handler with only its own links set, as Lambda would.
 *
 * Links carry data only. The permissions that go with them are written out in infra/lib/iam.ts,
 * because SST's built-in links grant `dynamodb:*` and the like, broader than Hearth needs.
 */

const secret = z.object({ value: z.string() });
const nonEmpty = z.string().min(1);

export const linkSchemas = {
  /** SST links the app's name and stage to every function by itself. */
  App: z.object({ name: nonEmpty, stage: nonEmpty }),
  /** The stage's settings the functions need: its pools, GitLab URL and GitHub API URL. */
  HearthConfig: z.object({
    pools: poolsConfigSchema,
    gitlabUrl: z.url({ protocol: /^https?$/ }),
    /** `https://api.github.com`, or a GitHub Enterprise Server's `https://…/api/v3` (`GITHUB_API_URL`). */
    githubApiUrl: z.url({ protocol: /^https?$/ }).default("https://api.github.com"),
    /** ScaleFleet iterations per execution. */
    maxIterations: z.number().int().positive(),
    /** Polling's and the sweep's settings (the sweep's dry run, the rate budget's share); defaults when absent. */
    reconciliation: reconciliationSchema.prefault({}),
  }),
  /** The single DynamoDB table. */
  Storage: z.object({ tableName: nonEmpty }),
  /**
   * The Auto Scaling groups per pool, where GitHub JIT runner configs go in Parameter Store, and the
   * stage's account and partition (a runner config is bound to its instance's ARN).
   */
  Fleet: z.object({
    groups: z.record(z.string(), z.object({ warm: nonEmpty, burst: nonEmpty })),
    runnerConfigPrefix: z.string().regex(/^\/[A-Za-z0-9_.\-/]+$/),
    account: z.string().regex(/^\d{12}$/),
    partition: z.string().regex(/^aws[a-z-]*$/),
  }),
  /** The ScaleFleet state machine. */
  ScaleFleet: z.object({ stateMachineArn: z.string().regex(/^arn:aws[a-z-]*:states:/) }),
  /** The HandleInterruption state machine (the heartbeat starts it when an agent reports a notice first). */
  HandleInterruption: z.object({ stateMachineArn: z.string().regex(/^arn:aws[a-z-]*:states:/) }),
  GithubWebhookSecret: secret,
  GitlabWebhookToken: secret,
  GitlabSigningToken: secret,
  GitlabApiToken: secret,
  StatusToken: secret,
  /** The GitHub App that mints and deletes just-in-time runners (both empty: not configured). */
  GithubAppId: secret,
  GithubAppPrivateKey: secret,
  /** Each pool's GitLab runner token (`glrt-…`, empty when unset), to delete runner managers. */
  GitlabRunnerTokens: z.object({ tokens: z.record(z.string(), z.string()) }),
} as const;

export type LinkName = keyof typeof linkSchemas;
export type Link<N extends LinkName> = z.infer<(typeof linkSchemas)[N]>;

/** Every Lambda Hearth deploys. infra/lib/functions.ts gives each its handler, memory and timeout. */
export const functionNames = [
  "api",
  "observe",
  "plan",
  "apply",
  "finish",
  "recordFailure",
  "tick",
  "interruption",
  "poll",
  "sweep",
] as const;
export type FunctionName = (typeof functionNames)[number];

/** What each function links (besides `App`, which SST links to all): no more than it reads. */
export const functionLinks = {
  /**
   * Webhooks (with a GitLab job's tag lookup), `GET /api/status` and `POST /agent/heartbeat` (which
   * mints GitHub runners for an instance's free slots, with the App).
   */
  api: [
    "HearthConfig",
    "Storage",
    "Fleet",
    "ScaleFleet",
    "HandleInterruption",
    "GithubWebhookSecret",
    "GitlabWebhookToken",
    "GitlabSigningToken",
    "GitlabApiToken",
    "StatusToken",
    "GithubAppId",
    "GithubAppPrivateKey",
  ],
  /**
   * Observe resolves GitLab tags the webhook could not (GitLab's API slow or failing), and asks a held
   * pool's waiting retries of their forges (the GitLab API token, the App). Observe and
   * apply see instances leave service: they delete their GitHub runners (the App) and GitLab
   * runner managers (the pool's runner token).
   */
  observe: [
    "HearthConfig",
    "Storage",
    "Fleet",
    "GitlabApiToken",
    "GithubAppId",
    "GithubAppPrivateKey",
    "GitlabRunnerTokens",
  ],
  /** The planner is pure: the pools are all it needs. */
  plan: ["HearthConfig"],
  apply: ["HearthConfig", "Storage", "Fleet"],
  /** Finish and RecordFailure release the lease (and journal); the pools do not come into it. */
  finish: ["Storage"],
  recordFailure: ["Storage"],
  /** The minute tick: forecast, queue metrics (with GitLab tag lookups), ScaleFleet for every pool. */
  tick: ["HearthConfig", "Storage", "ScaleFleet", "GitlabApiToken"],
  /**
   * HandleInterruption's tasks: the registry and the fleet (detach, terminate), a ScaleFleet run for
   * the pool, and the interrupted instance's runners deleted (the App, the pools' runner tokens).
   */
  interruption: [
    "HearthConfig",
    "Storage",
    "Fleet",
    "ScaleFleet",
    "GithubAppId",
    "GithubAppPrivateKey",
    "GitlabRunnerTokens",
  ],
  /**
   * Polling for missed webhooks: the App (its webhook deliveries, and its installations' runs and
   * jobs), the GitLab API token (pending and running jobs), the ledger, and ScaleFleet for what it finds.
   */
  poll: ["HearthConfig", "Storage", "ScaleFleet", "GitlabApiToken", "GithubAppId", "GithubAppPrivateKey"],
  /**
   * The sweep's tasks: the ledger, registry and marks; the cloud (the groups, and the stage's tagged
   * instances no group holds; terminating orphans); the forges' runners and managers (the App, the
   * pools' runner tokens, the GitLab API token for listing managers and reading jobs); and a stuck
   * job's retry may start its pool's ScaleFleet run.
   */
  sweep: [
    "HearthConfig",
    "Storage",
    "Fleet",
    "ScaleFleet",
    "GitlabApiToken",
    "GithubAppId",
    "GithubAppPrivateKey",
    "GitlabRunnerTokens",
  ],
} as const satisfies Record<FunctionName, readonly LinkName[]>;

/** Reads one link through `read` (SST's `Resource` in Lambda) and checks its shape. */
export function readLink<N extends LinkName>(read: (name: string) => unknown, name: N): Link<N> {
  const parsed = linkSchemas[name].safeParse(read(name));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`link ${name} is malformed at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`);
  }
  return parsed.data as Link<N>;
}

/** A secret's value, or undefined when it is unset (SST's placeholder for optional secrets is ""). */
export const secretValue = (link: { value: string }): string | undefined => link.value.trim() || undefined;

/**
 * The environment variables through which SST hands links to a process (`SST_RESOURCE_<Name>`, JSON):
 * how tests and benchmarks run a handler as Lambda would.
 */
export function linkEnvironment(values: Partial<{ [N in LinkName]: Link<N> }>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(values).map(([name, value]) => [`SST_RESOURCE_${name}`, JSON.stringify(value)]),
  );
}
