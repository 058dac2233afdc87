import { type ForgeJob, jobHookPayload, type RunInfo, workflowJobPayload } from ".";
import { minimalRepository } from "./github-shapes";
import type { GitHubAnswer } from "./runners";

/**
 * The simulated forges' jobs and runs, for what retries need: GitLab's job retry and GitHub's re-run
 * of a run's failed jobs, with the forges' rules, and the moment a GitHub run attempt completes (its
 * `workflow_run` webhook). It learns jobs as the simulation describes and runs them.
 *
 * - GitLab `POST /projects/:id/jobs/:job_id/retry`: only a finished job (success, failed or
 *   canceled), and only once (a retried job is replaced by its retry); 403 "Job is not retryable"
 *   otherwise, 404 for a job it does not know. The new job is pending, with a new id, the same name,
 *   pipeline and tags, and `retries_count` one more.
 * - GitHub `POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs`: only once the run's
 *   latest attempt has completed (every job finished); 403 "This workflow is already running" before,
 *   as GitHub answers, and 403 "This workflow run cannot be retried" when no job failed. The failed and
 *   cancelled jobs run again as the next attempt, with new job ids.
 */

export type SimJobStatus = "queued" | "running" | "success" | "failed" | "canceled";

/** How long a job runs, as the simulation was told: its retries run as long. */
export interface JobDurations {
  warmSeconds: number;
  coldSeconds: number;
}

interface Tracked {
  job: ForgeJob;
  durations: JobDurations | null;
  status: SimJobStatus;
  /** GitLab: the job that replaced it. */
  retriedBy: string | null;
  /** When the forge queued it, and who ran it since: what its listings say (absent in old snapshots). */
  run?: RunInfo;
}

export interface RunCompleted {
  repository: string;
  runId: string;
  attempt: number;
  conclusion: "success" | "failure" | "cancelled";
}

export type GitLabRetryAnswer =
  | { ok: true; value: ForgeJob }
  | { ok: false; status: 403 | 404; message: string };

/** GitHub's refusals of a re-run carry 403 too, which the runners' refusals do not. */
export type RerunAnswer = GitHubAnswer<ForgeJob[]> | { ok: false; status: 403; message: string };

/** At most this many jobs are tracked; the oldest finished ones are forgotten first. */
export const MAX_TRACKED_JOBS = 20_000;

const finished = (status: SimJobStatus): boolean =>
  status === "success" || status === "failed" || status === "canceled";

/** What `--data` keeps of the forges' jobs, so that a restart can still retry them. */
export interface ForgeJobsSnapshot {
  jobs: Tracked[];
  completedRuns: string[];
  nextId: number;
}

export class SimulatedForgeJobs {
  private readonly jobs = new Map<string, Tracked>();
  /** GitHub run attempts already announced as completed. */
  private readonly completedRuns = new Set<string>();
  private nextId: number;
  private readonly changed: () => void;

  private readonly now: () => number;

  constructor(options: { firstJobId?: number; changed?: () => void; now?: () => number } = {}) {
    this.nextId = options.firstJobId ?? 900_000_000;
    this.changed = options.changed ?? (() => {});
    this.now = options.now ?? Date.now;
  }

  snapshot(): ForgeJobsSnapshot {
    return {
      jobs: [...this.jobs.values()].map((tracked) => ({ ...tracked })),
      completedRuns: [...this.completedRuns],
      nextId: this.nextId,
    };
  }

  restore(snapshot: ForgeJobsSnapshot): void {
    this.jobs.clear();
    for (const tracked of snapshot.jobs) this.jobs.set(this.key(tracked.job), { ...tracked });
    this.completedRuns.clear();
    for (const run of snapshot.completedRuns) this.completedRuns.add(run);
    this.nextId = Math.max(this.nextId, snapshot.nextId);
  }

  private key(job: Pick<ForgeJob, "source" | "id">): string {
    return `${job.source}#${job.id}`;
  }

  private runKey(repository: string, runId: string, attempt: number): string {
    return `${repository.toLowerCase()}#${runId}#${attempt}`;
  }

  /** A job the forge queued (or learns of late). */
  add(job: ForgeJob, durations: JobDurations | null = null): void {
    const key = this.key(job);
    if (!this.jobs.has(key)) {
      const createdAt = new Date(this.now()).toISOString();
      this.jobs.set(key, { job, durations, status: "queued", retriedBy: null, run: { createdAt } });
    }
    this.bound();
    this.changed();
  }

  durations(job: Pick<ForgeJob, "source" | "id">): JobDurations | null {
    return this.jobs.get(this.key(job))?.durations ?? null;
  }

