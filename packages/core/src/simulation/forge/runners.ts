import { createHash, randomBytes, randomUUID } from "node:crypto";
import { hearthRunnerPrefix } from "../../github-api";
import type { Source } from "../../jobs/vocabulary";

/**
 * The runners of local mode's simulated forges: a GitHub's self-hosted runners per repository or
 * organization, and a GitLab's runners with their managers. Local mode serves them over HTTP as the
 * forges' APIs (`/sim/github`, `/sim/gitlab/api/v4`), and its simulated instances use them in-process
 * to start runners and take jobs. The forge, not the agent, checks the hand-off: a GitHub runner starts
 * only with a config minted here for its own instance and slot, once; a GitLab job goes only to a
 * registered manager of a runner whose tags allow it. The state is plain data (`snapshot`/`restore`)
 * so that `--data` keeps it across a restart. A JIT config is kept only as its digest.
 */

/** Where GitHub runners register; a core `RunnerScope` fits (its runner group is the request's). */
export type SimGitHubScope = { repository: string } | { organization: string };

/** A refusal in GitHub's terms: the HTTP status and GitHub's message (and `errors` for a 422). */
export interface GitHubRefusal {
  ok: false;
  status: 404 | 422;
  message: string;
  errors?: string[];
}

export type GitHubAnswer<T> = { ok: true; value: T } | GitHubRefusal;

/** A runner as GitHub's API shows it (`#/components/schemas/runner`). */
export interface GitHubRunnerShape {
  id: number;
  name: string;
  os: string;
  status: "online" | "offline";
  busy: boolean;
  ephemeral: boolean;
  runner_group_id: number;
  labels: Array<{ id: number; name: string; type: "read-only" | "custom" }>;
}

/** What `POST …/actions/runners/generate-jitconfig` takes. */
export interface JitConfigBody {
  name: string;
  labels: readonly string[];
  runner_group_id: number;
  work_folder?: string;
}

export interface JobRef {
  source: Source;
  id: string;
}

/** A GitHub runner as the simulation sees it, beyond what the API shows. */
export interface SimGitHubRunner {
  id: number;
  /** `owner/name` or the organization, lower-cased. */
  scope: string;
  name: string;
  labels: string[];
  runnerGroupId: number;
  /** Started by this instance's slot with its config; null until then. */
  startedBy: { instanceId: string; slot: number } | null;
  /** The job it runs; null while it listens or before it starts. */
  job: JobRef | null;
  /** Its listener stopped without a job (the machine stopped): offline, still registered. */
  stopped: boolean;
}

export type StartRefusal =
  /** Not a config this forge minted (or one so old that the forge forgot it). */
  | "unknown-config"
  /** The config was used before: a JIT config is consumed once. */
  | "config-used"
  /** The config's runner was deleted. */
  | "runner-gone"
  /** The config's runner is another instance's or another slot's. */
  | "wrong-slot";

export type TakeRefusal = "unknown-runner" | "not-started" | "stopped" | "busy";

/** A simulated GitHub runner's life, or why the forge refused a step of it. */
export type RunnerStep<R> = { ok: true; runner: SimGitHubRunner } | { ok: false; reason: R; message: string };

/** GitHub keeps at most this many runners in a scope (it limits a runner group to 10,000). */
export const MAX_GITHUB_RUNNERS_PER_SCOPE = 10_000;
/** Configs of deleted runners remembered, so that a late start is told "runner-gone". */
export const MAX_RETIRED_CONFIGS = 10_000;

const readOnlyLabels = new Set(["self-hosted", "linux", "x64", "arm64", "arm"]);

interface GitHubRecord {
  id: number;
  scope: string;
  name: string;
  labels: string[];
  runnerGroupId: number;
  workFolder: string;
  startedBy: { instanceId: string; slot: number } | null;
  job: JobRef | null;
  stopped: boolean;
}

export interface GitHubRunnersSnapshot {
  nextRunnerId: number;
  labelIds: Record<string, number>;
  runners: GitHubRecord[];
  /** sha256 of each config minted, with its runner and whether a runner started with it. */
  configs: Array<{ digest: string; runnerId: number; used: boolean }>;
}

