import {
  createGitHubIngest,
  createGitLabIngest,
  type IngestResult,
  needsTagLookup,
  type WebhookDelivery,
} from "@hearth/core/ingest";
import type { Job, Source } from "@hearth/core/jobs";
import type { Ledger } from "@hearth/core/ledger";
import { needsRetry, type RetryOutcome } from "@hearth/core/retries";
import type { WorkflowRunCompleted } from "@hearth/core/sources/github";
import { type Context, Hono } from "hono";
import { errorResponse, readBody } from "../http";
import type { Logger } from "../log";

export interface WebhookDeps {
  ledger: Ledger;
  github: { secret: string | undefined };
  gitlab: { token: string | undefined; signingToken: string | undefined };
  log: Logger;
  now?: () => Date;
  /**
   * Runs the work that may follow the answer: a GitLab job's tag lookup. A Lambda runs it before
   * answering (it freezes once it has answered); local mode after.
   */
  background: (task: () => Promise<void>) => Promise<void> | void;
  /**
   * Core's decision for a job a delivery just recorded as queued (its tags, its pool, a spare slot or
   * a ScaleFleet run). A failure here is logged, never returned: the job is recorded, and the periodic
   * tick will scale for it.
   */
  afterJobRecorded?: (job: Job) => Promise<void>;
  /**
   * Core's retries: an interrupted job that failed is retried, a re-run's job is linked to the job it
   * retries, and a completed GitHub run's awaited re-run goes. Failures are logged, never returned.
   */
  retries?: {
    afterJobRecorded(job: Job): Promise<RetryOutcome>;
    afterRunCompleted(run: WorkflowRunCompleted): Promise<RetryOutcome>;
  };
}

const rejectionStatus = {
  unauthorized: 401,
  malformed: 400,
  invalid_payload: 400,
  not_configured: 503,
} as const;

/** `POST /webhooks/github` and `POST /webhooks/gitlab`. */
export function webhookRoutes(deps: WebhookDeps) {
  const now = deps.now ?? (() => new Date());
  const ingest = {
    github: createGitHubIngest({ ledger: deps.ledger, secret: deps.github.secret }),
    gitlab: createGitLabIngest({
      ledger: deps.ledger,
      token: deps.gitlab.token,
      signingToken: deps.gitlab.signingToken,
    }),
  };

  const afterRecorded = async (job: Job) => {
    try {
      await deps.afterJobRecorded?.(job);
    } catch (error) {
      deps.log.error("could not request scaling", {
        job: job.id,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };

  const retry = async (what: string, fields: Record<string, unknown>, task: () => Promise<RetryOutcome>) => {
    try {
      const outcome = await task();
      if (outcome.kind !== "none") deps.log.info(what, { ...fields, outcome: outcome.kind });
    } catch (error) {
      deps.log.error(`${what} failed`, {
        ...fields,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };

  const handle = (source: Source) => async (c: Context) => {
    const started = performance.now();
    const read = await readBody(c.req.raw);
    if (!read.ok) {
      deps.log.warn("webhook rejected", { source, code: read.code });
      return errorResponse(c, read.status, read.code, read.message);
    }
    const delivery: WebhookDelivery = {
      header: (name) => c.req.header(name),
      body: read.body,
      receivedAt: now(),
    };
    const result: IngestResult = await ingest[source](delivery);
    const ms = Math.round((performance.now() - started) * 100) / 100;
    switch (result.kind) {
      case "rejected":
        deps.log.warn("webhook rejected", { source, code: result.code, reason: result.message, ms });
        return errorResponse(c, rejectionStatus[result.code], result.code, result.message);
      case "pong":
        return c.json({ status: "pong" }, 200);
      case "ignored":
        return c.json({ status: "ignored", reason: result.reason }, 200);
      case "run-completed": {
        // Only a run with an interrupted job has a re-run to ask for; any other costs one read.
        const { run } = result;
        const retries = deps.retries;
        if (retries) {
          await deps.background(() =>
            retry("workflow run retry", { run: run.runId, attempt: run.attempt }, () =>
              retries.afterRunCompleted(run),
            ),
          );
        }
        return c.json({ status: "accepted" }, 202);
      }
      case "recorded": {
        const { job, outcome } = result;
        deps.log.info("webhook recorded", { source, outcome, job: job?.id, status: job?.status, ms });
        const retries = deps.retries;
        if (job && outcome === "recorded" && retries) {
          const fields = { source, job: job.id };
          // A forge call follows a failed interrupted job; a re-run's job is only linked (one read),
          // before its scaling, so that the planner knows it is a retry.
          if (needsRetry(job))
            await deps.background(() => retry("job retry", fields, () => retries.afterJobRecorded(job)));
          else await retry("job retry", fields, () => retries.afterJobRecorded(job));
        }
        if (job && outcome === "recorded" && job.status === "queued") {
          // A GitLab job's pool waits for its tags, which GitLab's API may take a while to say.
          if (needsTagLookup(job)) await deps.background(() => afterRecorded(job));
          else await afterRecorded(job);
        }
        return c.json(
          { status: outcome, job: job ? { source: job.source, id: job.id, status: job.status } : null },
          outcome === "duplicate" ? 200 : 202,
        );
      }
    }
  };

  const methodNotAllowed = (c: Context) => {
    c.header("Allow", "POST");
    return errorResponse(c, 405, "method_not_allowed", `${c.req.method} is not allowed here; use POST`);
  };

  return new Hono()
    .post("/github", handle("github"))
    .post("/gitlab", handle("gitlab"))
    .all("/github", methodNotAllowed)
    .all("/gitlab", methodNotAllowed);
}
