import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { send as httpSend, type Send } from "../http";
import type { GitLabPort, JobKey } from "../ports";
import type { Systemctl } from "./systemctl";

/**
 * gitlab-runner as the NixOS module runs it. Signals go to its main process only
 * (`--kill-whom=main`): the shell executor's jobs share its cgroup, and a SIGQUIT to them would kill
 * the very jobs a graceful stop lets finish.
 */

export interface SystemdGitLabOptions {
  systemctl: Systemctl;
  /** `gitlab-runner.service`. */
  service: string;
  /** gitlab-runner's `.runner_system_id` file. */
  systemIdFile: string;
  /**
   * Where to write `CI_SERVER_URL` and `CI_SERVER_TOKEN` for gitlab-runner (mode 0600), when the image
   * leaves that to the agent; unset when the image fetches the token itself.
   */
  envFile?: string | undefined;
  /** gitlab-runner's `/debug/jobs/list` on its `listen_address`; unset: jobs are not listed. */
  jobsUrl?: string | null | undefined;
  /** gitlab-runner's config.toml, for its runner's `id`; unset: the id is not reported. */
  configFile?: string | null | undefined;
  send?: Send;
}

export function systemdGitLab(options: SystemdGitLabOptions): GitLabPort {
  const send = options.send ?? httpSend;
  const signal = (name: string) => ["kill", `--signal=${name}`, "--kill-whom=main", options.service];
  return {
    async start(credentials, systemId) {
      await mkdir(dirname(options.systemIdFile), { recursive: true });
      await writeFile(options.systemIdFile, `${systemId}\n`, { mode: 0o644 });
      if (options.envFile) {
        await mkdir(dirname(options.envFile), { recursive: true, mode: 0o700 });
        await rm(options.envFile, { force: true });
        await writeFile(
          options.envFile,
          `CI_SERVER_URL=${credentials.url}\nCI_SERVER_TOKEN=${credentials.token}\n`,
          { mode: 0o600, flag: "wx" },
        );
      }
      await options.systemctl(["start", "--no-block", options.service]);
    },
    // A stop, not a bare SIGQUIT: the unit's stop signal is SIGQUIT to the main process (the module
    // sets it), and systemd never restarts a unit it stopped, whereas a runner that ended after a
    // signal would be restarted and claim jobs on a draining instance.
    drain: async () => void (await options.systemctl(["stop", "--no-block", options.service])),
    abort: async () => void (await options.systemctl(signal("SIGTERM"))),
    // A stop, not a signal: systemd restarts a unit whose process ended, never one it stopped. The
    // module's graceful termination makes the stop a SIGQUIT (running jobs finish); `--no-block`
    // returns at once, and `active` tells when it has ended.
    stop: async () => void (await options.systemctl(["stop", "--no-block", options.service])),
    async active() {
      const state = (
        await options.systemctl(["show", "--property=ActiveState", "--value", options.service])
      ).trim();
      return state !== "inactive" && state !== "failed";
    },
    async runningJobs() {
      if (!options.jobsUrl) return null;
      const response = await send(options.jobsUrl, { timeoutMs: 2000 });
      if (response.status !== 200) throw new Error(`gitlab-runner's job list answered ${response.status}`);
      return parseJobList(response.text);
    },
    async runnerId() {
      if (!options.configFile) return null;
      // Not there until gitlab-runner has registered at its start; the token beside the id is never kept.
      const text = await readFile(options.configFile, "utf8").catch((error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return "";
        throw new Error(`cannot read ${options.configFile}: ${error.code ?? error.message}`);
      });
      return runnerIdOf(text);
    },
  };
}

/**
 * The `id` of the first `[[runners]]` entry of gitlab-runner's config.toml (gitlab-runner writes the
 * id GitLab gave the runner there since 15.x; `id = 0` or none: not known).
 */
export function runnerIdOf(configToml: string): number | null {
  const from = configToml.search(/^[ \t]*\[\[runners\]\][ \t]*$/m);
  if (from < 0) return null;
  const entry = configToml.slice(from).split("\n").slice(1);
  for (const line of entry) {
    if (/^\s*\[/.test(line)) break;
    const id = /^[ \t]*id[ \t]*=[ \t]*(\d{1,15})[ \t]*(?:#.*)?$/.exec(line)?.[1];
    if (id !== undefined) return Number(id) > 0 ? Number(id) : null;
  }
  return null;
}

/**
 * gitlab-runner's `/debug/jobs/list`: one line per job it holds,
 * `url=https://gitlab.example.com/group/project/-/jobs/123 state=running stage=… …`.
 */
export function parseJobList(text: string): JobKey[] {
  return text.split("\n").flatMap((line) => {
    const id = /(?:^|\s)url=\S*\/-\/jobs\/(\d{1,20})(?:\s|$)/.exec(line)?.[1];
    return id ? [{ source: "gitlab" as const, id }] : [];
  });
}