const scopeKey = (scope: SimGitHubScope): string =>
  ("repository" in scope ? scope.repository : scope.organization).toLowerCase();

const digestOf = (config: string): string => createHash("sha256").update(config).digest("hex");

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64");

/** The runner's name for a slot, as `runnerIdentity` builds it. */
export const slotRunnerName = (instanceId: string, slot: number): string =>
  `${hearthRunnerPrefix}${instanceId}-${slot}`;

export class SimulatedGitHubRunners {
  private nextRunnerId = 1;
  private labelIds = new Map<string, number>();
  private runners = new Map<number, GitHubRecord>();
  private configs = new Map<string, { runnerId: number; used: boolean }>();
  /** Per scope, its runners' ids by lower-cased name: GitHub's names are unique per scope. */
  private names = new Map<string, Map<string, number>>();
  /** Configs whose runner was deleted. */
  private retired = 0;

  constructor(private readonly changed: () => void = () => {}) {}

  /**
   * `POST …/actions/runners/generate-jitconfig`: registers an ephemeral runner (offline until an
   * instance starts it) and returns it with its config, an opaque base64 string holding a random key.
   * A name already in the scope is GitHub's 422 "Already exists"; a repository has only group 1.
   */
  generateJitConfig(
    scope: SimGitHubScope,
    body: JitConfigBody,
  ): GitHubAnswer<{ runner: GitHubRunnerShape; encoded_jit_config: string }> {
    const invalid = validateJitBody(body);
    if (invalid) return { ok: false, status: 422, message: "Validation Failed", errors: [invalid] };
    if ("repository" in scope && body.runner_group_id !== 1) {
      return { ok: false, status: 404, message: "Not Found" };
    }
    const key = scopeKey(scope);
    const names = this.namesOf(key);
    if (names.has(body.name.toLowerCase())) {
      return {
        ok: false,
        status: 422,
        message: "Validation Failed",
        errors: [`Already exists - A runner with the name ${body.name} already exists.`],
      };
    }
    if (names.size >= MAX_GITHUB_RUNNERS_PER_SCOPE) {
      return {
        ok: false,
        status: 422,
        message: "Validation Failed",
        errors: [`${key} has ${MAX_GITHUB_RUNNERS_PER_SCOPE} runners, the most it may have`],
      };
    }
    const record: GitHubRecord = {
      id: this.nextRunnerId++,
      scope: key,
      name: body.name,
      labels: [...new Set(body.labels)],
      runnerGroupId: body.runner_group_id,
      workFolder: body.work_folder ?? "_work",
      startedBy: null,
      job: null,
      stopped: false,
    };
    for (const label of record.labels) {
      if (!this.labelIds.has(label.toLowerCase()))
        this.labelIds.set(label.toLowerCase(), this.labelIds.size + 1);
    }
    // GitHub's is base64 of the runner's files (.runner, .credentials, its RSA key); so is this one.
    const encoded = b64({
      ".runner": b64({
        agentId: record.id,
        agentName: record.name,
        poolId: record.runnerGroupId,
        gitHubUrl: `https://github.com/${key}`,
        workFolder: record.workFolder,
        ephemeral: true,
      }),
      ".credentials": b64({ scheme: "OAuth", data: { clientId: randomUUID() } }),
      ".credentials_rsaparams": b64({ key: randomBytes(32).toString("base64") }),
    });
    this.runners.set(record.id, record);
    names.set(record.name.toLowerCase(), record.id);
    this.configs.set(digestOf(encoded), { runnerId: record.id, used: false });
    this.changed();
    return { ok: true, value: { runner: this.shape(record), encoded_jit_config: encoded } };
  }

