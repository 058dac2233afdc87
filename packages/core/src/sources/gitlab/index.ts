import * as z from "zod";
import { type JobEvent, type JobStatus, normalizeLabels } from "../../jobs";

export { signGitLabBody, verifyGitLabSignature, verifyGitLabToken } from "./verify";

/**
 * GitLab `Job Hook` webhooks.
 * Payload reference: https://docs.gitlab.com/user/project/integrations/webhook_events/#job-events
 * Only the fields Hearth reads are checked; the rest may change freely.
 */

const id = z.union([z.number().int().nonnegative(), z.string().regex(/^\d{1,20}$/)]).transform(String);
/** Free text GitLab bounds far below these; the ledger item (400 KB at most) must stay small. */
const text = (max: number) => z.string().max(max);

/** The latest instant the ledger stores: `toISOString()` of anything later is not an RFC 3339 time. */
const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** A time as the ledger stores it, or null when it is not one (before 1970, after 9999, NaN). */
const isoFromMs = (ms: number): string | null =>
  Number.isFinite(ms) && ms >= 0 && ms <= MAX_TIME_MS ? new Date(ms).toISOString() : null;

// GitLab writes times both as "2021-02-23T02:41:37.886Z" and as "2021-02-23 02:41:37 UTC".
const gitlabTime = z
  .string()
  .nullish()
  .transform((value, ctx) => {
    if (value == null) return null;
    const iso = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? UTC$/.test(value)
      ? `${value.replace(" ", "T").replace(" UTC", "")}Z`
      : value;
    const time = isoFromMs(Date.parse(iso));
    if (time === null) {
      ctx.addIssue({ code: "custom", message: `not a time: ${value.slice(0, 40)}` });
      return z.NEVER;
    }
    return time;
  });

export const jobHookPayloadSchema = z.object({
  object_kind: z.literal("build"),
  build_id: id,
  build_name: text(1000),
  build_stage: text(1000).nullish(),
  build_status: text(100),
  build_created_at: gitlabTime,
  build_started_at: gitlabTime,
  build_finished_at: gitlabTime,
  build_queued_duration: z.number().nonnegative().nullish(),
  build_failure_reason: text(200).nullish(),
  retries_count: z.number().int().nonnegative().nullish(),
  pipeline_id: id,
  project_id: id,
  project_name: text(1000).nullish(),
  project: z.object({ path_with_namespace: text(1000).min(1), web_url: text(2000).nullish() }).nullish(),
  runner: z.object({ id: id.nullish(), description: text(2000).nullish() }).nullish(),
});
export type JobHookPayload = z.infer<typeof jobHookPayloadSchema>;

/** GitLab job statuses (Ci::HasStatus) mapped onto the ledger's. Unknown statuses are ignored. */
const statusMap: Record<string, JobStatus> = {
  created: "waiting",
  waiting_for_resource: "waiting",
  waiting_for_callback: "waiting",
  scheduled: "waiting",
  manual: "waiting",
  pending: "queued",
  // A runner has taken the job; `canceling` still occupies it until the runner lets go.
  preparing: "running",
  running: "running",
  canceling: "running",
  success: "completed",
  failed: "completed",
  canceled: "cancelled",
  skipped: "cancelled",
};

export const gitlabStatusToJobStatus = (status: string): JobStatus | undefined => statusMap[status];

/**
 * The job event a Job Hook describes, or undefined for a status Hearth does not know.
 * `receivedAt` stands in for the time of a `pending` event, which the payload does not carry.
 * Throws a ZodError when the payload does not have the shape GitLab documents.
 */
