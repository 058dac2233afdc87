import { type GitLabJobs, TagsUnavailable } from "@hearth/core/gitlab-api";
import {
  createGitHubIngest,
  createGitLabIngest,
  type IngestResult,
  needsTagLookup,
  resolveTags,
  type WebhookDelivery,
} from "@hearth/core/ingest";
import type { Job } from "@hearth/core/jobs";
import type { Ledger } from "@hearth/core/ledger";
import { type Context, Hono } from "hono";
import { errorResponse, readBody } from "../http";
import type { Logger } from "../log";

export interface WebhookDeps {
  ledger: Ledger;
  github: { secret: string | undefined };
  gitlab: { token: string | undefined; signingToken: string | undefined; api: GitLabJobs | undefined };
  log: Logger;
  now?: () => Date;
  /** Runs slow follow-up work after the answer is sent (the GitLab tag lookup). */
  background: (task: () => Promise<void>) => void;
  /**
   * Called (and awaited) for a job a delivery just recorded as queued: starts ScaleFleet when
   * capacity does not cover it. A failure here is logged, never returned: the job is recorded, and
   * the periodic tick will scale for it.
   */
  onJobQueued?: (job: Job) => Promise<void>;
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

  const queued = async (job: Job) => {
    try {
      await deps.onJobQueued?.(job);
    } catch (error) {
      deps.log.error("could not request scaling", {
        job: job.id,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  };

  /**
   * The GitLab job's tags decide its pool, so scaling waits for them: the lookup runs after the
   * answer, and then asks for capacity. Without an API, or if the lookup fails, the job is routed
   * as untagged.
   */
  const lookUpTags = (job: Job, api: GitLabJobs) => {
    deps.background(async () => {
      let resolved: Job | undefined;
      try {
        resolved = await resolveTags(deps.ledger, api, job);
      } catch (error) {
        // Nothing to look up with: the host has said so once already.
        if (!(error instanceof TagsUnavailable))
          deps.log.warn("gitlab tag lookup failed", {
            job: job.id,
            project: job.projectId,
            error: error instanceof Error ? error.message : String(error),
          });
      }
      const current = resolved ?? job;
      if (current.status === "queued") await queued(current);
    });
  };

  const handle = (source: "github" | "gitlab") => async (c: Context) => {
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
          if (needsTagLookup(job) && deps.gitlab.api) lookUpTags(job, deps.gitlab.api);
          else await queued(job);
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