  /** `GET …/actions/runners`: the scope's runners, by name if given, a page at a time (GitHub's 30 by default, at most 100). */
  listRunners(
    scope: SimGitHubScope,
    query: { name?: string; perPage?: number; page?: number } = {},
  ): { total_count: number; runners: GitHubRunnerShape[] } {
    const perPage = Math.min(Math.max(query.perPage ?? 30, 1), 100);
    const page = Math.max(query.page ?? 1, 1);
    const matching = this.inScope(scopeKey(scope)).filter(
      (runner) => query.name === undefined || runner.name.toLowerCase() === query.name.toLowerCase(),
    );
    return {
      total_count: matching.length,
      runners: matching.slice((page - 1) * perPage, page * perPage).map((runner) => this.shape(runner)),
    };
  }

  /** `GET …/actions/runners/{id}`: 404 for a runner not in this scope. */
  getRunner(scope: SimGitHubScope, runnerId: number): GitHubAnswer<GitHubRunnerShape> {
    const record = this.runners.get(runnerId);
    if (!record || record.scope !== scopeKey(scope)) return { ok: false, status: 404, message: "Not Found" };
    return { ok: true, value: this.shape(record) };
  }

  /** `DELETE …/actions/runners/{id}`: deleted (204), 404 for a runner not in this scope, 422 while it runs a job. */
  deleteRunner(scope: SimGitHubScope, runnerId: number): GitHubAnswer<null> {
    const record = this.runners.get(runnerId);
    if (!record || record.scope !== scopeKey(scope)) return { ok: false, status: 404, message: "Not Found" };
    if (record.job) {
      return {
        ok: false,
        status: 422,
        message: `Bad request - Runner ${record.name} is still running a job.`,
      };
    }
    this.remove(record.id);
    return { ok: true, value: null };
  }

  /**
   * An instance's slot starts `Runner.Listener` with a config it was handed. Succeeds only for a
   * config minted here, not used before, whose runner still exists and is named
   * `hearth-<instanceId>-<slot>`; the config is then consumed and the runner online. A refusal changes
   * nothing.
   */
  startRunner(input: {
    encodedJitConfig: string;
    instanceId: string;
    slot: number;
  }): RunnerStep<StartRefusal> {
    const config = this.configs.get(digestOf(input.encodedJitConfig));
    if (!config) return refuse("unknown-config", "the config was not minted by this forge");
    if (config.used) return refuse("config-used", `the config of runner ${config.runnerId} was used before`);
    const record = this.runners.get(config.runnerId);
    if (!record) return refuse("runner-gone", `runner ${config.runnerId} was deleted`);
    const expected = slotRunnerName(input.instanceId, input.slot);
    if (record.name !== expected) {
      return refuse("wrong-slot", `runner ${record.id} is ${record.name}, not ${expected}`);
    }
    config.used = true;
    record.startedBy = { instanceId: input.instanceId, slot: input.slot };
    this.changed();
    return { ok: true, runner: view(record) };
  }

  /** A started, idle runner takes a job (GitHub assigns it); busy until `finishJob`. */
  takeJob(runnerId: number, job: JobRef): RunnerStep<TakeRefusal> {
    const record = this.runners.get(runnerId);
    if (!record) return refuse("unknown-runner", `runner ${runnerId} does not exist`);
    if (!record.startedBy) return refuse("not-started", `runner ${runnerId} was never started`);
    if (record.stopped) return refuse("stopped", `runner ${runnerId} stopped listening`);
    if (record.job) return refuse("busy", `runner ${runnerId} runs job ${record.job.id}`);
    record.job = { source: job.source, id: job.id };
    this.changed();
    return { ok: true, runner: view(record) };
  }

  /** The runner's job ended: an ephemeral runner serves one job, so GitHub deletes it. */
  finishJob(runnerId: number): RunnerStep<"unknown-runner" | "no-job"> {
    const record = this.runners.get(runnerId);
    if (!record) return refuse("unknown-runner", `runner ${runnerId} does not exist`);
    if (!record.job) return refuse("no-job", `runner ${runnerId} runs no job`);
    this.remove(runnerId);
    return { ok: true, runner: view(record) };
  }

  /**
   * The runner's machine went away (stopped, terminated, interrupted). An idle runner goes offline
   * and stays registered until deleted, as GitHub keeps it; one that ran a job loses the job and is
   * removed, as GitHub removes an ephemeral runner whose job ended. Unknown ids are ignored.
   */
  stopRunner(runnerId: number): void {
    const record = this.runners.get(runnerId);
    if (!record) return;
    if (record.job) this.remove(runnerId);
    else {
      record.stopped = true;
      this.changed();
    }
  }

