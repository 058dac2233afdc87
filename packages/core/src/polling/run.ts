import type { GitHubClient } from "../github-api/client";
import type { GitLabLists } from "../gitlab-api/job-lists";
import type { Job, JobEvent } from "../jobs";
import type { Journal } from "../journal";
import type { Leases } from "../leases";
import type { Ledger } from "../ledger";
import type { PoolConfig } from "../pools";
import type { AfterRecorded } from "../scaling/after-recorded";
import type { Store } from "../table";
import { type GitHubPollResult, pollGitHub } from "./github";
import { type GitLabPollResult, pollGitLab } from "./gitlab";
import { type Denial, type GovernorReport, type RateGovernorOptions, RateGovernors } from "./governor";
import { activeProjects, emptyPolledIngest, ingestPolledEvents, type PolledIngest } from "./ingest";
import { savePollReport } from "./report";
import {
  loadReconciliationState,
  type PollStates,
  type ReconciledForge,
  saveReconciliationState,
  withReconciliationLease,
} from "./state";

/**
 * One poll, as the scheduled function (and local mode's timer) runs it: for each configured forge,
 * under the forge's reconciliation lease, load the poll's cursors and the tokens' governors, list
 * what the forge has queued and running, record what was found through the webhooks' ingestion, and
 * only then save the cursors back (a delivery whose job was read is not read again, so its job must be
 * in the ledger first); then give each recorded job to the retries, and scale each newly queued job's
 * pool, as its webhook would have.
 */

export interface PollDeps {
  store: Store;
  ledger: Ledger;
  leases: Leases;
  journal: Journal;
  pools: readonly PoolConfig[];
  /** The App's client (made with `rateLimitRetries: 0`); absent when GitHub is not configured. */
  github?: { client: GitHubClient } | undefined;
  /**
   * GitLab's lists with the API token, the GitLab URL, and any scopes to poll beyond the pools'
   * (local mode's simulated GitLab); absent when no API token is configured.
   */
  gitlab?: { lists: GitLabLists; url: string; projects?: string[]; groups?: string[] } | undefined;
  /** The share of each token's budget reconciliation may spend (`reconciliation.budgetShare`). */
  budgetShare: number;
  /** Minutes between polls: each poll may spend its interval's part of the share at once. */
  pollMinutes: number;
  /** What a webhook's job goes through once recorded: its pool is asked for capacity. */
  scale(job: Job): Promise<AfterRecorded>;
  /**
   * What a webhook's recorded job goes through first: the retries (an interrupted job that failed is
   * retried, a re-run's job linked, a retry hold ended). Errors are the hook's to handle.
   */
  recorded?(job: Job): Promise<void>;
  /** This poll's name, its lease holder. */
  holder: string;
  now(): Date;
}

export interface PollTokenFigure {
  /** The rate bucket: `app:<id>`, `installation:<id>`, `token:…` or `gitlab`. */
  token: string;
  calls: number;
  /** Calls reconciliation may still make in the window, by its share. */
  shareLeft: number;
  /** What the forge last said is left of the whole budget. */
  forgeRemaining: number | null;
  limit: number;
  denied: Denial | null;
}

export interface PollForgeFigure {
  forge: ReconciledForge;
  /** `skipped`: another poll held the forge's lease. */
  status: "polled" | "skipped";
  calls: number;
  /** Listings of the forge this poll read (repositories or projects, and groups). */
  listings: number;
  /** Jobs of the forge that became demand through this poll. */
  queued: number;
  tokens: PollTokenFigure[];
}

export interface UnknownListing {
  forge: ReconciledForge;
  /** `deliveries`, a repository, `group <path>` or a project. */
  listing: string;
  reason: string;
}