export function jobEventFromJobHook(body: unknown, receivedAt: Date): JobEvent | undefined {
  const hook = jobHookPayloadSchema.parse(body);
  const status = gitlabStatusToJobStatus(hook.build_status);
  if (status === undefined) return undefined;
  const terminal = status === "completed" || status === "cancelled";
  const project = hook.project?.path_with_namespace ?? hook.project_name ?? hook.project_id;
  return {
    source: "gitlab",
    id: hook.build_id,
    project,
    projectId: hook.project_id,
    pipelineId: hook.pipeline_id,
    name: hook.build_stage ? `${hook.build_stage} / ${hook.build_name}` : hook.build_name,
    attempt: hook.retries_count ?? 0,
    // Job Hooks do not carry the job's tags; they are looked up through the API.
    labels: [],
    labelsKnown: false,
    status,
    conclusion: terminal ? (conclusions[hook.build_status] ?? hook.build_status) : null,
    // GitLab sends a stale failure reason on jobs that did not fail; only a failure has one.
    failureReason: hook.build_status === "failed" ? (hook.build_failure_reason ?? null) : null,
    queuedAt: queuedAtOf(hook, status, receivedAt),
    startedAt: status === "waiting" || status === "queued" ? null : hook.build_started_at,
    finishedAt: terminal ? hook.build_finished_at : null,
    runner:
      status === "running" || terminal
        ? hook.runner
          ? { id: hook.runner.id ?? null, name: hook.runner.description ?? null }
          : null
        : null,
    instanceId: null,
    url: hook.project?.web_url ? `${hook.project.web_url}/-/jobs/${hook.build_id}` : null,
  };
}

const conclusions: Record<string, string> = {
  success: "success",
  failed: "failure",
  canceled: "cancelled",
  skipped: "skipped",
};

function queuedAtOf(hook: JobHookPayload, status: JobStatus, receivedAt: Date): string | null {
  if (status === "waiting") return null;
  const queued = hook.build_queued_duration;
  // Exact once the job has started: it waited `queued_duration` before `started_at`.
  if (hook.build_started_at && queued != null) {
    return isoFromMs(Date.parse(hook.build_started_at) - queued * 1000);
  }
  if (status === "queued") {
    // A duration that reaches before 1970 is not one: the job is queued now, as far as Hearth knows.
    return isoFromMs(receivedAt.getTime() - (queued ?? 0) * 1000) ?? receivedAt.toISOString();
  }
  return null;
}

/**
 * A job as GitLab's jobs API lists it (https://docs.gitlab.com/api/jobs/#list-project-jobs): the
 * fields the Job Hook's event is made of, by their API names, plus its tags.
 */
export const apiJobSchema = z.object({
  id,
  name: text(1000),
  stage: text(1000).nullish(),
  status: text(100),
  created_at: z.string().nullish(),
  started_at: z.string().nullish(),
  finished_at: z.string().nullish(),
  queued_duration: z.number().nonnegative().nullish(),
  failure_reason: text(200).nullish(),
  pipeline: z.object({ id, project_id: id }),
  web_url: text(2000).nullish(),
  tag_list: z.array(text(256)).max(100),
  runner: z.object({ id: id.nullish(), description: text(2000).nullish() }).nullish(),
});

/**
 * The job event a job of the API describes: the same event its Job Hook makes (the API's job is read
 * as the hook's payload), with its tags, which the API says and the hook does not. `gitlabUrl` tells
 * the project's path from the job's `web_url` (`<gitlabUrl>/<path>/-/jobs/<id>`); `receivedAt`, when
 * the answer came, stands in for a pending job's queue time as the hook's reception does. Throws a
 * ZodError when the job does not have GitLab's shape.
 */
export function jobEventFromApiJob(body: unknown, gitlabUrl: string, receivedAt: Date): JobEvent | undefined {
  const job = apiJobSchema.parse(body);
  const base = gitlabUrl.replace(/\/+$/, "");
  const suffix = `/-/jobs/${job.id}`;
  const projectUrl = job.web_url?.endsWith(suffix) ? job.web_url.slice(0, -suffix.length) : undefined;
  const path =
    projectUrl?.startsWith(`${base}/`) && projectUrl.length > base.length + 1
      ? projectUrl.slice(base.length + 1)
      : undefined;
  const event = jobEventFromJobHook(
    {
      object_kind: "build",
      build_id: job.id,
      build_name: job.name,
      build_stage: job.stage,
      build_status: job.status,
      build_created_at: job.created_at,
      build_started_at: job.started_at,
      build_finished_at: job.finished_at,
      build_queued_duration: job.queued_duration,
      build_failure_reason: job.failure_reason,
      pipeline_id: job.pipeline.id,
      project_id: job.pipeline.project_id,
      project: path ? { path_with_namespace: path, web_url: projectUrl } : null,
      runner: job.runner,
    },
    receivedAt,
  );
  return event && { ...event, labels: normalizeLabels(job.tag_list), labelsKnown: true };
}