  /** One runner by id, whatever its scope. */
  runner(runnerId: number): SimGitHubRunner | undefined {
    const record = this.runners.get(runnerId);
    return record ? view(record) : undefined;
  }

  /** The runner a slot started, if it still exists (the newest, should there be several). */
  runnerOf(instanceId: string, slot: number): SimGitHubRunner | undefined {
    const started = [...this.runners.values()].filter(
      (runner) => runner.startedBy?.instanceId === instanceId && runner.startedBy.slot === slot,
    );
    const record = started[started.length - 1];
    return record ? view(record) : undefined;
  }

  /** Every runner, or a scope's. */
  all(scope?: SimGitHubScope): SimGitHubRunner[] {
    const records = scope ? this.inScope(scopeKey(scope)) : [...this.runners.values()];
    return records.map(view);
  }

  snapshot(): GitHubRunnersSnapshot {
    return {
      nextRunnerId: this.nextRunnerId,
      labelIds: Object.fromEntries(this.labelIds),
      runners: [...this.runners.values()].map((record) => structuredClone(record)),
      configs: [...this.configs].map(([digest, config]) => ({ digest, ...config })),
    };
  }

  /** Replaces the state with a snapshot's. */
  restore(snapshot: GitHubRunnersSnapshot): void {
    this.nextRunnerId = snapshot.nextRunnerId;
    this.labelIds = new Map(Object.entries(snapshot.labelIds));
    this.runners = new Map(snapshot.runners.map((record) => [record.id, structuredClone(record)]));
    this.configs = new Map(
      snapshot.configs.map(({ digest, runnerId, used }) => [digest, { runnerId, used }]),
    );
    this.names = new Map();
    for (const record of this.runners.values())
      this.namesOf(record.scope).set(record.name.toLowerCase(), record.id);
    this.retired = [...this.configs.values()].filter((config) => !this.runners.has(config.runnerId)).length;
  }

  private namesOf(key: string): Map<string, number> {
    let names = this.names.get(key);
    if (!names) {
      names = new Map();
      this.names.set(key, names);
    }
    return names;
  }

  private inScope(key: string): GitHubRecord[] {
    return [...(this.names.get(key)?.values() ?? [])]
      .map((id) => this.runners.get(id))
      .filter((record): record is GitHubRecord => record !== undefined)
      .sort((a, b) => a.id - b.id);
  }

  private remove(runnerId: number): void {
    const record = this.runners.get(runnerId);
    if (!record) return;
    this.runners.delete(runnerId);
    this.names.get(record.scope)?.delete(record.name.toLowerCase());
    // Each runner was minted here with one config, which now is retired.
    this.retired++;
    // Configs of deleted runners are kept, up to a bound, to tell a late start why it is refused.
    for (const [digest, config] of this.configs) {
      if (this.retired <= MAX_RETIRED_CONFIGS) break;
      if (this.runners.has(config.runnerId)) continue;
      this.configs.delete(digest);
      this.retired--;
    }
    this.changed();
  }

  private shape(record: GitHubRecord): GitHubRunnerShape {
    return {
      id: record.id,
      name: record.name,
      // GitHub says "unknown" until the runner first connects.
      os: record.startedBy ? "Linux" : "unknown",
      status: record.startedBy && !record.stopped ? "online" : "offline",
      busy: record.job !== null,
      ephemeral: true,
      runner_group_id: record.runnerGroupId,
      labels: record.labels.map((name) => ({
        id: this.labelIds.get(name.toLowerCase()) ?? 0,
        name,
        type: readOnlyLabels.has(name.toLowerCase()) ? "read-only" : "custom",
      })),
    };
  }
}

function refuse<R extends string>(reason: R, message: string): { ok: false; reason: R; message: string } {
  return { ok: false, reason, message };
}

