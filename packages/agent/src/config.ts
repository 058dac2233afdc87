import * as z from "zod/mini";

const absolute = z.string().check(z.startsWith("/", "not an absolute path"));

/** `/etc/hearth/agent.json`, as the NixOS module writes it. */
export const agentFileSchema = z.strictObject({
  stage: z.string().check(z.regex(/^[a-z][a-z0-9-]{0,39}$/, "not a stage name")),
  region: z.string().check(z.regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "not an AWS region")),
  pool: z.string().check(z.minLength(1), z.maxLength(64)),
  slots: z.int().check(z.gte(1), z.lte(64)),
  /** SSM `/hearth/S/agent`: `{ heartbeatUrl, binaryCache }`. */
  agentConfigParameter: absolute,
  /** SSM `/hearth/S/pools/<pool>/credentials`. */
  poolCredentialsParameter: absolute,
  /** SSM `/hearth/S/runners/`: runner configs are read only below it, in this instance's folder. */
  runnerConfigPrefix: absolute,
  stateDir: absolute,
  /** The Runner.Listener the slot units run (the agent only checks it is there). */
  runnerCommand: z.string().check(z.minLength(1)),
  /** `gitlab-runner.service`. */
  gitlabRunnerService: z.string().check(z.minLength(1)),
  /** gitlab-runner's `.runner_system_id`. */
  gitlabSystemIdFile: absolute,
  pushQueueDir: absolute,
  // Optional, with the image's defaults:
  /** Where the slots' JIT configs are written (tmpfs). */
  runnerConfigDir: z._default(absolute, "/run/hearth/runners"),
  /** The slot units' template name, before `@`. */
  runnerUnit: z._default(z.string().check(z.minLength(1)), "hearth-github-runner"),
  /** gitlab-runner's env file with `CI_SERVER_URL`/`CI_SERVER_TOKEN`, if the agent writes it. */
  gitlabRunnerEnvFile: z.optional(absolute),
  /** gitlab-runner's `/debug/jobs/list` (its `listen_address`), to report its running jobs. */
  gitlabJobsUrl: z.optional(z.url()),
  heartbeatSeconds: z._default(z.number().check(z.gte(1), z.lte(300)), 15),
});
export type AgentFile = z.infer<typeof agentFileSchema>;

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