export interface PollReport {
  at: string;
  calls: number;
  /** Jobs the listings showed (queued or running). */
  found: number;
  /** Of those, jobs the ledger learnt something new of (a webhook was missed, or is late). */
  recorded: number;
  /** Jobs that became demand through this poll: new, or newly queued. */
  queued: number;
  /** GitHub deliveries that had failed and were asked again. */
  redelivered: number;
  /** GitHub `workflow_job` deliveries that had failed and whose payload was read instead. */
  deliveriesRead: number;
  /** Pools asked for capacity for the queued jobs. */
  scaled: string[];
  forges: PollForgeFigure[];
  /** Listings that failed, were cut or not reached: the absence of a job there says nothing. */
  unknown: UnknownListing[];
}

/** Unknown listings kept in a report: past this, only their count says how many. */
const UNKNOWN_KEPT = 20;
const REASON_LENGTH = 300;

/** GitHub's REST budget: 5,000 an hour per installation (more for large ones, which the headers say). */
export const githubGovernorOptions = (share: number, pollMinutes: number, now: () => number) =>
  ({
    assumedLimit: 5000,
    windowSeconds: 3600,
    share,
    burst: Math.max(1, Math.ceil((5000 * share * pollMinutes) / 60)),
    now,
  }) satisfies RateGovernorOptions;

/**
 * GitLab.com's authenticated API budget is 2,000 a minute (self-managed instances say theirs in the
 * `RateLimit-*` headers, or set none): a poll may spend a whole minute's share at once.
 */
export const gitlabGovernorOptions = (share: number, now: () => number) =>
  ({
    assumedLimit: 2000,
    windowSeconds: 60,
    share,
    burst: Math.max(1, Math.floor(2000 * share)),
    now,
  }) satisfies RateGovernorOptions;

const tokenFigures = (budget: Record<string, GovernorReport>): PollTokenFigure[] =>
  Object.entries(budget)
    .map(([token, report]) => ({
      token,
      calls: report.calls,
      shareLeft: report.shareLeft,
      forgeRemaining: report.forgeRemaining ?? null,
      limit: report.limit,
      denied: report.denied ?? null,
    }))
    .sort((a, b) => a.token.localeCompare(b.token));

const short = (reason: string | undefined) => (reason ?? "unknown").slice(0, REASON_LENGTH);

/** The GitLab projects and groups to poll: the pools' scopes, and the projects the ledger says are active. */
async function gitlabScopes(
  deps: PollDeps,
  extra: { projects?: string[]; groups?: string[] },
): Promise<{ projects: string[]; groups: string[] }> {
  const groups = new Set(extra.groups ?? []);
  const projects = new Set(extra.projects ?? []);
  for (const pool of deps.pools) {
    if (pool.gitlab && "group" in pool.gitlab) groups.add(pool.gitlab.group);
    if (pool.gitlab && "project" in pool.gitlab) projects.add(pool.gitlab.project);
  }
  // An instance-wide pool has no scope to list: the projects with traffic stand for it. A project of
  // a polled group is listed with the group's.
  for (const project of await activeProjects(deps.ledger, "gitlab", deps.now())) {
    if (![...groups].some((group) => project.startsWith(`${group}/`))) projects.add(project);
  }
  return { projects: [...projects], groups: [...groups] };
}

/**
 * `poll` under the forge's reconciliation lease, from its stored cursors and governors; what it
 * leaves of both is stored back. Undefined when another run holds the lease.
 */
async function withStoredPoll<F extends ReconciledForge, R extends { state: PollStates[F] }>(
  deps: PollDeps,
  forge: F,
  options: RateGovernorOptions,
  poll: (governors: RateGovernors, state: PollStates[F]) => Promise<R>,
  ingest: (result: R) => Promise<void>,
): Promise<{ result: R } | undefined> {
  return withReconciliationLease(deps.leases, forge, deps.holder, async () => {
    const loaded = await loadReconciliationState(deps.store, forge);
    const governors = new RateGovernors(options);
    governors.restore(loaded.governors);
    const result = await poll(governors, loaded.poll);
    // Recorded before the cursors move on: should recording fail, the next poll reads it all again.
    await ingest(result);
    await saveReconciliationState(deps.store, loaded, {
      poll: result.state,
      governors: governors.snapshot(),
    });
    return { result };
  });
}