function view(record: GitHubRecord): SimGitHubRunner {
  return {
    id: record.id,
    scope: record.scope,
    name: record.name,
    labels: [...record.labels],
    runnerGroupId: record.runnerGroupId,
    startedBy: record.startedBy ? { ...record.startedBy } : null,
    job: record.job ? { ...record.job } : null,
    stopped: record.stopped,
  };
}

/** What GitHub validates of a generate-jitconfig body, in its own words where it has them. */
function validateJitBody(body: JitConfigBody): string | undefined {
  if (typeof body.name !== "string" || body.name.trim() === "") return "name is missing";
  if (body.name.length > 64) return "name is longer than 64 characters";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it refuses.
  if (/[\u0000-\u001f\u007f]/.test(body.name)) return "name has control characters";
  if (!Number.isInteger(body.runner_group_id) || body.runner_group_id < 1)
    return "runner_group_id is not a runner group id";
  if (!Array.isArray(body.labels) || body.labels.length < 1 || body.labels.length > 100)
    return "labels must have from 1 to 100 items";
  if (body.labels.some((label) => typeof label !== "string" || label.trim() === "" || label.length > 256))
    return "each label is a string of 1 to 256 characters";
  if (body.work_folder !== undefined && (typeof body.work_folder !== "string" || body.work_folder === ""))
    return "work_folder is not a folder";
  return undefined;
}

// GitLab

export type GitLabRunnerType = "instance_type" | "group_type" | "project_type";

/** What `POST /user/runners` takes (tag_list already split). */
export interface CreateRunnerBody {
  runner_type: GitLabRunnerType;
  group_id?: number;
  project_id?: number;
  description?: string;
  paused?: boolean;
  locked?: boolean;
  run_untagged?: boolean;
  tag_list?: readonly string[];
  access_level?: "not_protected" | "ref_protected";
  maximum_timeout?: number;
  maintenance_note?: string;
}

/** A refusal in GitLab's terms: the HTTP status and GitLab's `message`. */
export interface GitLabRefusal {
  ok: false;
  status: 400 | 403 | 404 | 422;
  message: string;
}

export type GitLabAnswer<T> = { ok: true; value: T } | GitLabRefusal;

/** GitLab's answer to `POST /user/runners` and `POST /runners/verify`. */
export interface RunnerRegistration {
  id: number;
  token: string;
  token_expires_at: string | null;
}

/** A runner manager as `GET /runners/:id/managers` shows it. */
export interface GitLabManagerShape {
  id: number;
  system_id: string;
  version: string | null;
  revision: string | null;
  platform: string | null;
  architecture: string | null;
  created_at: string;
  contacted_at: string | null;
  ip_address: string | null;
  status: "online" | "offline";
}

/** A GitLab runner as the simulation sees it. Its token is not in it: ask `tokenOf`. */
export interface SimGitLabRunner {
  id: number;
  description: string;
  tagList: string[];
  runUntagged: boolean;
  runnerType: GitLabRunnerType;
  paused: boolean;
  /** The pool it was made for, if local mode made it. */
  pool: string | null;
  managers: string[];
  /** Seconds GitLab lets its jobs run at most; null: no limit of the runner's. */
  maximumTimeout: number | null;
}

/** `GET /runners/:id` and `PUT /runners/:id`: a runner's details (the fields Hearth reads). */
export interface GitLabRunnerDetails {
  id: number;
  description: string;
  runner_type: GitLabRunnerType;
  paused: boolean;
  tag_list: string[];
  run_untagged: boolean;
  locked: boolean;
  maximum_timeout: number | null;
}

export type TakeJobRefusal = "unknown-token" | "unknown-manager" | "paused" | "tags";

interface GitLabRecord {
  id: number;
  token: string;
  description: string;
  tagList: string[];
  runUntagged: boolean;
  runnerType: GitLabRunnerType;
  groupId: number | null;
  projectId: number | null;
  paused: boolean;
  locked: boolean;
  createdAt: string;
  pool: string | null;
  managers: Array<{ id: number; systemId: string; createdAt: string; contactedAt: string }>;
  /** Absent in a snapshot from before it was kept: none. */
  maximumTimeout?: number | null;
}

