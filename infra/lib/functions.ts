import { type FunctionName, functionLinks, type LinkName } from "../../packages/functions/src/aws/links";

/**
 * Every Lambda of a stage: its handler, size and time limit, and its links. All run Node 22 on arm64
 * (Graviton: about 20% cheaper per GB-second than x86 for the same work, and these functions are I/O
 * bound). Lambda gives CPU in proportion to memory, so memory is set for cold-start CPU as much as for
 * heap: bundling, zod schemas and the SDK clients load in the init phase, which runs at the memory's
 * CPU share.
 */

export interface FunctionSpec {
  /** Relative to the repository root (SST's `handler`). */
  handler: string;
  memoryMB: number;
  timeoutSeconds: number;
  /** Async invocation retries (the tick's Scheduler invokes asynchronously). */
  retries?: number;
  description: string;
  links: readonly LinkName[];
}

const scale = (step: string) => `packages/functions/src/aws/scale.${step}`;

export const functionSpecs: Record<FunctionName, FunctionSpec> = {
  api: {
    handler: "packages/functions/src/aws/api.handler",
    // Webhooks are answered in tens of milliseconds warm; 512 MB keeps the cold start (Hono, the
    // ledger, the SDK clients) short, which is what GitHub's and GitLab's delivery timeouts see.
    memoryMB: 512,
    // GitHub gives a webhook 10 s; a request that takes longer has failed whatever it answers.
    timeoutSeconds: 10,
    description: "Hearth API: webhooks, status, agent heartbeats",
    links: functionLinks.api,
  },
  observe: {
    handler: scale("observe"),
    // Describes the pool's groups, warm pool and instances, and looks up to 20 GitLab tag lists
    // (5 s each, in parallel); SDK retries back off for up to tens of seconds when throttled.
    memoryMB: 512,
    timeoutSeconds: 60,
    description: "ScaleFleet: observe a pool",
    links: functionLinks.observe,
  },
  plan: {
    handler: scale("plan"),
    // The planner is a pure function over at most a few hundred jobs and instances.
    memoryMB: 256,
    timeoutSeconds: 10,
    description: "ScaleFleet: plan a pool (pure)",
    links: functionLinks.plan,
  },
  apply: {
    handler: scale("apply"),
    // A handful of Auto Scaling calls, each retried with backoff (up to ~30 s) when throttled.
    memoryMB: 256,
    timeoutSeconds: 60,
    description: "ScaleFleet: apply a plan",
    links: functionLinks.apply,
  },
  finish: {
    handler: scale("finish"),
    memoryMB: 256,
    timeoutSeconds: 10,
    description: "ScaleFleet: release the pool's lease",
    links: functionLinks.finish,
  },
  recordFailure: {
    handler: scale("recordFailure"),
    memoryMB: 256,
    timeoutSeconds: 10,
    description: "ScaleFleet: journal a failed run",
    links: functionLinks.recordFailure,
  },
  tick: {
    handler: "packages/functions/src/aws/tick.handler",
    // Every ten minutes it reads a week of arrivals for the forecast (thousands of items in a busy
    // organization), and it may look up GitLab tags; 512 MB and two minutes leave room for both.
    memoryMB: 512,
    timeoutSeconds: 120,
    // The next tick comes in a minute; a retry would only overlap it.
    retries: 0,
    description: "Hearth tick: forecast, queue metrics, ScaleFleet for every pool",
    links: functionLinks.tick,
  },
  poll: {
    handler: "packages/functions/src/aws/poll.handler",
    // A few dozen forge calls at most per poll (the governor paces the share over the hour), each
    // with the clients' 10 s timeout. Its lease (90 s) outlasts this, so overlapping polls never both spend.
    memoryMB: 512,
    timeoutSeconds: 60,
    // The next poll comes at the next interval; a retry would only overlap it.
    retries: 0,
    description: "Hearth poll: forges' queued and running jobs whose webhooks were missed",
    links: functionLinks.poll,
  },
  interruption: {
    handler: "packages/functions/src/aws/interruption.handler",
    // A few Auto Scaling, EC2 and table calls a step, and the runners' deletions (GitHub, GitLab),
    // each retried with backoff when throttled.
    memoryMB: 256,
    timeoutSeconds: 60,
    description: "HandleInterruption: claim, drain, settle a spot instance at risk",
    links: functionLinks.interruption,
  },
  sweep: {
    handler: "packages/functions/src/aws/sweep.handler",
    // Survey lists every pool's groups, tagged instances and the forges' runners and managers, paged
    // and paced by the rate governors; Act makes a fresh read and a deletion or termination. Two
    // minutes leave room for a slow forge's pages; 512 MB for Octokit and the SDK clients' load.
    memoryMB: 512,
    timeoutSeconds: 120,
    description: "Sweep: survey the ledger, the cloud and the forges; act on due marks; journal",
    links: functionLinks.sweep,
  },
};

/** The ScaleFleet tasks, in the state machine's order of resources. */
export const scaleFleetTaskFunctions = ["observe", "plan", "apply", "finish", "recordFailure"] as const;

/** Function logs are kept this long (CloudWatch Logs bills storage per GB-month). */
export const LOG_RETENTION_DAYS = 30;

/** ScaleFleet iterations per execution: with 5–15 s waits, 5 to 15 minutes, under its 20-minute timeout. */
export const MAX_ITERATIONS = 60;

/**
 * The esbuild settings of every function: the AWS SDK v3 is left out of the bundle (the Node 22
 * runtime ships it; `npm run bench:ingest` measures the API bundle both ways), everything else is
 * bundled and minified.
 */
export const nodejsBundle = {
  format: "esm" as const,
  // Modules imported with import() (the fleet's SDK clients) go to their own chunks, loaded on first use.
  splitting: true,
  minify: true,
  esbuild: { external: ["@aws-sdk/*", "@smithy/*"], target: "node22" },
};
