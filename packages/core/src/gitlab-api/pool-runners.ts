import type { GitLabRunnerAdmin, GitLabRunnerSummary, PoolRunnerSpec } from "./index";

/**
 * `npm run runners`: each pool's GitLab runner, created once and its token kept as a stage secret.
 * The GitLab calls and the secret store are ports, so that the decisions here are tested against a
 * fake GitLab and a fake `sst`.
 */

/** The stage's secrets (SST's): which are set, and setting one. Values are never read back. */
export interface StageSecrets {
  /** The names of the secrets that have a value for the stage. */
  names(): Promise<Set<string>>;
  /** Stores a secret's value; the value (a runner token) must not appear in any output. */
  set(name: string, value: string): Promise<void>;
}

export type PoolRunnerOutcome =
  | { pool: string; action: "created"; runnerId: number; secretName: string; replaced: number[] }
  | { pool: string; action: "would-create"; secretName: string; replaced: number[] }
  | {
      pool: string;
      action: "skipped";
      secretName: string;
      reason: string;
      /** Existing runners whose `maximum_timeout` was (or, in a dry run, would be) set to the pool's. */
      timeoutSet: number[];
    };

interface Planned {
  spec: PoolRunnerSpec;
  namespaceId: number | undefined;
  existing: GitLabRunnerSummary[];
  secretSet: boolean;
}

const where = (spec: PoolRunnerSpec, namespaceId: number | undefined): string =>
  "project" in spec.scope
    ? `project ${spec.scope.project} (${namespaceId})`
    : "group" in spec.scope
      ? `group ${spec.scope.group} (${namespaceId})`
      : "the instance";

function why(planned: Planned): string | undefined {
  const { spec, existing, secretSet } = planned;
  const runners = existing.map((runner) => runner.id).join(", ");
  if (secretSet && existing.length) {
    return `its runner exists (${runners}, "${spec.description}") and ${spec.secretName} is set`;
  }
  if (secretSet) return `${spec.secretName} is already set for the stage`;
  if (existing.length) {
    // GitLab shows a runner's token only when it is created: without the secret it cannot be recovered.
    return `a runner "${spec.description}" exists (${runners}) but ${spec.secretName} is not set; its token cannot be read back, so create a new one with --replace (and delete the old one in GitLab)`;
  }
  return undefined;
}

/**
 * Creates the runner of every pool in `specs` that has none yet, and stores each new token as the
 * pool's stage secret. Every pool is looked up first, so that an unknown project, group or a refused
 * token stops the run before anything is created. A pool whose runner exists (by description in its
 * scope, or by its secret being set) is skipped unless `replace`; a replaced runner stays registered
 * in GitLab for the instances that still use its token, and the report says so.
 */
export async function createPoolRunners(options: {
  specs: readonly PoolRunnerSpec[];
  admin: GitLabRunnerAdmin;
  secrets: StageSecrets;
  dryRun: boolean;
  replace: boolean;
  /** One line per decision, for the user; never a token. */
  report: (line: string) => void;
}): Promise<PoolRunnerOutcome[]> {
  const { specs, admin, secrets, report } = options;
  if (specs.length === 0) {
    report(
      'No pool says where its GitLab runner registers: give a pool "gitlab": { "project": "group/project" }',
    );
    return [];
  }
  // GitLab first: a refused token or an unknown path is the likeliest mistake, and says so fastest.
  const found: Omit<Planned, "secretSet">[] = [];
  for (const spec of specs) {
    const namespaceId = await admin.namespaceId(spec.scope);
    found.push({ spec, namespaceId, existing: await admin.existingRunners(spec, namespaceId) });
  }
  const setNames = await secrets.names();
  const plans: Planned[] = found.map((plan) => ({ ...plan, secretSet: setNames.has(plan.spec.secretName) }));

  const outcomes: PoolRunnerOutcome[] = [];
  for (const planned of plans) {
    const { spec, namespaceId } = planned;
    const reason = why(planned);
    if (reason !== undefined && !options.replace) {
      report(`${spec.pool}: skipped, ${reason} (--replace creates a new runner)`);
      const timeoutSet = await alignMaximumTimeout(planned, options);
      outcomes.push({ pool: spec.pool, action: "skipped", secretName: spec.secretName, reason, timeoutSet });
      continue;
    }
    const replaced = planned.existing.map((runner) => runner.id);
    const what =
      `a ${spec.runnerType} runner "${spec.description}" in ${where(spec, namespaceId)}, ` +
      `tags [${spec.tagList.join(", ")}], run_untagged ${spec.runUntagged}, maximum_timeout ${spec.maximumTimeout} s`;
    const leftOver = replaced.length
      ? `; the previous runner ${replaced.join(", ")} stays registered until you delete it in GitLab (instances still running with its token keep working)`
      : "";
    if (options.dryRun) {
      report(`${spec.pool}: would create ${what}, and set ${spec.secretName}${leftOver}`);
      outcomes.push({ pool: spec.pool, action: "would-create", secretName: spec.secretName, replaced });
      continue;
    }
    const created = await admin.createRunner(spec, namespaceId);
    try {
      await secrets.set(spec.secretName, created.token);
    } catch (error) {
      const cause = error instanceof Error ? error.message : String(error);
      throw new Error(
        `${spec.pool}: created runner ${created.id}, but could not set ${spec.secretName} (${cause.split(created.token).join("[redacted]")}); ` +
          `delete runner ${created.id} in GitLab and run again`,
      );
    }
    report(`${spec.pool}: created runner ${created.id}, ${what}, and set ${spec.secretName}${leftOver}`);
    outcomes.push({
      pool: spec.pool,
      action: "created",
      runnerId: created.id,
      secretName: spec.secretName,
      replaced,
    });
  }
  return outcomes;
}

/**
 * An existing runner of the pool ends jobs at the pool's `maxJobMinutes`: its `maximum_timeout` is
 * set when it differs (a runner created before the setting, or the setting changed). GitLab then
 * fails a longer job itself, with `job_execution_timeout`.
 */
async function alignMaximumTimeout(
  planned: Planned,
  options: { admin: GitLabRunnerAdmin; dryRun: boolean; report: (line: string) => void },
): Promise<number[]> {
  const { spec } = planned;
  const changed: number[] = [];
  for (const runner of planned.existing) {
    const current = await options.admin.maximumTimeout(runner.id);
    if (current === spec.maximumTimeout) continue;
    const what = `runner ${runner.id}'s maximum_timeout from ${current === null ? "none" : `${current} s`} to ${spec.maximumTimeout} s (maxJobMinutes ${spec.maximumTimeout / 60})`;
    if (options.dryRun) {
      options.report(`${spec.pool}: would set ${what}`);
    } else {
      await options.admin.setMaximumTimeout(runner.id, spec.maximumTimeout);
      options.report(`${spec.pool}: set ${what}`);
    }
    changed.push(runner.id);
  }
  return changed;
}
