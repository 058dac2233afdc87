import { createHash } from "node:crypto";
import { normalizeLabels } from "@hearth/core/jobs";
import {
  type ForgeJob,
  type ForgeSecrets,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";
import type { TraceJob } from "@hearth/core/simulation/trace";

/**
 * The demo: a trace replayed into a running local Hearth as the webhooks GitLab and GitHub would
 * send, sped up. Each job is described to the simulation first (its run times, and for GitLab its
 * tags, which the local GitLab API then answers), then queued with a signed webhook.
 */

export interface DemoJob {
  /** When to queue it, in seconds from the replay's start (already divided by the speed). */
  at: number;
  job: ForgeJob;
  warmSeconds: number;
  coldSeconds: number;
}

const numeric = (text: string, digits = 9) =>
  String(Number.parseInt(createHash("sha256").update(text).digest("hex").slice(0, 12), 16) % 10 ** digits);

/**
 * Trace rows as forge jobs. A pipeline goes to GitLab or GitHub as a whole (by its id), its cache key
 * `project/job` names the project and the job, and job ids count up from `firstId`. The replay starts
 * with the first row's job, however late in its trace that comes (a trace of clock times).
 */
export function demoJobs(jobs: readonly TraceJob[], options: { speed: number; firstId: number }): DemoJob[] {
  const first = jobs[0]?.createdAt ?? 0;
  return jobs.map((row, index) => {
    const source = Number(numeric(row.pipelineId, 6)) % 2 === 0 ? "github" : "gitlab";
    const slash = row.cacheKey.indexOf("/");
    const project = `demo/${slash > 0 ? row.cacheKey.slice(0, slash) : "app"}`;
    const name = slash > 0 ? row.cacheKey.slice(slash + 1) : row.cacheKey;
    return {
      at: (row.createdAt - first) / options.speed,
      job: {
        source,
        id: String(options.firstId + index),
        project,
        projectId: numeric(project, 6),
        pipelineId: numeric(row.pipelineId),
        name,
        labels: normalizeLabels(row.labels),
      },
      warmSeconds: row.warmSeconds / options.speed,
      coldSeconds: row.coldSeconds / options.speed,
    };
  });
}

export interface ReplayOptions {
  url: string;
  secrets: ForgeSecrets;
  /** Waits until `seconds` from the replay's start (real time in the CLI; nothing in tests). */
  waitUntil: (seconds: number) => Promise<void>;
  now: () => Date;
  onSent?: (job: DemoJob, status: number) => void;
  /** The status token, when the server has one: its simulation routes ask for it too. */
  statusToken?: string;
  /**
   * Queue each job through the simulated forge (`POST /sim/forge/jobs?webhook=queued`), which sends
   * its webhook as its own delivery, dropped at the forge's loss rate, instead of sending it here.
   */
  viaForge?: boolean;
}

async function post(
  url: string,
  path: string,
  headers: Record<string, string>,
  body: string,
): Promise<number> {
  const response = await fetch(`${url}${path}`, { method: "POST", headers, body });
  await response.arrayBuffer();
  return response.status;
}

/** Sends every job at its time. Fails fast if Hearth refuses the webhooks (wrong secret, not running). */
export async function replay(
  jobs: readonly DemoJob[],
  options: ReplayOptions,
): Promise<{ sent: number; refused: number; dropped: number }> {
  let sent = 0;
  let refused = 0;
  let dropped = 0;
  const authorization: Record<string, string> = options.statusToken
    ? { authorization: `Bearer ${options.statusToken}` }
    : {};
  for (const demo of jobs) {
    await options.waitUntil(demo.at);
    if (options.viaForge) {
      const response = await fetch(`${options.url}/sim/forge/jobs?webhook=queued`, {
        method: "POST",
        headers: { "content-type": "application/json", ...authorization },
        body: JSON.stringify([
          { job: demo.job, warmSeconds: demo.warmSeconds, coldSeconds: demo.coldSeconds },
        ]),
      });
      const answer = (await response.json().catch(() => ({}))) as { dropped?: number };
      if (response.status === 404)
        throw new Error("this Hearth has no simulated forge (is it running with --fleet aws?)");
      if (response.status === 401)
        throw new Error("this Hearth has a status token: set STATUS_TOKEN to it for the demo too");
      options.onSent?.(demo, response.status);
      if (response.status !== 202) refused += 1;
      else if (answer.dropped) dropped += 1;
      else sent += 1;
      continue;
    }
    const described = await post(
      options.url,
      "/sim/jobs",
      { "content-type": "application/json", ...authorization },
      JSON.stringify([{ job: demo.job, warmSeconds: demo.warmSeconds, coldSeconds: demo.coldSeconds }]),
    );
    if (described === 404)
      throw new Error("this Hearth has no simulated fleet (is it running with --fleet aws?)");
    if (described === 401)
      throw new Error("this Hearth has a status token: set STATUS_TOKEN to it for the demo too");
    const createdAt = options.now().toISOString();
    const request =
      demo.job.source === "github"
        ? githubDelivery(workflowJobPayload(demo.job, "queued", { createdAt }), options.secrets)
        : gitlabDelivery(jobHookPayload(demo.job, "pending", { createdAt }), options.secrets, options.now());
    const status = await post(options.url, request.path, request.headers, request.body);
    options.onSent?.(demo, status);
    if (status === 401)
      throw new Error(`${request.path} answered 401: the demo's secrets are not the server's`);
    if (status < 300) sent += 1;
    else refused += 1;
  }
  return { sent, refused, dropped };
}

export interface DrainOptions {
  url: string;
  /** The status token, when the server has one (`STATUS_TOKEN`). */
  token?: string;
  /** Seconds between looks at the status. */
  everySeconds: number;
  /** Gives up after this long (the queue may never drain: an unroutable label, no capacity). */
  timeoutSeconds: number;
  sleep: (seconds: number) => Promise<void>;
  onProgress?: (look: DrainLook) => void;
}

export interface DrainLook {
  /** Seconds since watching began. */
  seconds: number;
  /** Jobs queued for a pool (unroutable jobs never drain, and are not counted). */
  queued: number;
  running: number;
  /** Jobs on the status page that match no pool, this replay's or earlier: no instance will run them. */
  unroutable: number;
  /** The longest any queued job had waited at this look. */
  oldestQueuedSeconds: number;
}

/**
 * After the replay: watches the status until no job waits for a pool, so that the demo ends on what
 * a reader wants to know, whether Hearth kept up, rather than on a queue in mid-flight.
 */
export async function watchDrain(
  options: DrainOptions,
): Promise<{ drained: boolean; last: DrainLook; longestWaitSeconds: number }> {
  let longestWaitSeconds = 0;
  for (let seconds = 0; ; seconds += options.everySeconds) {
    const response = await fetch(`${options.url}/api/status`, {
      headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
    });
    if (!response.ok) throw new Error(`GET /api/status answered ${response.status}`);
    const status = (await response.json()) as {
      pools: Array<{ queued: number; running: number; oldestQueuedSeconds: number | null }>;
      unroutable?: { count: number };
    };
    const look: DrainLook = {
      seconds,
      queued: status.pools.reduce((sum, pool) => sum + pool.queued, 0),
      running: status.pools.reduce((sum, pool) => sum + pool.running, 0),
      unroutable: status.unroutable?.count ?? 0,
      oldestQueuedSeconds: Math.max(0, ...status.pools.map((pool) => pool.oldestQueuedSeconds ?? 0)),
    };
    longestWaitSeconds = Math.max(longestWaitSeconds, look.oldestQueuedSeconds);
    options.onProgress?.(look);
    if (look.queued === 0) return { drained: true, last: look, longestWaitSeconds };
    if (seconds >= options.timeoutSeconds) return { drained: false, last: look, longestWaitSeconds };
    await options.sleep(options.everySeconds);
  }
}
