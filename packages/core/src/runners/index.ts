import {
  describeScope,
  GitHubAuthError,
  GitHubRateLimited,
  type RunnerScope,
  runnerIdentity,
} from "../github-api";
import type { ScopeRunners } from "../github-api/runners";
import { type GitLabRunnerManagers, gitlabSystemId } from "../gitlab-api";
import type { InstanceRecord } from "../instances";
import type { JobKey } from "../jobs";
import type { Journal } from "../journal";
import type { PoolConfig } from "../pools";
import type { Removal, RunnerRecords, SlotRunner } from "./records";
import type { ReportedSlotRunnerState, RunnerViewState } from "./vocabulary";

/**
 * Runner identity, the control plane's half: each job slot of an instance in service gets one
 * ephemeral GitHub just-in-time runner at a time, minted when the instance's agent says the slot is
 * free, recorded before its config is handed over, and deleted by its recorded id when it has served
 * its job or its instance leaves service. Each GitLab instance is one runner manager of its pool's
 * runner, deleted when the instance is terminated. docs/PROTOCOL.md is the agent's side.
 */

export { createRunnerRecords, type Removal, type RunnerRecords, type SlotRunner } from "./records";
export * from "./vocabulary";
export { gitlabSystemId };

/** What the agent reports of a slot's runner in a v1 heartbeat. */
export interface SlotReport {
  slot: number;
  runnerId: number;
  state: ReportedSlotRunnerState;
  job?: JobKey | null | undefined;
}

/** What the heartbeat's answer tells the agent to pick up: never the config itself, only where it is. */
export interface RunnerConfigInstruction {
  slot: number;
  runnerId: number;
  name: string;
  parameter: string;
}

/** GitLab's side as core uses it: the pool runners' tokens, and deleting a manager. */
export interface GitLabRunnerPort {
  managers: GitLabRunnerManagers;
  /** The pool's runner authentication token (`glrt-…`), if the stage has one. A secret. */
  tokenOf(pool: string): string | undefined;
}

/** The fleet port's hand-over of runner configs (the AWS driver: SSM parameters tagged for the instance). */
export interface RunnerConfigHandOverPort {
  handRunnerConfig(handOver: {
    instanceId: string;
    slot: number;
    runnerId: number;
    encodedJitConfig: string;
  }): Promise<{ parameter: string; calls: string[] }>;
  withdrawRunnerConfig(parameter: string): Promise<string[]>;
}

export interface RunnerDeps {
  records: RunnerRecords;
  fleet: RunnerConfigHandOverPort;
  /** GitHub's runners API for a scope; undefined when no GitHub credentials are configured. */
  github: ((scope: RunnerScope) => ScopeRunners) | undefined;
  gitlab: GitLabRunnerPort | undefined;
  journal: Journal;
  now: () => Date;
  /** Told of each failure of the GitHub App to authenticate (AWS counts it in a metric with an alarm). */
  authFailed?: (error: GitHubAuthError, pool: string) => void;
  log?: {
    info?(message: string, fields?: Record<string, unknown>): void;
    warn(message: string, fields?: Record<string, unknown>): void;
  };
}

/**
 * A handed config the agent has not picked up after this long is taken back and the slot minted
 * again (the agent may have restarted and lost the instruction, or died).
 */
export const HANDED_TIMEOUT_MS = 10 * 60_000;

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Waits before a failed or busy deletion is tried again: a minute, doubling, at most 30 minutes. */
export function removalBackoffMs(attempts: number): number {
  return Math.min(60_000 * 2 ** Math.max(0, attempts - 1), 30 * 60_000);
}

async function owe(deps: RunnerDeps, removal: Removal, error: string | null): Promise<void> {
  const attempts = removal.attempts + 1;
  await deps.records.putRemoval({
    ...removal,
    attempts,
    retryAt: new Date(deps.now().getTime() + removalBackoffMs(attempts)).toISOString(),
    lastError: error,
  });
}