  /**
   * A job's status changed. Returns the GitHub run attempt this completed, once: every job of it
   * that the forge knows has finished.
   */
  observe(job: ForgeJob, status: SimJobStatus, seen?: Partial<RunInfo>): RunCompleted | undefined {
    const key = this.key(job);
    const tracked = this.jobs.get(key) ?? { job, durations: null, status, retriedBy: null };
    // A finished job stays finished, whatever arrives late.
    if (!finished(tracked.status)) {
      tracked.status = status;
      const createdAt = tracked.run?.createdAt ?? seen?.createdAt ?? new Date(this.now()).toISOString();
      tracked.run = { ...tracked.run, ...definedOf(seen ?? {}), createdAt };
    }
    this.jobs.set(key, tracked);
    this.changed();
    if (job.source !== "github" || !finished(tracked.status)) return undefined;
    const attempt = tracked.job.attempt ?? 1;
    const run = this.runJobs(tracked.job.project, tracked.job.pipelineId, attempt);
    const runKey = this.runKey(tracked.job.project, tracked.job.pipelineId, attempt);
    if (this.completedRuns.has(runKey) || !run.every((other) => finished(other.status))) return undefined;
    this.completedRuns.add(runKey);
    const conclusion = run.some((other) => other.status === "failed")
      ? "failure"
      : run.some((other) => other.status === "canceled")
        ? "cancelled"
        : "success";
    return { repository: tracked.job.project, runId: tracked.job.pipelineId, attempt, conclusion };
  }

  status(job: Pick<ForgeJob, "source" | "id">): SimJobStatus | undefined {
    return this.jobs.get(this.key(job))?.status;
  }

  private runJobs(repository: string, runId: string, attempt: number): Tracked[] {
    return [...this.jobs.values()].filter(
      (tracked) =>
        tracked.job.source === "github" &&
        tracked.job.project.toLowerCase() === repository.toLowerCase() &&
        tracked.job.pipelineId === runId &&
        (tracked.job.attempt ?? 1) === attempt,
    );
  }

  /** GitLab's job retry. */
  retryGitLab(projectId: string, jobId: string): GitLabRetryAnswer {
    const tracked = this.jobs.get(`gitlab#${jobId}`);
    if (!tracked || tracked.job.projectId !== projectId)
      return { ok: false, status: 404, message: "404 Job Not Found" };
    if (!finished(tracked.status) || tracked.retriedBy !== null) {
      return { ok: false, status: 403, message: "403 Forbidden - Job is not retryable" };
    }
    const retry: ForgeJob = {
      ...tracked.job,
      id: String(this.nextId++),
      attempt: (tracked.job.attempt ?? 0) + 1,
    };
    tracked.retriedBy = retry.id;
    this.add(retry, tracked.durations);
    return { ok: true, value: retry };
  }

  /** GitHub's re-run of a run's failed jobs, as its next attempt. */
  rerunFailedJobs(repository: string, runId: string): RerunAnswer {
    const all = [...this.jobs.values()].filter(
      (tracked) =>
        tracked.job.source === "github" &&
        tracked.job.project.toLowerCase() === repository.toLowerCase() &&
        tracked.job.pipelineId === runId,
    );
    if (!all.length) return { ok: false, status: 404, message: "Not Found" };
    const latest = Math.max(...all.map((tracked) => tracked.job.attempt ?? 1));
    const run = all.filter((tracked) => (tracked.job.attempt ?? 1) === latest);
    if (!run.every((tracked) => finished(tracked.status))) {
      return { ok: false, status: 403, message: "This workflow is already running" };
    }
    const failed = run.filter((tracked) => tracked.status === "failed" || tracked.status === "canceled");
    if (!failed.length) return { ok: false, status: 403, message: "This workflow run cannot be retried" };
    const next = failed.map((tracked) => {
      const job = { ...tracked.job, id: String(this.nextId++), attempt: latest + 1 };
      this.add(job, tracked.durations);
      return job;
    });
    return { ok: true, value: next };
  }