/** The events a GitHub poll found: its deliveries' and its repositories'. */
const githubEvents = (result: GitHubPollResult): JobEvent[] => [
  ...result.deliveries.events,
  ...result.repositories.flatMap((repository) => repository.events),
];

function pollGitHubForge(
  deps: PollDeps,
  client: GitHubClient,
  ingest: (events: JobEvent[]) => Promise<void>,
) {
  const now = () => deps.now().getTime();
  return withStoredPoll(
    deps,
    "github",
    githubGovernorOptions(deps.budgetShare, deps.pollMinutes, now),
    async (governors, state): Promise<GitHubPollResult> =>
      pollGitHub({
        client,
        governors,
        repositories: await activeProjects(deps.ledger, "github", deps.now()),
        state,
        now,
      }),
    (result) => ingest(githubEvents(result)),
  );
}

function pollGitLabForge(
  deps: PollDeps,
  gitlab: NonNullable<PollDeps["gitlab"]>,
  ingest: (events: JobEvent[]) => Promise<void>,
) {
  const now = () => deps.now().getTime();
  return withStoredPoll(
    deps,
    "gitlab",
    gitlabGovernorOptions(deps.budgetShare, now),
    async (governors, state): Promise<GitLabPollResult> => {
      const scopes = await gitlabScopes(deps, gitlab);
      return pollGitLab({
        lists: gitlab.lists,
        gitlabUrl: gitlab.url,
        // One token, one bucket.
        governor: governors.for("gitlab"),
        projects: scopes.projects,
        groups: scopes.groups,
        state,
        now,
      });
    },
    (result) => ingest(result.projects.flatMap((project) => project.events)),
  );
}

/** Polls every configured forge once; see the module's comment. */
export async function pollOnce(deps: PollDeps): Promise<PollReport> {
  const events: JobEvent[] = [];
  const forges: PollForgeFigure[] = [];
  const unknown: UnknownListing[] = [];
  let redelivered = 0;
  let deliveriesRead = 0;
  const ingested = emptyPolledIngest();
  const ingest = async (found: JobEvent[]) => {
    events.push(...found);
    const result = await ingestPolledEvents(deps.ledger, deps.pools, found);
    for (const outcome of Object.keys(result.outcomes) as (keyof PolledIngest["outcomes"])[])
      ingested.outcomes[outcome] += result.outcomes[outcome];
    ingested.recorded.push(...result.recorded);
    ingested.newlyQueued.push(...result.newlyQueued);
  };
  const skipped = (forge: ReconciledForge): PollForgeFigure => ({
    forge,
    status: "skipped",
    calls: 0,
    listings: 0,
    queued: 0,
    tokens: [],
  });

  if (deps.github) {
    const polled = await pollGitHubForge(deps, deps.github.client, ingest);
    if (!polled) forges.push(skipped("github"));
    else {
      const { result } = polled;
      const tokens = tokenFigures(result.budget);
      forges.push({
        forge: "github",
        status: "polled",
        calls: tokens.reduce((sum, token) => sum + token.calls, 0),
        listings: result.repositories.length,
        queued: 0,
        tokens,
      });
      redelivered += result.deliveries.redelivered.length;
      deliveriesRead += result.deliveries.read.length;
      if (result.deliveries.status === "unknown") {
        unknown.push({ forge: "github", listing: "deliveries", reason: short(result.deliveries.reason) });
      }
      for (const repository of result.repositories) {
        if (repository.status === "unknown") {
          unknown.push({ forge: "github", listing: repository.repository, reason: short(repository.reason) });
        }
      }
    }
  }
  if (deps.gitlab) {
    const polled = await pollGitLabForge(deps, deps.gitlab, ingest);
    if (!polled) forges.push(skipped("gitlab"));
    else {
      const { result } = polled;
      const tokens = tokenFigures({ gitlab: result.budget });
      forges.push({
        forge: "gitlab",
        status: "polled",
        calls: result.budget.calls,
        listings: result.groups.length + result.projects.length,
        queued: 0,
        tokens,
      });
      for (const group of result.groups) {
        if (group.status === "unknown") {
          unknown.push({ forge: "gitlab", listing: `group ${group.group}`, reason: short(group.reason) });
        }
      }
      for (const project of result.projects) {
        if (project.status === "unknown") {
          unknown.push({ forge: "gitlab", listing: project.project, reason: short(project.reason) });
        }
      }
    }
  }

  // As a webhook's path: the retries first (a re-run's job is linked before its pool plans for it).
  if (deps.recorded) for (const job of ingested.recorded) await deps.recorded(job);
  const scaled = new Set<string>();
  for (const job of ingested.newlyQueued) {
    const figure = forges.find((forge) => forge.forge === job.source);
    if (figure) figure.queued += 1;
    const outcome = await deps.scale(job);
    if (outcome.kind === "requested") scaled.add(outcome.pool);
  }
  const report: PollReport = {
    at: deps.now().toISOString(),
    calls: forges.reduce((sum, forge) => sum + forge.calls, 0),
    found: events.length,
    recorded: ingested.outcomes.recorded,
    queued: ingested.newlyQueued.length,
    redelivered,
    deliveriesRead,
    scaled: [...scaled].sort(),
    forges,
    unknown,
  };
  // Quiet polls are not journaled: one a minute would bury the fleet's decisions.
  if (
    report.recorded > 0 ||
    report.redelivered > 0 ||
    report.deliveriesRead > 0 ||
    report.unknown.length > 0
  ) {
    await deps.journal.write({
      pool: null,
      kind: "poll",
      reason: pollSentence(report),
      details: {
        ...pollFigures(report),
        ...(report.unknown[0]
          ? {
              firstUnknown: `${report.unknown[0].forge} ${report.unknown[0].listing}: ${report.unknown[0].reason}`,
            }
          : {}),
      },
    });
  }
  await savePollReport(
    deps.store,
    { ...report, unknown: report.unknown.slice(0, UNKNOWN_KEPT) },
    report.unknown.length,
  );
  return report;
}