export interface GitLabRunnersSnapshot {
  nextRunnerId: number;
  nextManagerId: number;
  runners: GitLabRecord[];
}

/** Runners a simulated GitLab keeps (`POST /user/runners` may make more); managers per runner. */
export const MAX_GITLAB_RUNNERS = 1_000;
export const MAX_MANAGERS_PER_RUNNER = 10_000;
/** GitLab shows a manager online while it contacted GitLab within the last two hours. */
const ONLINE_MS = 2 * 3600_000;

const gitlabToken = (): string => `glrt-${randomBytes(20).toString("base64url")}`;

export class SimulatedGitLabRunners {
  private nextRunnerId = 1;
  private nextManagerId = 1;
  private runners = new Map<number, GitLabRecord>();

  constructor(
    private readonly now: () => number,
    private readonly changed: () => void = () => {},
  ) {}

  /**
   * `POST /user/runners`: a runner and its authentication token (`glrt-…`, no expiry). A group runner
   * needs `group_id`, a project runner `project_id`.
   */
  createRunner(body: CreateRunnerBody, pool: string | null = null): GitLabAnswer<RunnerRegistration> {
    const invalid = validateCreateBody(body);
    if (invalid) return { ok: false, status: 400, message: `400 Bad request - ${invalid}` };
    if (this.runners.size >= MAX_GITLAB_RUNNERS) {
      return { ok: false, status: 400, message: `400 Bad request - at most ${MAX_GITLAB_RUNNERS} runners` };
    }
    const record: GitLabRecord = {
      id: this.nextRunnerId++,
      token: gitlabToken(),
      description: body.description ?? "",
      tagList: [...new Set((body.tag_list ?? []).map((tag) => tag.trim()).filter(Boolean))],
      runUntagged: body.run_untagged ?? true,
      runnerType: body.runner_type,
      groupId: body.group_id ?? null,
      projectId: body.project_id ?? null,
      paused: body.paused ?? false,
      locked: body.locked ?? false,
      createdAt: new Date(this.now()).toISOString(),
      pool,
      managers: [],
      maximumTimeout: body.maximum_timeout ?? null,
    };
    this.runners.set(record.id, record);
    this.changed();
    return { ok: true, value: { id: record.id, token: record.token, token_expires_at: null } };
  }

  /**
   * The pool's runner, made once: tagged with the pool's labels, taking untagged jobs if the pool
   * does. Later calls return the same runner, whatever they pass.
   */
  poolRunner(
    pool: string,
    options: { tagList: readonly string[]; runUntagged: boolean },
  ): RunnerRegistration {
    const existing = [...this.runners.values()].find((runner) => runner.pool === pool);
    if (existing) return { id: existing.id, token: existing.token, token_expires_at: null };
    const made = this.createRunner(
      {
        runner_type: "instance_type",
        description: `hearth ${pool}`,
        tag_list: options.tagList,
        run_untagged: options.runUntagged,
      },
      pool,
    );
    if (!made.ok) throw new Error(`the simulated GitLab cannot make ${pool}'s runner: ${made.message}`);
    return made.value;
  }

  /** The authentication token of the pool's runner, if it has one. A secret. */
  tokenOf(pool: string): string | undefined {
    return [...this.runners.values()].find((runner) => runner.pool === pool)?.token;
  }

  /**
   * `POST /runners/verify`: the runner of a token (403 for a token GitLab does not know). With a
   * `system_id`, as gitlab-runner sends when it starts, that manager is registered (or its contact
   * time renewed).
   */
  verify(token: string, systemId?: string): GitLabAnswer<RunnerRegistration> {
    const record = this.byToken(token);
    if (!record) return { ok: false, status: 403, message: "403 Forbidden" };
    if (systemId !== undefined) {
      const invalid = validateSystemId(systemId);
      if (invalid) return { ok: false, status: 400, message: `400 Bad request - ${invalid}` };
      const now = new Date(this.now()).toISOString();
      const manager = record.managers.find((item) => item.systemId === systemId);
      if (manager) manager.contactedAt = now;
      else {
        if (record.managers.length >= MAX_MANAGERS_PER_RUNNER) {
          return {
            ok: false,
            status: 400,
            message: `400 Bad request - runner ${record.id} has too many managers`,
          };
        }
        record.managers.push({ id: this.nextManagerId++, systemId, createdAt: now, contactedAt: now });
      }
      this.changed();
    }
    return { ok: true, value: { id: record.id, token: record.token, token_expires_at: null } };
  }

