import * as z from "zod";
import { instanceFromRunnerName, type JobEvent, type JobStatus, normalizeLabels } from "../../jobs";

/**
 * GitHub `workflow_job` webhooks.
 * Payload reference: https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_job
 * Only the fields Hearth reads are checked; the rest may change freely.
 */

const id = z.union([z.number().int().nonnegative(), z.string().regex(/^\d{1,20}$/)]).transform(String);
/** Free text GitHub bounds far below these; the ledger item (400 KB at most) must stay small. */
const text = (max: number) => z.string().max(max);
// Stored in UTC (`…Z`): the ledger indexes jobs by the day of their queue time, as a string.
const time = z.iso
  .datetime({ offset: true })
  .nullish()
  .transform((value, ctx) => {
    if (value == null) return null;
    const ms = Date.parse(value);
    if (!(ms >= 0 && ms < 253_402_300_800_000)) {
      ctx.addIssue({ code: "custom", message: "time out of range" });
      return z.NEVER;
    }
    return new Date(ms).toISOString();
  });

export const workflowJobPayloadSchema = z.object({
  action: z.string(),
  workflow_job: z.object({
    id,
    run_id: id,
    run_attempt: z.number().int().nonnegative().nullish(),
    name: text(1000),
    workflow_name: text(1000).nullish(),
    status: z.string(),
    conclusion: text(100).nullish(),
    created_at: time,
    started_at: time,
    completed_at: time,
    labels: z.array(text(256)).max(100),
    runner_id: z.number().int().nullish(),
    runner_name: text(1000).nullish(),
    html_url: text(2000).nullish(),
  }),
  repository: z.object({ full_name: text(1000).min(1) }),
});
export type WorkflowJobPayload = z.infer<typeof workflowJobPayloadSchema>;

function statusOf(payload: WorkflowJobPayload): JobStatus | undefined {
  const { action, workflow_job: job } = payload;
  switch (action) {
    case "queued":
      // GitHub may announce a job as queued while it still waits for a deployment approval.
      return job.status === "waiting" ? "waiting" : "queued";
    case "waiting":
      return "waiting";
    case "in_progress":
      return "running";
    case "completed":
      return job.conclusion === "cancelled" || job.conclusion === "skipped" ? "cancelled" : "completed";
    default:
      return undefined;
  }
}

/**
 * The job event a `workflow_job` delivery describes, or undefined for actions Hearth does not track.
 * Throws a ZodError when the payload does not have the shape GitHub documents.
 */
export function jobEventFromWorkflowJob(body: unknown): JobEvent | undefined {
  const payload = workflowJobPayloadSchema.parse(body);
  const status = statusOf(payload);
  if (status === undefined) return undefined;
  const job = payload.workflow_job;
  // GitHub fills runner and start fields early (even in some `queued` examples); only a job that has
  // started says truthfully who runs it.
  const started =
    status === "running" || ((status === "completed" || status === "cancelled") && !!job.runner_name);
  const runnerName = started ? (job.runner_name ?? null) : null;
  return {
    source: "github",
    id: job.id,
    project: payload.repository.full_name,
    projectId: null,
    pipelineId: job.run_id,
    name: job.workflow_name ? `${job.workflow_name} / ${job.name}` : job.name,
    attempt: job.run_attempt ?? 1,
    labels: normalizeLabels(job.labels),
    labelsKnown: true,
    status,
    conclusion: status === "completed" || status === "cancelled" ? (job.conclusion ?? null) : null,
    failureReason: null,
    queuedAt: job.created_at ?? null,
    startedAt: started ? (job.started_at ?? null) : null,
    finishedAt: status === "completed" || status === "cancelled" ? (job.completed_at ?? null) : null,
    runner: started ? { id: job.runner_id == null ? null : String(job.runner_id), name: runnerName } : null,
    instanceId: instanceFromRunnerName(runnerName),
    url: job.html_url ?? null,
  };
}

/**
 * GitHub `workflow_run` webhooks, read only for what a re-run needs: which run, which attempt, and
 * whether it completed. Payload reference:
 * https://docs.github.com/en/webhooks/webhook-events-and-payloads#workflow_run
 */
export const workflowRunPayloadSchema = z.object({
  action: z.string().max(100),
  workflow_run: z.object({
    id,
    run_attempt: z.number().int().min(1).max(1000).nullish(),
    status: text(100).nullish(),
    conclusion: text(100).nullish(),
  }),
  repository: z.object({ full_name: text(1000).min(1) }),
});

export interface WorkflowRunCompleted {
  repository: string;
  runId: string;
  attempt: number;
  conclusion: string | null;
}

/**
 * The run a `workflow_run` `completed` delivery describes, or undefined for its other actions
 * (`requested`, `in_progress`). The action says it: GitHub's own examples carry a `completed` action
 * with a stale `status`. Throws a ZodError when the payload does not have GitHub's shape.
 */
export function completedRunFromWorkflowRun(body: unknown): WorkflowRunCompleted | undefined {
  const payload = workflowRunPayloadSchema.parse(body);
  if (payload.action !== "completed") return undefined;
  return {
    repository: payload.repository.full_name,
    runId: payload.workflow_run.id,
    attempt: payload.workflow_run.run_attempt ?? 1,
    conclusion: payload.workflow_run.conclusion ?? null,
  };
}
