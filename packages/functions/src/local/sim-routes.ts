import { InvalidInterruptionEvent } from "@hearth/core/interruptions";
import { sources } from "@hearth/core/jobs";
import type { Context, Hono } from "hono";
import * as z from "zod";
import { bearerMatches, errorResponse, readBody } from "../http";
import type { EventOutcome } from "../interruptions";
import { authenticatesItself } from "./sim-forge-routes";
import { MAX_DESCRIBED_JOBS, type SimulatedRunners } from "./sim-runners";

const simulatedJobs = z
  .array(
    z.object({
      job: z.object({
        source: z.enum(sources),
        id: z.string().regex(/^\d{1,20}$/),
        project: z.string().min(1).max(200),
        projectId: z.string().regex(/^\d{1,20}$/),
        pipelineId: z.string().regex(/^\d{1,20}$/),
        name: z.string().min(1).max(300),
        labels: z.array(z.string().max(100)).max(50),
      }),
      warmSeconds: z.number().nonnegative().max(86_400),
      coldSeconds: z.number().nonnegative().max(86_400),
    }),
  )
  .max(5_000);

export interface SimRouteOptions {
  /** The status token: when set, the simulation's routes need it too (`Authorization: Bearer`). */
  token: string | undefined;
  /** Called once new descriptions are kept, before the answer (they are written to `--data`). */
  described?: () => void;
  /** EventBridge events as AWS delivers them, each starting HandleInterruption (`acceptInterruptionEvents`). */
  interruptionEvents?: (body: unknown) => Promise<EventOutcome[]>;
}

/**
 * Local mode's simulation controls: the demo describes jobs before it queues them, and the local
 * GitLab API answers tag lookups for them (`GET /sim/gitlab/api/v4/projects/:id/jobs/:job_id`).
 * Bodies have the webhooks' limit (1 MiB), the table of descriptions a bound, and with a status token
 * set, every route asks for it, except the simulated forges' routes that authenticate as their forge
 * does (sim-forge-routes.ts).
 */
export function simRoutes(app: Hono, runners: SimulatedRunners, options: SimRouteOptions): void {
  app.use("/sim/*", async (c: Context, next) => {
    // The simulated GitHub, and GitLab's runner-facing routes, authenticate as their forges do.
    if (authenticatesItself(c.req.method, c.req.path)) return next();
    // GitLab's API clients send their token as PRIVATE-TOKEN.
    const privateToken = c.req.header("private-token");
    const ok =
      bearerMatches(c.req.header("authorization"), options.token) ||
      (privateToken !== undefined && bearerMatches(`Bearer ${privateToken}`, options.token));
    if (!ok) {
      c.header("WWW-Authenticate", 'Bearer realm="hearth"');
      return errorResponse(
        c,
        401,
        "unauthorized",
        "the simulation needs the status token: Authorization: Bearer <token>",
      );
    }
    await next();
  });
  app.post("/sim/jobs", async (c) => {
    const read = await readBody(c.req.raw);
    if (!read.ok) return errorResponse(c, read.status, read.code, read.message);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(read.body));
    } catch {
      return errorResponse(c, 400, "malformed", "body is not JSON");
    }
    const parsed = simulatedJobs.safeParse(body);
    if (!parsed.success)
      return errorResponse(c, 400, "invalid_payload", parsed.error.issues[0]?.message ?? "invalid");
    if (!runners.describe(parsed.data)) {
      return errorResponse(
        c,
        413,
        "too_many_jobs",
        `the simulation keeps at most ${MAX_DESCRIBED_JOBS} described jobs that have not finished`,
      );
    }
    options.described?.();
    return c.json({ status: "ok", jobs: parsed.data.length });
  });
  // EC2's spot events, exactly as EventBridge delivers them (one, or a list): what the rules do in AWS.
  app.post("/sim/aws/events", async (c) => {
    const accept = options.interruptionEvents;
    if (!accept) return errorResponse(c, 404, "not_found", "no HandleInterruption runs here");
    const read = await readBody(c.req.raw);
    if (!read.ok) return errorResponse(c, read.status, read.code, read.message);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(read.body));
    } catch {
      return errorResponse(c, 400, "malformed", "body is not UTF-8 JSON");
    }
    try {
      return c.json({ status: "accepted", events: await accept(body) }, 202);
    } catch (error) {
      if (error instanceof InvalidInterruptionEvent)
        return errorResponse(c, 400, "invalid_event", error.message);
      throw error;
    }
  });
  app.get("/sim/gitlab/api/v4/projects/:project/jobs/:job", (c) => {
    const tags = runners.tagsOf(c.req.param("job"));
    if (!tags) return c.json({ message: "404 Job Not Found" }, 404);
    return c.json({ id: Number(c.req.param("job")), status: "pending", tag_list: tags });
  });
}