  /**
   * GitHub's `GET /repos/{owner}/{repo}/actions/runs?status=…`: the repository's runs whose latest
   * attempt has that status (`queued`: no job started yet; `in_progress`: some job started or
   * finished and some not), newest first, as GitHub's run objects (the fields clients read).
   */
  githubRuns(repository: string, status: "queued" | "in_progress" | "completed" | undefined) {
    const runs = new Map<string, Tracked[]>();
    for (const tracked of this.jobs.values()) {
      const { job } = tracked;
      if (job.source !== "github" || job.project.toLowerCase() !== repository.toLowerCase()) continue;
      runs.set(job.pipelineId, [...(runs.get(job.pipelineId) ?? []), tracked]);
    }
    const listed = [];
    for (const [runId, all] of runs) {
      const attempt = Math.max(...all.map((tracked) => tracked.job.attempt ?? 1));
      const latest = all.filter((tracked) => (tracked.job.attempt ?? 1) === attempt);
      const runStatus = latest.every((tracked) => finished(tracked.status))
        ? "completed"
        : latest.every((tracked) => tracked.status === "queued")
          ? "queued"
          : "in_progress";
      if (status !== undefined && runStatus !== status) continue;
      const createdAt = latest.map((tracked) => tracked.run?.createdAt ?? "").sort()[0] ?? "";
      const project = latest[0]?.job.project ?? repository;
      const base = `https://api.github.com/repos/${project}/actions/runs/${runId}`;
      listed.push({
        id: Number(runId),
        node_id: `WFR_${runId}`,
        name: "CI",
        display_title: "CI",
        run_number: Number(runId),
        run_attempt: attempt,
        event: "push",
        status: runStatus,
        conclusion: null,
        head_branch: "main",
        head_sha: "0".repeat(40),
        path: ".github/workflows/ci.yml",
        workflow_id: 1,
        url: base,
        created_at: createdAt,
        updated_at: createdAt,
        run_started_at: createdAt,
        html_url: `https://github.com/${project}/actions/runs/${runId}`,
        jobs_url: `${base}/jobs`,
        logs_url: `${base}/logs`,
        check_suite_url: `https://api.github.com/repos/${project}/check-suites/${runId}`,
        cancel_url: `${base}/cancel`,
        rerun_url: `${base}/rerun`,
        artifacts_url: `${base}/artifacts`,
        workflow_url: `https://api.github.com/repos/${project}/actions/workflows/1`,
        pull_requests: [],
        head_commit: null,
        repository: minimalRepository(project),
        head_repository: minimalRepository(project),
      });
    }
    return listed.sort((a, b) => b.id - a.id);
  }

  /**
   * GitHub's `GET /repos/{owner}/{repo}/actions/runs/{run_id}/jobs?filter=latest`: the latest
   * attempt's jobs, each as the API's job, which has the `workflow_job` webhook's shape. Undefined for
   * a run the forge does not know.
   */
  githubRunJobs(repository: string, runId: string) {
    const all = [...this.jobs.values()].filter(
      (tracked) =>
        tracked.job.source === "github" &&
        tracked.job.project.toLowerCase() === repository.toLowerCase() &&
        tracked.job.pipelineId === runId,
    );
    if (!all.length) return undefined;
    const attempt = Math.max(...all.map((tracked) => tracked.job.attempt ?? 1));
    return all
      .filter((tracked) => (tracked.job.attempt ?? 1) === attempt)
      .sort((a, b) => Number(a.job.id) - Number(b.job.id))
      .map((tracked) => this.githubApiJob(tracked));
  }

  /**
   * GitHub's `GET /repos/{owner}/{repo}/actions/jobs/{job_id}`: one job as the API shows it, or
   * undefined for a job the forge does not know in that repository.
   */
  githubJob(repository: string, jobId: string) {
    const tracked = this.jobs.get(this.key({ source: "github", id: jobId }));
    if (!tracked || tracked.job.project.toLowerCase() !== repository.toLowerCase()) return undefined;
    return this.githubApiJob(tracked);
  }

  /** A tracked GitHub job as the REST API's job (the `workflow_job` webhook's job, and its URLs). */
  private githubApiJob(tracked: Tracked) {
    const action =
      tracked.status === "queued" ? "queued" : tracked.status === "running" ? "in_progress" : "completed";
    const run: RunInfo = {
      createdAt: new Date(this.now()).toISOString(),
      ...tracked.run,
      ...(action === "completed"
        ? {
            conclusion:
              tracked.status === "success"
                ? "success"
                : tracked.status === "failed"
                  ? "failure"
                  : "cancelled",
          }
        : {}),
    };
    const job = workflowJobPayload(tracked.job, action, run).workflow_job;
    const api = `https://api.github.com/repos/${tracked.job.project}`;
    return {
      ...job,
      node_id: `CR_${job.id}`,
      run_url: `${api}/actions/runs/${job.run_id}`,
      head_sha: "0".repeat(40),
      url: `${api}/actions/jobs/${job.id}`,
      check_run_url: `${api}/check-runs/${job.id}`,
    };
  }

