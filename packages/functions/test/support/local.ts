import { FakeClock } from "@hearth/core/clock";
import { type PoolConfig, type PoolConfigInput, poolConfigSchema } from "@hearth/core/pools";
import type { SimulatedFleet } from "@hearth/core/simulation/fleet";
import {
  type ForgeJob,
  type ForgeRequest,
  githubDelivery,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";
import { afterEach, expect } from "vitest";
import { type LocalHearth, type LocalOptions, startLocal } from "../../src/local/server";
import { silentLogger } from "../../src/log";

export const secrets = { githubWebhookSecret: "gh-secret", gitlabWebhookToken: "gl-token" };

/**
 * Local mode on a fake clock: no periodic tick, poll or sweep (tests call `tick()`, `poll()` and `POST
 * /sim/sweep`), one ScaleFleet iteration per run.
 */
export async function startTestHearth(
  options: Partial<LocalOptions> & { statusToken?: string } = {},
): Promise<{ hearth: LocalHearth; clock: FakeClock }> {
  const clock = (options.clock as FakeClock | undefined) ?? new FakeClock();
  const hearth = await startLocal({
    port: 0,
    log: silentLogger,
    tickSeconds: 0,
    pollSeconds: 0,
    sweepSeconds: 0,
    maxIterations: 1,
    ...options,
    clock,
    settings: {
      GITHUB_WEBHOOK_SECRET: secrets.githubWebhookSecret,
      GITLAB_WEBHOOK_TOKEN: secrets.gitlabWebhookToken,
      ...(options.statusToken ? { STATUS_TOKEN: options.statusToken } : {}),
    } as LocalOptions["settings"],
  });
  return { hearth, clock };
}

/**
 * Closes after each test of the file the local Hearth it started: call once at the file's top, then
 * hand it each Hearth a test starts.
 */
export function closeAfterEach(): (hearth: LocalHearth) => void {
  let open: LocalHearth | undefined;
  afterEach(async () => {
    await open?.close();
    open = undefined;
  });
  return (hearth) => {
    open = hearth;
  };
}

/** Moves fleet time on in 5 s steps, letting each step's work (boots, heartbeats, runs) finish. */
export async function pass(hearth: LocalHearth, clock: FakeClock, seconds: number): Promise<void> {
  for (let t = 0; t < seconds; t += 5) {
    await clock.advance(5000);
    await hearth.idle();
  }
}

/** Tells the simulation how long jobs run (and, for GitLab, their tags) before they are queued. */
export async function describeJobs(
  hearth: LocalHearth,
  jobs: readonly ForgeJob[],
  seconds: number,
): Promise<void> {
  const response = await fetch(`${hearth.url}/sim/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(jobs.map((job) => ({ job, warmSeconds: seconds, coldSeconds: seconds }))),
  });
  if (!response.ok) throw new Error(`describing jobs failed: ${response.status}`);
}

export async function send(hearth: LocalHearth, request: ForgeRequest): Promise<Response> {
  return fetch(`${hearth.url}${request.path}`, {
    method: "POST",
    headers: request.headers,
    body: request.body,
  });
}

/** A GitHub job of the `x86_64` pool, in run `pipelineId`. */
export const githubJob = (id: string, pipelineId: string): ForgeJob => ({
  source: "github",
  id,
  project: "acme/app",
  projectId: "1",
  pipelineId,
  name: `test-${id}`,
  labels: ["nix", "x86_64-linux"],
});

/**
 * GitHub jobs of the `x86` pools the placement tests use, one run each, numbered from `firstId`:
 * jobs of one name share a cache key (the ledger's `project` and name).
 */
export function namedJobs(firstId: number): (name: string) => ForgeJob {
  let next = firstId;
  return (name) => {
    next += 1;
    return {
      source: "github",
      id: String(next),
      project: "acme/app",
      projectId: "77",
      pipelineId: String(next),
      name,
      labels: ["nix", "x86_64-linux"],
    };
  };
}

/** Queues a GitHub job that runs `seconds` once it starts: described, then its `queued` webhook. */
export async function queueGitHubJob(
  { h, clock }: { h: LocalHearth; clock: FakeClock },
  forgeJob: ForgeJob,
  seconds: number,
): Promise<void> {
  await describeJobs(h, [forgeJob], seconds);
  const createdAt = new Date(clock.now()).toISOString();
  const response = await send(
    h,
    githubDelivery(workflowJobPayload(forgeJob, "queued", { createdAt }), secrets),
  );
  expect(response.status, await response.clone().text()).toBeLessThan(300);
  await h.idle();
}

/** The `x86` pool the e2e tests run: untagged jobs and `nix`/`x86_64-linux` ones, with their settings. */
export const localPool = (
  settings: Omit<PoolConfigInput, "name" | "labels" | "architecture" | "instanceTypes">,
): PoolConfig =>
  poolConfigSchema.parse({
    name: "x86",
    labels: ["nix", "x86_64-linux"],
    architecture: "x86_64",
    instanceTypes: ["c6a.xlarge"],
    untagged: true,
    ...settings,
  });

/** A local Hearth on a fake clock, with its simulated fleet. */
export interface LocalSetup {
  h: LocalHearth;
  clock: FakeClock;
  fleet: SimulatedFleet;
}
