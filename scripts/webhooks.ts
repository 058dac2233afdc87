/**
 * `npm run webhooks -- --stage <name> (--gitlab-project ID | --gitlab-group ID | --github-repo OWNER/NAME | --github-org ORG)`
 *
 * Creates, or updates in place, the webhook that sends a project's (or group's, repository's,
 * organization's) CI jobs to a deployed stage: GitLab Job events with the secret token, or GitHub
 * `workflow_job` and `workflow_run` with the secret. For an existing GitLab hook it reports `alert_status` and
 * `disabled_until` first: GitLab disables a hook that keeps failing, and says so only there.
 *
 * The stage's URL comes from `.sst/outputs.json` (written by `npx sst deploy`) or `--url`; its
 * secrets from `GITLAB_WEBHOOK_TOKEN` / `GITHUB_WEBHOOK_SECRET`, or else from `npx sst secret list`.
 * The forge's API token comes from `GITLAB_TOKEN` (scope `api`; else `GITLAB_API_TOKEN`, the variable
 * Hearth's other commands read) or `GITHUB_TOKEN` (repository or organization webhooks: write).
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { Source } from "../packages/core/src/jobs/vocabulary";

export type Fetch = typeof fetch;

export interface HookTarget {
  forge: Source;
  kind: "project" | "group" | "repo" | "org";
  /** GitLab project or group id (or URL-encoded path); GitHub `owner/name` or organization. */
  id: string;
}

export interface SyncOptions {
  target: HookTarget;
  /** The stage's webhook URL for this forge. */
  url: string;
  /** GitLab's secret token, or GitHub's webhook secret. */
  secret: string;
  /** The forge's API base: `https://gitlab.com` (or self-managed), `https://api.github.com`. */
  apiBase: string;
  apiToken: string;
  fetch?: Fetch;
}

export interface SyncResult {
  action: "created" | "updated";
  hookId: number;
  /** What the forge said about the hook before this update (GitLab: alert status; GitHub: last delivery). */
  before: Record<string, unknown> | null;
  report: string[];
}

class ApiError extends Error {}