/** Deletes a GitHub runner by id; what cannot be deleted now (busy, or an error) is owed for later. */
async function deleteGitHubRunner(
  deps: RunnerDeps,
  runner: Pick<SlotRunner, "instanceId" | "pool" | "name" | "scope"> & { runnerId: number },
): Promise<"deleted" | "already-gone" | "owed"> {
  const removal: Removal = {
    forge: "github",
    runnerId: runner.runnerId,
    name: runner.name,
    scope: runner.scope,
    instanceId: runner.instanceId,
    pool: runner.pool,
    attempts: 0,
    retryAt: deps.now().toISOString(),
    lastError: null,
  };
  if (!deps.github) {
    await owe(deps, removal, "no GitHub credentials are configured");
    return "owed";
  }
  try {
    const result = await deps.github(runner.scope).deleteRunner(runner.runnerId);
    if (result !== "busy") return result;
    // GitHub refuses to delete a runner while it runs a job; it may be deleted after.
    await owe(deps, removal, "busy with a job");
  } catch (error) {
    if (error instanceof GitHubAuthError) deps.authFailed?.(error, runner.pool);
    await owe(deps, removal, message(error));
  }
  return "owed";
}

/**
 * Deletes a handed config. A failure is only logged: the parameter is readable by its instance alone,
 * and the runner it names is deleted (or owed) all the same.
 */
async function withdraw(deps: RunnerDeps, parameter: string, calls: string[]): Promise<void> {
  try {
    calls.push(...(await deps.fleet.withdrawRunnerConfig(parameter)));
  } catch (error) {
    deps.log?.warn("could not withdraw a runner config", { parameter, error: message(error) });
  }
}

/** Takes a slot's runner out of service: its config withdrawn, the runner deleted (or owed), the slot freed. */
async function retireSlot(deps: RunnerDeps, runner: SlotRunner, calls: string[]): Promise<void> {
  if (runner.parameter) await withdraw(deps, runner.parameter, calls);
  if (runner.runnerId !== null) {
    const result = await deleteGitHubRunner(deps, { ...runner, runnerId: runner.runnerId });
    calls.push(`DeleteRunner(name=${runner.name}, id=${runner.runnerId}) → ${result}`);
  }
  await deps.records.clear(runner.instanceId, runner.slot, runner.runnerId);
}

export interface TendInput {
  instance: Pick<InstanceRecord, "id" | "slots">;
  pool: PoolConfig;
  /** The slots' runners as the agent reported them (protocol 1). */
  reported: readonly SlotReport[];
  /** False while the instance drains or is warned of an interruption: no new runner then. */
  mayMint: boolean;
}

export interface TendResult {
  /** Every config handed over and not picked up yet, for the agent to pick up. */
  configs: RunnerConfigInstruction[];
  minted: number;
  retired: number;
}

/**
 * One heartbeat's worth of runner identity for an instance: learns from the agent which runners
 * listen, run, or have served their job; retires those that exited or vanished; mints a runner for
 * each free slot; and answers with the configs waiting to be picked up.
 */
export async function tendSlotRunners(deps: RunnerDeps, input: TendInput): Promise<TendResult> {
  const { instance, pool } = input;
  const now = deps.now();
  const calls: string[] = [];
  let retired = 0;
  const current = new Map((await deps.records.ofInstance(instance.id)).map((r) => [r.slot, r]));
  const reported = new Map(input.reported.map((report) => [report.slot, report]));

  for (const [slot, runner] of [...current]) {
    const report = reported.get(slot);
    if (report && runner.runnerId === report.runnerId) {
      if (report.state === "exited") {
        // An ephemeral runner serves one job; the slot gets a new runner.
        await retireSlot(deps, runner, calls);
        current.delete(slot);
        retired += 1;
        continue;
      }
      const job = report.state === "running" ? (report.job ?? null) : null;
      if (runner.state !== report.state || runner.parameter || runner.job?.id !== job?.id) {
        // Picked up: the config is consumed, and no one needs it any more.
        if (runner.parameter) await withdraw(deps, runner.parameter, calls);
        const next: SlotRunner = {
          ...runner,
          state: report.state,
          parameter: null,
          job,
          since: runner.state === report.state ? runner.since : now.toISOString(),
        };
        await deps.records.put(next);
        current.set(slot, next);
      }
      continue;
    }
    const age = now.getTime() - Date.parse(runner.since);
    const vanished = runner.state === "listening" || runner.state === "running";
    const neverPickedUp = runner.state === "handed" && age > HANDED_TIMEOUT_MS;
    if (vanished || neverPickedUp) {
      await retireSlot(deps, runner, calls);
      current.delete(slot);
      retired += 1;
    }
  }

  let minted = 0;
  const scope = pool.github;
  if (input.mayMint && scope && deps.github) {
    for (let slot = 0; slot < instance.slots; slot++) {
      if (current.has(slot)) continue;
      try {
        const runner = await mintSlot(deps, { instanceId: instance.id, slot, pool, scope }, calls);
        if (!runner) continue;
        current.set(slot, runner);
        minted += 1;
      } catch (error) {
        if (error instanceof GitHubAuthError) deps.authFailed?.(error, pool.name);
        await deps.journal.write({
          pool: pool.name,
          kind: "error",
          reason: `could not register a GitHub runner for ${instance.id} slot ${slot}: ${message(error)}`,
          details: { instance: instance.id, slot, scope: describeScope(scope) },
          calls,
        });
        // The same cause would fail the other slots too; the next heartbeat tries again.
        if (error instanceof GitHubAuthError || error instanceof GitHubRateLimited) break;
      }
    }
  }

  if (minted || retired) {
    // Routine, one per job: logged, not journaled, so that the status page's events stay decisions.
    deps.log?.info?.("runners tended", { instance: instance.id, pool: pool.name, minted, retired, calls });
  }

  const configs = [...current.values()]
    .filter((runner) => runner.state === "handed" && runner.parameter && runner.runnerId !== null)
    .sort((a, b) => a.slot - b.slot)
    .map((runner) => ({
      slot: runner.slot,
      runnerId: runner.runnerId as number,
      name: runner.name,
      parameter: runner.parameter as string,
    }));
  return { configs, minted, retired };
}

