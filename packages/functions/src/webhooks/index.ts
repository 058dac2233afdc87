import {
  createGitHubIngest,
  createGitLabIngest,
  type IngestResult,
  needsTagLookup,
  type WebhookDelivery,
} from "@hearth/core/ingest";
import type { Job, Source } from "@hearth/core/jobs";
import type { Ledger } from "@hearth/core/ledger";
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
      case "recorded": {
        const { job, outcome } = result;
        deps.log.info("webhook recorded", { source, outcome, job: job?.id, status: job?.status, ms });
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