  /**
   * GitLab's `GET /projects/:id/jobs?scope[]=pending&scope[]=running`: the project's (by id or path)
   * pending and running jobs, newest first, as the API's jobs (the Job Hook's fields by their API
   * names, and the tags).
   */
  gitlabJobs(project: string, scopes: readonly string[]) {
    const wanted = new Set(scopes.length ? scopes : ["pending", "running"]);
    return [...this.jobs.values()]
      .filter(
        (tracked) =>
          tracked.job.source === "gitlab" &&
          (tracked.job.projectId === project || tracked.job.project === project) &&
          wanted.has(tracked.status === "queued" ? "pending" : tracked.status),
      )
      .sort((a, b) => Number(b.job.id) - Number(a.job.id))
      .map((tracked) => this.gitlabApiJob(tracked));
  }

  /**
   * GitLab's `GET /projects/:id/jobs/:job_id`: one job of the project (by id or path), whatever its
   * status, as the API's job; undefined for a job the forge does not track there.
   */
  gitlabJob(project: string, jobId: string) {
    const tracked = this.jobs.get(this.key({ source: "gitlab", id: jobId }));
    if (!tracked || (tracked.job.projectId !== project && tracked.job.project !== project)) return undefined;
    return this.gitlabApiJob(tracked);
  }

  /** A tracked GitLab job as the API's job (the Job Hook's fields by their API names, and the tags). */
  private gitlabApiJob(tracked: Tracked) {
    const status = tracked.status === "queued" ? "pending" : tracked.status;
    const run: RunInfo = { createdAt: new Date(this.now()).toISOString(), ...tracked.run };
    const hook = jobHookPayload(tracked.job, status, run);
    const ended = finished(tracked.status);
    return {
      id: hook.build_id,
      name: hook.build_name,
      stage: hook.build_stage,
      status: hook.build_status,
      ref: hook.ref,
      tag: false,
      allow_failure: false,
      created_at: run.createdAt,
      started_at: status === "pending" ? null : (run.startedAt ?? null),
      finished_at: ended ? (hook.build_finished_at ?? null) : null,
      erased_at: null,
      duration: null,
      queued_duration: hook.build_queued_duration,
      failure_reason: status === "failed" ? (hook.build_failure_reason ?? undefined) : undefined,
      pipeline: {
        id: hook.pipeline_id,
        project_id: hook.project_id,
        ref: "main",
        status: ended ? status : "running",
      },
      project: { ci_job_token_scope_enabled: false },
      web_url: `${hook.project.web_url}/-/jobs/${hook.build_id}`,
      tag_list: tracked.job.labels,
      runner: hook.runner ? { id: hook.runner.id, description: hook.runner.description } : null,
    };
  }

  /** GitLab's projects the forge has jobs of, under a group path (`GET /groups/:id/projects`). */
  gitlabProjectsOf(group: string) {
    const projects = new Map<string, string>();
    for (const { job } of this.jobs.values()) {
      if (job.source === "gitlab" && job.project.startsWith(`${group}/`))
        projects.set(job.projectId, job.project);
    }
    return [...projects]
      .map(([id, path]) => ({
        id: Number(id),
        name: path.split("/").pop() ?? path,
        path: path.split("/").pop() ?? path,
        path_with_namespace: path,
        web_url: `https://gitlab.example.com/${path}`,
      }))
      .sort((a, b) => a.id - b.id);
  }

  /** The top-level groups of the GitLab projects the forge has jobs of, sorted. */
  gitlabTopGroups(): string[] {
    const groups = new Set<string>();
    for (const { job } of this.jobs.values()) {
      const top = job.source === "gitlab" ? job.project.split("/")[0] : undefined;
      if (top && job.project.includes("/")) groups.add(top);
    }
    return [...groups].sort();
  }

  /** Whether the forge knows a GitLab group of this path (some project of its jobs lives under it). */
  knowsGitLabGroup(group: string): boolean {
    return this.gitlabProjectsOf(group).length > 0;
  }

  private bound(): void {
    if (this.jobs.size <= MAX_TRACKED_JOBS) return;
    for (const [key, tracked] of this.jobs) {
      if (this.jobs.size <= MAX_TRACKED_JOBS) break;
      if (finished(tracked.status)) this.jobs.delete(key);
    }
  }
}

function definedOf(run: Partial<RunInfo>): Partial<RunInfo> {
  return Object.fromEntries(Object.entries(run).filter(([, value]) => value !== undefined && value !== null));
}