/** Mints a slot's runner: the slot taken, GitHub asked, the id recorded, then the config handed over. */
async function mintSlot(
  deps: RunnerDeps,
  input: { instanceId: string; slot: number; pool: PoolConfig; scope: RunnerScope },
  calls: string[],
): Promise<SlotRunner | null> {
  const { instanceId, slot, pool, scope } = input;
  const github = deps.github as (scope: RunnerScope) => ScopeRunners;
  const identity = runnerIdentity({ instanceId, slot, pool });
  const base = { instanceId, slot, pool: pool.name, name: identity.name, scope };
  if (!(await deps.records.claim(base))) return null;
  let jit: Awaited<ReturnType<ScopeRunners["generateJitConfig"]>>;
  try {
    jit = await github(scope).generateJitConfig({
      name: identity.name,
      labels: identity.labels,
      ...("runnerGroupId" in scope ? { runnerGroupId: scope.runnerGroupId } : {}),
    });
  } catch (error) {
    await deps.records.clear(instanceId, slot, null);
    throw error;
  }
  calls.push(`GenerateJitConfig(scope=${describeScope(scope)}, name=${identity.name}) → id ${jit.runnerId}`);
  // Recorded before the config leaves: a runner Hearth registered is never one it cannot delete.
  const recorded: SlotRunner = {
    ...base,
    runnerId: jit.runnerId,
    state: "minting",
    parameter: null,
    job: null,
    since: deps.now().toISOString(),
  };
  await deps.records.put(recorded);
  try {
    const handed = await deps.fleet.handRunnerConfig({
      instanceId,
      slot,
      runnerId: jit.runnerId,
      encodedJitConfig: jit.encodedJitConfig,
    });
    calls.push(...handed.calls);
    const runner: SlotRunner = {
      ...recorded,
      state: "handed",
      parameter: handed.parameter,
      since: deps.now().toISOString(),
    };
    await deps.records.put(runner);
    return runner;
  } catch (error) {
    await retireSlot(deps, recorded, calls);
    throw error;
  }
}

/**
 * An instance leaves service: stopped into the warm pool (its GitHub runners go; a stopped instance
 * holds no runner config) or terminated (its GitLab manager goes too). What cannot be deleted now is
 * owed and retried.
 */