/** A poll's figures, as its journal line and its log line give them. */
export const pollFigures = (report: PollReport) => ({
  calls: report.calls,
  found: report.found,
  recorded: report.recorded,
  queued: report.queued,
  redelivered: report.redelivered,
  deliveriesRead: report.deliveriesRead,
  unknown: report.unknown.length,
});

/** The journal's sentence for a poll. */
export function pollSentence(report: PollReport): string {
  const parts: string[] = [];
  if (report.queued > 0) {
    parts.push(
      `polling found ${report.queued} queued job${report.queued === 1 ? "" : "s"} no webhook had announced` +
        (report.scaled.length ? ` (asked ${report.scaled.join(", ")} for capacity)` : ""),
    );
  } else if (report.recorded > 0) {
    parts.push(
      `polling updated ${report.recorded} job${report.recorded === 1 ? "" : "s"} a webhook had missed`,
    );
  }
  if (report.deliveriesRead > 0) {
    parts.push(
      `read ${report.deliveriesRead} failed webhook${report.deliveriesRead === 1 ? "" : "s"} from GitHub's delivery log`,
    );
  }
  if (report.redelivered > 0) {
    parts.push(
      `asked GitHub to redeliver ${report.redelivered} failed webhook${report.redelivered === 1 ? "" : "s"}`,
    );
  }
  if (report.unknown.length > 0) {
    parts.push(
      `${report.unknown.length} listing${report.unknown.length === 1 ? " is" : "s are"} unknown this poll (${report.unknown[0]?.forge} ${report.unknown[0]?.listing}: ${report.unknown[0]?.reason})`,
    );
  }
  const sentence = parts.join("; ");
  return `${sentence.charAt(0).toUpperCase()}${sentence.slice(1)}.`.slice(0, 1000);
}
