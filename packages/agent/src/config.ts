import * as z from "zod/mini";

const absolute = z.string().check(z.startsWith("/", "not an absolute path"));

const stageName = z.string().check(z.regex(/^[a-z][a-z0-9-]{0,39}$/, "not a stage name"));
const regionName = z.string().check(z.regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "not an AWS region"));
const poolName = z.string().check(z.minLength(1), z.maxLength(64));
const slotCount = z.int().check(z.gte(1), z.lte(64));
const jobSeconds = z.int().check(z.gte(60), z.lte(31 * 86_400));

/**
 * `/etc/hearth/agent.json`, as the NixOS module writes it. What is null there is the stage's, and
 * comes from the instance's user data at boot (`resolveAgentFile`), so that one image serves every
 * pool of its architecture; a part the image does not have (GitHub runners, gitlab-runner, the cache
 * push) is null too.
 */
export const agentFileSchema = z.strictObject({
  stage: z._default(z.nullable(stageName), null),
  region: z._default(z.nullable(regionName), null),
  pool: z._default(z.nullable(poolName), null),
  slots: z._default(z.nullable(slotCount), null),
  /** SSM `/hearth/S/agent`: `{ heartbeatUrl, binaryCache }`. */
  agentConfigParameter: z._default(z.nullable(absolute), null),
  /** SSM `/hearth/S/pools/<pool>/credentials`. */
  poolCredentialsParameter: z._default(z.nullable(absolute), null),
  /** SSM `/hearth/S/runners/`: runner configs are read only below it, in this instance's folder. */
  runnerConfigPrefix: z._default(z.nullable(absolute), null),
  stateDir: absolute,
  /** The Runner.Listener the slot units run (the agent only checks it is there); null: no GitHub. */
  runnerCommand: z._default(z.nullable(z.string().check(z.minLength(1))), null),
  /** `gitlab-runner.service`; null: the image runs no gitlab-runner. */
  gitlabRunnerService: z._default(z.nullable(z.string().check(z.minLength(1))), null),
  /** gitlab-runner's `.runner_system_id`. */
  gitlabSystemIdFile: z._default(z.nullable(absolute), null),
  /** The binary cache's push queue; null: nothing is pushed. */
  pushQueueDir: z._default(z.nullable(absolute), null),
  // Optional, with the image's defaults:
  /** Where the slots' JIT configs are written (tmpfs). */
  runnerConfigDir: z._default(z.nullable(absolute), "/run/hearth/runners"),
  /**
   * The slot units: a template name before `@` (`hearth-github-runner`), or a unit name with `{slot}`
   * in it (`hearth-github-runner-{slot}.service`).
   */
  runnerUnit: z._default(z.nullable(z.string().check(z.minLength(1))), "hearth-github-runner"),
  /** gitlab-runner's env file with `CI_SERVER_URL`/`CI_SERVER_TOKEN`, if the agent writes it. */
  gitlabRunnerEnvFile: z.optional(absolute),
  /** gitlab-runner's `/debug/jobs/list` (its `listen_address`), to report its running jobs; null: not listed. */
  gitlabJobsUrl: z._default(z.nullable(z.url({ protocol: /^https?$/ })), null),
  /** gitlab-runner's config.toml, whose `[[runners]]` entry's `id` is reported as `gitlabManager.runnerId`. */
  gitlabConfigFile: z._default(z.nullable(absolute), null),
  /**
   * The longest a job may run, in seconds, when the user data does not say (the pool's
   * `maxJobMinutes` wins); null: no limit from the image.
   */
  maxJobSeconds: z._default(z.nullable(jobSeconds), null),
  heartbeatSeconds: z._default(z.number().check(z.gte(1), z.lte(300)), 15),
});
export type AgentFile = z.infer<typeof agentFileSchema>;

/** The agent's config with the stage's part filled in from the instance's user data. */
export type ResolvedAgentFile = AgentFile & {
  stage: string;
  region: string;
  pool: string;
  slots: number;
  agentConfigParameter: string;
  poolCredentialsParameter: string;
  runnerConfigPrefix: string;
};

/** What infra puts in each instance's user data (`userData` in infra/lib/fleet.ts). */
const userDataSchema = z.object({
  hearth: z.object({
    stage: z.optional(stageName),
    region: z.optional(regionName),
    pool: z.optional(poolName),
    slots: z.optional(slotCount),
    agentConfigParameter: z.optional(absolute),
    credentialsParameter: z.optional(absolute),
    runnerConfigPrefix: z.optional(absolute),
    maxJobSeconds: z.optional(jobSeconds),
  }),
});

/**
 * Fills what the config file leaves null from the instance's user data (a value in the file wins,
 * except the slots: the pool's, which the control plane counts, win over the image's); the error
 * names what neither says.
 */
export function resolveAgentFile(file: AgentFile, userData: string | null): ResolvedAgentFile {
  let stage: z.infer<typeof userDataSchema>["hearth"] = {};
  if (userData) {
    let json: unknown;
    try {
      json = JSON.parse(userData);
    } catch {
      json = null;
    }
    const parsed = userDataSchema.safeParse(json);
    if (parsed.success) stage = parsed.data.hearth;
  }
  const resolved = {
    ...file,
    stage: file.stage ?? stage.stage ?? null,
    region: file.region ?? stage.region ?? null,
    pool: file.pool ?? stage.pool ?? null,
    // The pool's slots, as the control plane counts them, over the image's default.
    slots: stage.slots ?? file.slots ?? null,
    agentConfigParameter: file.agentConfigParameter ?? stage.agentConfigParameter ?? null,
    poolCredentialsParameter: file.poolCredentialsParameter ?? stage.credentialsParameter ?? null,
    runnerConfigPrefix: file.runnerConfigPrefix ?? stage.runnerConfigPrefix ?? null,
    // The pool's limit, which GitLab enforces too, over the image's.
    maxJobSeconds: stage.maxJobSeconds ?? file.maxJobSeconds,
  };
  const missing = Object.entries(resolved)
    .filter(
      ([key, value]) =>
        value === null &&
        [
          "stage",
          "region",
          "pool",
          "slots",
          "agentConfigParameter",
          "poolCredentialsParameter",
          "runnerConfigPrefix",
        ].includes(key),
    )
    .map(([key]) => key);
  if (missing.length) {
    throw new Error(`neither the agent config nor the instance's user data says ${missing.join(", ")}`);
  }
  return resolved as ResolvedAgentFile;
}

/** SSM `/hearth/S/agent`, as infra writes it. */
export const agentParameterSchema = z.object({
  heartbeatUrl: z.url({ protocol: /^https?$/ }),
  binaryCache: z.string().check(z.minLength(1)),
});
export type AgentParameter = z.infer<typeof agentParameterSchema>;

/** Parses the config file's text; the error names the field at fault. */
export function parseAgentFile(text: string): AgentFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error("the agent config is not JSON");
  }
  const parsed = agentFileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`the agent config is invalid at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`);
  }
  return parsed.data;
}

export function parseAgentParameter(text: string): AgentParameter {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error("the agent config parameter is not JSON");
  }
  const parsed = agentParameterSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `the agent config parameter is invalid at ${issue?.path.join(".") || "(root)"}: ${issue?.message}`,
    );
  }
  return parsed.data;
}
