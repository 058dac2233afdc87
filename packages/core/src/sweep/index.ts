import * as z from "zod";
import type { FleetPort } from "../fleet";
import type { GitLabLists } from "../gitlab-api/job-lists";
import type { InstanceRegistry } from "../instances";
import type { Journal } from "../journal";
import type { Ledger } from "../ledger";
import type { RateGovernor, RateGovernors } from "../polling/governor";
import type { PoolConfig } from "../pools";
import type { RetryDeps } from "../retries";
import type { RunnerDeps } from "../runners";
import type { SweepBudget } from "./governors";
import type { SweepMarks } from "./marks";

/**
 * The sweep: a three-way reconciliation of the ledger, the cloud and the forges, run by a Step
 * Functions workflow (Survey → Act on each due action → Finish). Every destructive action is
 * two-phase: one sweep marks the thing, a later sweep reads it once more, fresh, and only then acts.
 * A sweep whose listings are not all complete marks and acts on nothing.
 */

export { createSweepMarks, type SweepMark, type SweepMarks } from "./marks";

export const sweepClasses = [
  "ghost-runner",
  "orphan-instance",
  "stuck-job",
  "stale-job",
  "offline-manager",
] as const;
export type SweepClass = (typeof sweepClasses)[number];

/** Why the sweep marks, acts on, clears or refuses a thing: the journal's reason code. */
export const sweepReasons = [
  /** A GitHub runner of Hearth's name whose instance is not live (gone, or not in the cloud at all). */
  "no-live-instance",
  /** An instance that has not sent a heartbeat within the boot deadline (since its launch or last beat). */
  "no-heartbeat-past-boot-deadline",
  /** A job running in the ledger on an instance that no longer exists. */
  "instance-gone",
  /** A job running in the ledger longer than its forge lets a job run. */
  "silent-past-forge-timeout",
  /** A job running in the ledger that its live instance no longer reports. */
  "not-reported-by-instance",
  /** A job first seen in a heartbeat whose forge has no record of it finishing, long past its timeout. */
  "never-finished",
  /** A job the ledger holds as running that its forge has no record of. */
  "unknown-to-forge",
  /** A GitLab runner manager of an instance that no longer exists. */
  "manager-of-gone-instance",
] as const;
export type SweepReason = (typeof sweepReasons)[number];

/** One thing the sweep would act on; plain JSON (it travels through Step Functions). */
export interface SweepAction {
  class: SweepClass;
  /** What it is: `github-runner:<scope>:<runnerId>`, `instance:<i-…>`, `job:<source>#<id>`, `gitlab-manager:<pool>:<systemId>`. */
  subject: string;
  pool: string | null;
  reason: SweepReason;
  /** What the action needs to redo its single fresh read and act (ids, scope, instance id …). */
  detail: Record<string, string | number | null>;
  /** When an earlier sweep first marked it. */
  markedAt: string;
}

export interface SweepSurvey {
  sweepId: string;
  /** false when any listing failed, was cut short or was rate-limited: then `due` is empty. */
  complete: boolean;
  unknown: { listing: string; reason: string }[];
  /** New marks this sweep made, per class. */
  marked: Record<SweepClass, number>;
  /** Marks from earlier sweeps that still hold: the actions the Act step takes (each one by one). */
  due: SweepAction[];
  /** Marks dropped because the thing no longer qualifies. */
  cleared: number;
  /** Non-destructive fixes done during the survey (stuck jobs read from the forge and applied). */
  applied: number;
  dryRun: boolean;
}

const detailValue = z.union([z.string().max(2000), z.number(), z.null()]);

/** A `SweepAction` as the Act step receives it (its input is JSON from the workflow): checked before use. */
export const sweepActionSchema = z.strictObject({
  class: z.enum(sweepClasses),
  subject: z.string().min(1).max(500),
  pool: z.string().max(200).nullable(),
  reason: z.enum(sweepReasons),
  detail: z.record(z.string().max(100), detailValue),
  markedAt: z.string().max(40),
});

/** A sweep's id as the workflow passes it (its execution name): checked before anything is read. */
export function checkSweepId(sweepId: unknown, step: string): string {
  if (typeof sweepId !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/.test(sweepId))
    throw new Error(`${step}: ${JSON.stringify(sweepId)?.slice(0, 80)} is not a sweep id`);
  return sweepId;
}

export type SweepActOutcome =
  /** Deleted, terminated or closed. */
  | { kind: "done"; action: SweepAction; calls: string[] }
  /** The fresh read says it no longer qualifies. */
  | { kind: "cleared"; action: SweepAction; why: string }
  | { kind: "dry-run"; action: SweepAction }
  /** E.g. the runner is busy, the forge has not ended a job, the forge refused. */
  | { kind: "refused"; action: SweepAction; why: string };

/** GitLab's API with the API token (the one polling lists with): pool runners' managers, one job. */
export interface SweepGitLab {
  lists: GitLabLists;
  /** The GitLab URL (`https://gitlab.example.com`), to read jobs' projects. */
  url: string;
}

/** The forge calls' rate governors, per token: the same objects polling uses where the host can share them. */
export interface SweepGovernors {
  /** By GitHub rate bucket (an App installation, or a token): `ScopeRunners.bucket()`. */
  github: RateGovernors;
  /** GitLab's API token. */
  gitlab: RateGovernor;
}

export interface SweepDeps {
  pools: readonly PoolConfig[];
  ledger: Ledger;
  registry: InstanceRegistry;
  journal: Journal;
  /** Both groups and the warm pool (`observe`), instances tagged for a pool that no group holds (`tagged`). */
  fleet: FleetPort;
  /**
   * Runner identity: the slot runners' records and removals, GitHub's runners per scope (listing,
   * one runner, deleting, reading a job), and GitLab's managers (deleting, with the pools' tokens).
   */
  runners: RunnerDeps;
  /** GitLab's API with the API token; undefined when none is configured (a GitLab pool's managers are then unknown). */
  gitlab: SweepGitLab | undefined;
  /** The two-phase marks (DynamoDB: pk `SWEEP`, sk `MARK#<subject>`). */
  marks: SweepMarks;
  governors: SweepGovernors;
  /**
   * The budget shared with polling (`storedSweepBudget`): the survey runs under the forges'
   * reconciliation leases with the stored governors. Absent: the governors alone (tests).
   */
  budget?: SweepBudget | undefined;
  /** A stuck job the forge ended as failed is retried as an interrupted job when this says so; absent: never. */
  retries?: RetryDeps | undefined;
  settings: { dryRun: boolean };
  now: () => Date;
}

export { sweepAct } from "./act";
export { sweepFinish } from "./finish";
export { createSweepGovernors, SWEEP_LEASE_SECONDS, type SweepBudget, storedSweepBudget } from "./governors";
export { sweepSurvey } from "./survey";