  /** `DELETE /runners/managers`: 204 deleted, 404 already gone, 403 for a token GitLab does not know. */
  deleteManager(token: string, systemId: string): "deleted" | "already-gone" | "forbidden" {
    const record = this.byToken(token);
    if (!record) return "forbidden";
    const index = record.managers.findIndex((manager) => manager.systemId === systemId);
    if (index < 0) return "already-gone";
    record.managers.splice(index, 1);
    this.changed();
    return "deleted";
  }

  /** `GET /runners/:id/managers`, or undefined for a runner GitLab does not know (404). */
  managers(runnerId: number): GitLabManagerShape[] | undefined {
    const record = this.runners.get(runnerId);
    if (!record) return undefined;
    return record.managers.map((manager) => ({
      id: manager.id,
      system_id: manager.systemId,
      version: null,
      revision: null,
      platform: null,
      architecture: null,
      created_at: manager.createdAt,
      contacted_at: manager.contactedAt,
      ip_address: null,
      status: this.now() - Date.parse(manager.contactedAt) < ONLINE_MS ? "online" : "offline",
    }));
  }

  /**
   * Whether GitLab would hand a job with `tags` to this manager: the token's runner exists and is not
   * paused, the manager (`system_id`) registered with it, and the runner's tags cover the job's (an
   * untagged job needs `run_untagged`). A check only: it changes nothing.
   */
  mayTakeJob(
    token: string,
    systemId: string,
    tags: readonly string[] = [],
  ): { ok: true; runnerId: number } | { ok: false; reason: TakeJobRefusal; message: string } {
    const record = this.byToken(token);
    if (!record) return refuse("unknown-token", "GitLab knows no runner with this token");
    if (!record.managers.some((manager) => manager.systemId === systemId)) {
      return refuse("unknown-manager", `runner ${record.id} has no manager ${systemId}`);
    }
    if (record.paused) return refuse("paused", `runner ${record.id} is paused`);
    const runnerTags = new Set(record.tagList.map((tag) => tag.toLowerCase()));
    const fits =
      tags.length === 0 ? record.runUntagged : tags.every((tag) => runnerTags.has(tag.toLowerCase()));
    if (!fits) return refuse("tags", `runner ${record.id} cannot run a job tagged [${tags.join(", ")}]`);
    return { ok: true, runnerId: record.id };
  }

  /** `GET /runners/:id`: 404 for a runner GitLab does not have. */
  details(runnerId: number): GitLabAnswer<GitLabRunnerDetails> {
    const record = this.runners.get(runnerId);
    if (!record) return { ok: false, status: 404, message: "404 Runner Not Found" };
    return {
      ok: true,
      value: {
        id: record.id,
        description: record.description,
        runner_type: record.runnerType,
        paused: record.paused,
        tag_list: [...record.tagList],
        run_untagged: record.runUntagged,
        locked: record.locked,
        maximum_timeout: record.maximumTimeout ?? null,
      },
    };
  }

  /**
   * `PUT /runners/:id` with `maximum_timeout` (what `npm run runners` changes): at least 600 seconds,
   * as GitLab wants. A refusal changes nothing.
   */
  update(runnerId: number, changes: { maximum_timeout?: number }): GitLabAnswer<GitLabRunnerDetails> {
    const record = this.runners.get(runnerId);
    if (!record) return { ok: false, status: 404, message: "404 Runner Not Found" };
    const timeout = changes.maximum_timeout;
    if (timeout !== undefined) {
      if (!Number.isInteger(timeout) || timeout < 600) {
        return {
          ok: false,
          status: 400,
          message: "400 Bad request - maximum_timeout needs to be at least 10 minutes",
        };
      }
      record.maximumTimeout = timeout;
      this.changed();
    }
    return this.details(runnerId);
  }