async function call(
  fetchImpl: Fetch,
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<unknown> {
  const response = await fetchImpl(url, {
    method,
    headers: {
      accept: "application/json",
      ...headers,
      ...(body ? { "content-type": "application/json" } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) {
    let message = text.slice(0, 300);
    try {
      const parsed = JSON.parse(text) as { message?: unknown; error?: unknown };
      message = JSON.stringify(parsed.message ?? parsed.error ?? parsed);
    } catch {
      // Not JSON: the start of the body says enough.
    }
    throw new ApiError(`${method} ${new URL(url).pathname} answered ${response.status}: ${message}`);
  }
  return text ? JSON.parse(text) : null;
}

/** Every page of a list (GitLab and GitHub both paginate with `page` and `per_page`). */
async function listAll<T>(fetchImpl: Fetch, url: string, headers: Record<string, string>): Promise<T[]> {
  const all: T[] = [];
  for (let page = 1; page <= 50; page++) {
    const separator = url.includes("?") ? "&" : "?";
    const items = (await call(
      fetchImpl,
      "GET",
      `${url}${separator}per_page=100&page=${page}`,
      headers,
    )) as T[];
    all.push(...items);
    if (items.length < 100) break;
  }
  return all;
}

interface GitLabHook {
  id: number;
  url: string;
  job_events?: boolean;
  alert_status?: string;
  disabled_until?: string | null;
}

export async function syncGitLabHook(options: SyncOptions): Promise<SyncResult> {
  const fetchImpl = options.fetch ?? fetch;
  const base = `${options.apiBase.replace(/\/+$/, "")}/api/v4/${options.target.kind === "group" ? "groups" : "projects"}/${encodeURIComponent(options.target.id)}/hooks`;
  const headers = { "private-token": options.apiToken };
  const hooks = await listAll<GitLabHook>(fetchImpl, base, headers);
  const existing = hooks.find((hook) => hook.url === options.url);
  // Job events only: Hearth reads nothing else, and every other event would be a wasted delivery.
  const settings = {
    url: options.url,
    token: options.secret,
    job_events: true,
    push_events: false,
    merge_requests_events: false,
    tag_push_events: false,
    pipeline_events: false,
    enable_ssl_verification: true,
  };
  const report: string[] = [];
  if (existing) {
    const status = existing.alert_status ?? "unknown";
    report.push(
      `existing hook ${existing.id}: alert_status=${status}` +
        (existing.disabled_until ? `, disabled_until=${existing.disabled_until}` : ""),
    );
    if (status !== "executable") {
      // Re-enabling takes a successful test delivery; this script does not send one, since GitLab's
      // test Job event is a made-up job that Hearth would record.
      report.push(
        "GitLab disabled this hook after failed deliveries. With the secret now right, re-enable it with" +
          " a test request (Settings › Webhooks › Test) once the stage answers.",
      );
    }
    const updated = (await call(fetchImpl, "PUT", `${base}/${existing.id}`, headers, settings)) as GitLabHook;
    return {
      action: "updated",
      hookId: updated.id,
      before: {
        alert_status: existing.alert_status ?? null,
        disabled_until: existing.disabled_until ?? null,
      },
      report,
    };
  }
  const created = (await call(fetchImpl, "POST", base, headers, settings)) as GitLabHook;
  return { action: "created", hookId: created.id, before: null, report };
}

interface GitHubHook {
  id: number;
  name: string;
  active: boolean;
  events: string[];
  config: { url?: string };
  last_response?: { code: number | null; status: string | null; message: string | null };
}

export async function syncGitHubHook(options: SyncOptions): Promise<SyncResult> {
  const fetchImpl = options.fetch ?? fetch;
  const path = options.target.kind === "org" ? `orgs/${options.target.id}` : `repos/${options.target.id}`;
  const base = `${options.apiBase.replace(/\/+$/, "")}/${path}/hooks`;
  const headers = {
    authorization: `Bearer ${options.apiToken}`,
    "x-github-api-version": "2022-11-28",
    accept: "application/vnd.github+json",
  };
  const hooks = await listAll<GitHubHook>(fetchImpl, base, headers);
  const existing = hooks.find((hook) => hook.config.url === options.url);
  const settings = {
    active: true,
    // workflow_run: a run with an interrupted job re-runs its failed jobs once it completes.
    events: ["workflow_job", "workflow_run"],
    config: { url: options.url, content_type: "json", secret: options.secret, insecure_ssl: "0" },
  };
  const report: string[] = [];
  if (existing) {
    const last = existing.last_response;
    report.push(
      `existing hook ${existing.id}: active=${existing.active}, last delivery ${last?.status ?? "none"}` +
        (last?.code ? ` (HTTP ${last.code})` : "") +
        (last?.message ? `: ${last.message}` : ""),
    );
    const updated = (await call(
      fetchImpl,
      "PATCH",
      `${base}/${existing.id}`,
      headers,
      settings,
    )) as GitHubHook;
    return {
      action: "updated",
      hookId: updated.id,
      before: { active: existing.active, last_response: last ?? null },
      report,
    };
  }
  const created = (await call(fetchImpl, "POST", base, headers, { name: "web", ...settings })) as GitHubHook;
  return { action: "created", hookId: created.id, before: null, report };
}

/** The stage's webhook URLs, as `npx sst deploy` left them in `.sst/outputs.json`. */
export function stageOutputs(stage: string | undefined, file = ".sst/outputs.json") {
  if (!existsSync(file)) return undefined;
  const outputs = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  if (stage && outputs.stage !== stage) {
    throw new Error(
      `${file} is stage ${String(outputs.stage)}'s, not ${stage}'s: deploy ${stage}, or pass --url`,
    );
  }
  return outputs as { stage?: string; githubWebhook?: string; gitlabWebhook?: string };
}

/** A secret of the stage: from the environment, or from `sst secret list` (needs AWS credentials). */
function stageSecret(env: string, name: string, stage: string | undefined): string {
  const value = process.env[env]?.trim();
  if (value) return value;
  const args = ["sst", "secret", "list", ...(stage ? ["--stage", stage] : [])];
  const listed = execFileSync("npx", args, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const line = listed.split("\n").find((l) => l.startsWith(`${name}=`));
  const secret = line?.slice(name.length + 1).trim();
  if (!secret) throw new Error(`${name} is not set for this stage: npx sst secret set ${name} <value>`);
  return secret;
}

const usage = `Usage: npm run webhooks -- [--stage NAME] [--url URL] TARGET

TARGET, one of:
  --gitlab-project ID   a GitLab project (numeric id or full path)
  --gitlab-group ID     a GitLab group (Premium), for every project in it
  --github-repo OWNER/NAME
  --github-org ORG      every repository of an organization

Environment: GITLAB_TOKEN or GITLAB_API_TOKEN (and GITLAB_URL, default https://gitlab.com) or GITHUB_TOKEN;
GITLAB_WEBHOOK_TOKEN / GITHUB_WEBHOOK_SECRET (default: the stage's secrets, via sst secret list).`;

async function main() {
  const { values } = parseArgs({
    options: {
      stage: { type: "string" },
      url: { type: "string" },
      "gitlab-project": { type: "string" },
      "gitlab-group": { type: "string" },
      "github-repo": { type: "string" },
      "github-org": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  const targets: HookTarget[] = [
    values["gitlab-project"] && { forge: "gitlab", kind: "project", id: values["gitlab-project"] },
    values["gitlab-group"] && { forge: "gitlab", kind: "group", id: values["gitlab-group"] },
    values["github-repo"] && { forge: "github", kind: "repo", id: values["github-repo"] },
    values["github-org"] && { forge: "github", kind: "org", id: values["github-org"] },
  ].filter((t): t is HookTarget => Boolean(t));
  if (values.help || targets.length !== 1) {
    console.log(usage);
    process.exit(values.help ? 0 : 2);
  }
  const target = targets[0] as HookTarget;
  if (target.kind === "repo" && !/^[\w.-]+\/[\w.-]+$/.test(target.id))
    throw new Error("--github-repo takes OWNER/NAME");

  const outputs = values.url ? undefined : stageOutputs(values.stage);
  const url = values.url ?? (target.forge === "gitlab" ? outputs?.gitlabWebhook : outputs?.githubWebhook);
  if (!url)
    throw new Error("no webhook URL: deploy the stage first (npx sst deploy --stage NAME), or pass --url");

  const gitlab = target.forge === "gitlab";
  const apiToken = (
    gitlab ? (process.env.GITLAB_TOKEN ?? process.env.GITLAB_API_TOKEN) : process.env.GITHUB_TOKEN
  )?.trim();
  if (!apiToken)
    throw new Error(
      `set ${gitlab ? "GITLAB_TOKEN (or GITLAB_API_TOKEN)" : "GITHUB_TOKEN"} to a token that may manage webhooks`,
    );
  const secret = gitlab
    ? stageSecret("GITLAB_WEBHOOK_TOKEN", "GitlabWebhookToken", values.stage)
    : stageSecret("GITHUB_WEBHOOK_SECRET", "GithubWebhookSecret", values.stage);
  const options: SyncOptions = {
    target,
    url,
    secret,
    apiToken,
    apiBase: gitlab
      ? (process.env.GITLAB_URL ?? "https://gitlab.com")
      : (process.env.GITHUB_API_URL ?? "https://api.github.com"),
  };
  const result = gitlab ? await syncGitLabHook(options) : await syncGitHubHook(options);
  for (const line of result.report) console.log(line);
  console.log(`${result.action} ${target.forge} ${target.kind} hook ${result.hookId} → ${url}`);
  if (gitlab) {
    console.log(
      "Where GitLab offers a signing token for the hook (Settings › Webhooks), set it too:" +
        ` npx sst secret set GitlabSigningToken whsec_… ${values.stage ? `--stage ${values.stage}` : ""}`,
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    process.stderr.write(`webhooks: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
