import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { FakeClock } from "@hearth/core/clock";
import type { ForgeJob } from "@hearth/core/simulation/forge";
import { parseTrace } from "@hearth/core/simulation/trace";
import { type DemoJob, demoJobs } from "../../src/demo";
import type { LocalHearth } from "../../src/local/server";
import type { Logger } from "../../src/log";
import { startTestHearth } from "./local";

/**
 * The chaos scenario: local mode on a fake clock, the simulated forges dropping a share of every
 * webhook at random (seeded), and a demo trace's jobs queued in them on both forges. Fleet time moves
 * in 5 s steps; the tick and the poll run on their intervals, as their schedules would. It ends when
 * every job has finished in its forge (or at the time limit), and says, for each job whose `queued`
 * webhook was dropped, how long it waited from its arrival to its first scale request (a spare slot
 * taken or a ScaleFleet run asked for, by the webhook's path or the poll's).
 *
 * Shared by the end-to-end test and `npm run bench:polling`.
 */

export interface ChaosOptions {
  /** Share of webhooks dropped: 0.3 by default. */
  loss?: number;
  /** Seeds which webhooks drop. */
  seed?: number;
  /** Trace jobs replayed (from the start of the demo's bundled trace). */
  jobs?: number;
  /** The trace's time divided by this (arrivals and run times alike). */
  speed?: number;
  pollSeconds?: number;
  tickSeconds?: number;
  /** Fleet time after which the scenario stops, finished or not. */
  limitSeconds?: number;
}

export interface MissedJob {
  job: ForgeJob;
  arrivedAt: number;
  /** Fleet time of its first scale request; undefined if none came. */
  requestedAt: number | undefined;
}

export interface ChaosResult {
  jobs: ForgeJob[];
  /** Jobs whose `queued` webhook was dropped. */
  missed: MissedJob[];
  /** Jobs that have not finished in their forge. */
  unfinished: ForgeJob[];
  /** Jobs the ledger never recorded. */
  unrecorded: ForgeJob[];
  /** Queued deliveries sent and dropped, all webhooks counted. */
  deliveries: { sent: number; dropped: number };
  polls: number;
  /** Fleet seconds the scenario ran. */
  seconds: number;
}

const STEP_SECONDS = 5;
const repo = resolve(import.meta.dirname, "../../../..");

/** The demo's bundled trace, its first `count` jobs, at `speed`. */
export function chaosJobs(count: number, speed: number): DemoJob[] {
  const trace = parseTrace(readFileSync(resolve(repo, "packages/functions/demo/sample-trace.csv"), "utf8"));
  return demoJobs(trace.jobs.slice(0, count), { speed, firstId: 7_000_000 });
}

const finished = (status: string | undefined) =>
  status === "success" || status === "failed" || status === "canceled";

export async function runChaos(options: ChaosOptions = {}): Promise<ChaosResult> {
  const clock = new FakeClock(Date.parse("2026-12-01T09:00:00Z"));
  const requestedAt = new Map<string, number>();
  // The first scale request for each job, as composeHearth logs it (both paths go through it).
  const log: Logger = {
    info(message, fields) {
      if (message !== "scale requested" || typeof fields?.job !== "string") return;
      if (!requestedAt.has(String(fields.job))) requestedAt.set(String(fields.job), clock.now());
    },
    warn() {},
    error() {},
  };
  const { hearth } = await startTestHearth({
    clock,
    log,
    webhookLoss: options.loss ?? 0.3,
    webhookLossSeed: options.seed ?? 1,
    initialWarmPool: 2,
    maxIterations: 1,
  });
  try {
    return await drive(hearth, clock, requestedAt, options);
  } finally {
    await hearth.close();
  }
}

async function drive(
  hearth: LocalHearth,
  clock: FakeClock,
  requestedAt: Map<string, number>,
  options: ChaosOptions,
): Promise<ChaosResult> {
  const demo = chaosJobs(options.jobs ?? 60, options.speed ?? 20);
  const pollSeconds = options.pollSeconds ?? 60;
  const tickSeconds = options.tickSeconds ?? 60;
  const limit = options.limitSeconds ?? 3600;
  const forgeJobs = hearth.simulation?.forgeJobs;
  if (!forgeJobs) throw new Error("the chaos scenario needs the simulated forges");
  const missed: MissedJob[] = [];
  const start = clock.now();
  let next = 0;
  let polls = 0;
  let seconds = 0;
  for (; seconds <= limit; seconds += STEP_SECONDS) {
    while (next < demo.length && (demo[next]?.at ?? Infinity) <= seconds) {
      const due = demo[next++] as DemoJob;
      const response = await fetch(`${hearth.url}/sim/forge/jobs?webhook=queued`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify([{ job: due.job, warmSeconds: due.warmSeconds, coldSeconds: due.coldSeconds }]),
      });
      const answer = (await response.json()) as { dropped?: number };
      if (response.status !== 202) throw new Error(`POST /sim/forge/jobs answered ${response.status}`);
      if (answer.dropped) missed.push({ job: due.job, arrivedAt: clock.now(), requestedAt: undefined });
    }
    await hearth.idle();
    if (seconds > 0 && seconds % tickSeconds === 0) await hearth.tick();
    if (seconds > 0 && seconds % pollSeconds === 0) {
      await hearth.poll();
      polls += 1;
    }
    await hearth.idle();
    if (next >= demo.length && demo.every(({ job }) => finished(forgeJobs.status(job)))) break;
    await clock.advance(STEP_SECONDS * 1000);
  }
  for (const entry of missed) entry.requestedAt = requestedAt.get(entry.job.id);
  const jobs = demo.map(({ job }) => job);
  const unrecorded: ForgeJob[] = [];
  for (const job of jobs) if (!(await hearth.ledger.get(job))) unrecorded.push(job);
  const deliveries = hearth.simulation?.deliveries.all() ?? [];
  return {
    jobs,
    missed,
    unfinished: jobs.filter((job) => !finished(forgeJobs.status(job))),
    unrecorded,
    deliveries: {
      sent: deliveries.length,
      dropped: deliveries.filter((delivery) => delivery.statusCode === 0).length,
    },
    polls,
    seconds: Math.round((clock.now() - start) / 1000),
  };
}

/** The latencies (seconds) of the missed jobs of one forge, sorted; a job never requested counts as Infinity. */
export function missedLatencies(result: ChaosResult, source: ForgeJob["source"]): number[] {
  return result.missed
    .filter((entry) => entry.job.source === source)
    .map((entry) =>
      entry.requestedAt === undefined
        ? Number.POSITIVE_INFINITY
        : (entry.requestedAt - entry.arrivedAt) / 1000,
    )
    .sort((a, b) => a - b);
}

/** The q-quantile of sorted values (nearest rank). */
export const quantile = (sorted: readonly number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