  /** One runner by id. */
  runner(runnerId: number): SimGitLabRunner | undefined {
    const record = this.runners.get(runnerId);
    return record ? gitlabView(record) : undefined;
  }

  /** Every runner. */
  all(): SimGitLabRunner[] {
    return [...this.runners.values()].map(gitlabView);
  }

  snapshot(): GitLabRunnersSnapshot {
    return {
      nextRunnerId: this.nextRunnerId,
      nextManagerId: this.nextManagerId,
      runners: [...this.runners.values()].map((record) => structuredClone(record)),
    };
  }

  /** Replaces the state with a snapshot's. */
  restore(snapshot: GitLabRunnersSnapshot): void {
    this.nextRunnerId = snapshot.nextRunnerId;
    this.nextManagerId = snapshot.nextManagerId;
    this.runners = new Map(snapshot.runners.map((record) => [record.id, structuredClone(record)]));
  }

  private byToken(token: string): GitLabRecord | undefined {
    if (typeof token !== "string" || token === "") return undefined;
    return [...this.runners.values()].find((runner) => runner.token === token);
  }
}

function gitlabView(record: GitLabRecord): SimGitLabRunner {
  return {
    id: record.id,
    description: record.description,
    tagList: [...record.tagList],
    runUntagged: record.runUntagged,
    runnerType: record.runnerType,
    paused: record.paused,
    pool: record.pool,
    managers: record.managers.map((manager) => manager.systemId),
    maximumTimeout: record.maximumTimeout ?? null,
  };
}

const runnerTypes: readonly string[] = ["instance_type", "group_type", "project_type"];

function validateCreateBody(body: CreateRunnerBody): string | undefined {
  if (!runnerTypes.includes(body.runner_type)) return "runner_type does not have a valid value";
  const positive = (value: unknown) => Number.isInteger(value) && (value as number) > 0;
  if (body.runner_type === "group_type" && !positive(body.group_id)) return "group_id is missing";
  if (body.runner_type === "project_type" && !positive(body.project_id)) return "project_id is missing";
  if (
    body.description !== undefined &&
    (typeof body.description !== "string" || body.description.length > 1024)
  )
    return "description is invalid";
  const tags = body.tag_list ?? [];
  if (
    !Array.isArray(tags) ||
    tags.length > 100 ||
    tags.some((tag) => typeof tag !== "string" || tag.length > 255)
  )
    return "tag_list is invalid";
  if (
    body.maximum_timeout !== undefined &&
    (!Number.isInteger(body.maximum_timeout) || body.maximum_timeout < 600)
  )
    return "maximum_timeout needs to be at least 10 minutes";
  return undefined;
}

function validateSystemId(systemId: string): string | undefined {
  if (typeof systemId !== "string" || systemId === "") return "system_id is empty";
  if (systemId.length > 64 || !/^[\w.-]+$/.test(systemId)) return "system_id is invalid";
  return undefined;
}

// Both forges

export interface ForgeRunnersSnapshot {
  github: GitHubRunnersSnapshot;
  gitlab: GitLabRunnersSnapshot;
}

/** Both simulated forges' runners, saved and restored together. */
export class SimulatedForgeRunners {
  readonly github: SimulatedGitHubRunners;
  readonly gitlab: SimulatedGitLabRunners;

  constructor(options: { now?: () => number; changed?: () => void } = {}) {
    const changed = () => options.changed?.();
    this.github = new SimulatedGitHubRunners(changed);
    this.gitlab = new SimulatedGitLabRunners(options.now ?? Date.now, changed);
  }

  /** Plain data (JSON), holding GitLab's runner tokens but no JIT config (only their digests). */
  snapshot(): ForgeRunnersSnapshot {
    return { github: this.github.snapshot(), gitlab: this.gitlab.snapshot() };
  }

  restore(snapshot: ForgeRunnersSnapshot): void {
    this.github.restore(snapshot.github);
    this.gitlab.restore(snapshot.gitlab);
  }
}