export async function retireInstanceRunners(
  deps: RunnerDeps,
  input: { instanceId: string; pool: string; how: "stopped" | "terminated" },
): Promise<{ calls: string[]; retired: number }> {
  const calls: string[] = [];
  const runners = await deps.records.ofInstance(input.instanceId);
  for (const runner of runners) await retireSlot(deps, runner, calls);
  const token = input.how === "terminated" ? deps.gitlab?.tokenOf(input.pool) : undefined;
  if (token && deps.gitlab) {
    const systemId = gitlabSystemId(input.instanceId);
    const removal: Removal = {
      forge: "gitlab",
      systemId,
      instanceId: input.instanceId,
      pool: input.pool,
      attempts: 0,
      retryAt: deps.now().toISOString(),
      lastError: null,
    };
    try {
      const result = await deps.gitlab.managers.deleteManager(token, systemId);
      calls.push(`DeleteRunnerManager(system_id=${systemId}) → ${result}`);
    } catch (error) {
      await owe(deps, removal, message(error));
      calls.push(`DeleteRunnerManager(system_id=${systemId}) → owed`);
    }
  }
  if (calls.length) {
    await deps.journal.write({
      pool: input.pool,
      kind: "runner",
      reason: `${input.instanceId} ${input.how}: its runners retired`,
      details: { instance: input.instanceId, retired: runners.length },
      calls,
    });
  }
  return { calls, retired: runners.length };
}

/** Tries a pool's owed deletions whose time has come; each success forgets its removal. */
export async function retryRemovals(
  deps: RunnerDeps,
  pool: string,
  limit = 20,
): Promise<{ done: number; owed: number }> {
  let done = 0;
  let owed = 0;
  for (const removal of await deps.records.dueRemovals(pool, limit)) {
    try {
      if (removal.forge === "github") {
        if (!deps.github) throw new Error("no GitHub credentials are configured");
        const result = await deps.github(removal.scope).deleteRunner(removal.runnerId);
        if (result === "busy") throw new Error("busy with a job");
      } else {
        const token = deps.gitlab?.tokenOf(removal.pool);
        if (!token || !deps.gitlab) throw new Error(`no GitLab runner token for pool ${removal.pool}`);
        await deps.gitlab.managers.deleteManager(token, removal.systemId);
      }
      await deps.records.deleteRemoval(removal);
      done += 1;
    } catch (error) {
      if (error instanceof GitHubAuthError) deps.authFailed?.(error, removal.pool);
      await owe(deps, removal, message(error));
      owed += 1;
    }
  }
  return { done, owed };
}

/** A runner as `GET /api/status` lists it under its instance. */
export interface RunnerView {
  forge: "github" | "gitlab";
  runnerId: number | null;
  name: string;
  slot: number | null;
  state: RunnerViewState;
  job: JobKey | null;
  systemId?: string;
}

/** An instance's runners for the status: its slots' runners, deletions still owed, its GitLab manager. */
export function runnerViews(
  instanceId: string,
  slots: readonly SlotRunner[],
  removals: readonly Removal[],
  manager: { runnerId: number | null; systemId: string } | null,
): RunnerView[] {
  const views: RunnerView[] = [...slots]
    .sort((a, b) => a.slot - b.slot)
    .map((runner) => ({
      forge: "github",
      runnerId: runner.runnerId,
      name: runner.name,
      slot: runner.slot,
      state: runner.state,
      job: runner.job,
    }));
  for (const removal of removals) {
    if (removal.instanceId !== instanceId) continue;
    views.push(
      removal.forge === "github"
        ? {
            forge: "github",
            runnerId: removal.runnerId,
            name: removal.name,
            slot: null,
            state: "removing",
            job: null,
          }
        : {
            forge: "gitlab",
            runnerId: null,
            name: removal.systemId,
            slot: null,
            state: "removing",
            job: null,
            systemId: removal.systemId,
          },
    );
  }
  if (manager) {
    views.push({
      forge: "gitlab",
      runnerId: manager.runnerId,
      name: manager.systemId,
      slot: null,
      state: "registered",
      job: null,
      systemId: manager.systemId,
    });
  }
  return views;
}

/**
 * An instance is draining for good (a spot notice): the runners of its slots that run no job are
 * retired now, so that no new job lands on it; a slot running a job keeps its runner until the
 * instance is gone (GitHub refuses to delete a busy runner anyway).
 */
export async function retireIdleRunners(
  deps: RunnerDeps,
  input: { instanceId: string },
): Promise<{ calls: string[]; retired: number; kept: number }> {
  const calls: string[] = [];
  let retired = 0;
  let kept = 0;
  for (const runner of await deps.records.ofInstance(input.instanceId)) {
    if (runner.state === "running") {
      kept += 1;
      continue;
    }
    await retireSlot(deps, runner, calls);
    retired += 1;
  }
  return { calls, retired, kept };
}
