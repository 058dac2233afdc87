import { InvalidInterruptionEvent } from "@hearth/core/interruptions";
import { sources } from "@hearth/core/jobs";
import type { SimulatedFleet } from "@hearth/core/simulation/fleet";
import type { Context, Hono } from "hono";
import * as z from "zod";
import { bearerMatches, errorResponse, readJsonBody } from "../http";
import type { EventOutcome } from "../interruptions";
import { authenticatesItself } from "./sim-forge-routes";
import { MAX_DESCRIBED_JOBS, type SimulatedJob, type SimulatedRunners } from "./sim-runners";

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

const webhookLossBody = z.strictObject({
  rate: z.number().min(0, "rate is from 0 to 1").max(1, "rate is from 0 to 1"),
});

/** The first problem zod found, with where it is (`0.job.id: …`). */
const issueText = (error: z.ZodError): string => {
  const issue = error.issues[0];
  if (!issue) return "invalid";
  return issue.path.length ? `${issue.path.join(".")}: ${issue.message}` : issue.message;
};

export interface SimRouteOptions {
  /** The status token: when set, the simulation's routes need it too (`Authorization: Bearer`). */
  token: string | undefined;
  /** Called once new descriptions are kept, before the answer (they are written to `--data`). */
  described?: () => void;
  /**
   * The simulated forges: `POST /sim/forge/jobs` creates jobs there (queued, described as `/sim/jobs`
   * describes them), delivering their `queued` webhooks only when asked (`?webhook=queued`, through the
   * deliveries and their loss rate); `GET`/`PUT /sim/forge/webhook-loss` read and set the share of
   * deliveries dropped.
   */
  forge?: {
    create(jobs: SimulatedJob[], webhook: "none" | "queued"): Promise<{ delivered: number; dropped: number }>;
    webhookLoss: { get(): number; set(rate: number): void };
  };
  /** EventBridge events as AWS delivers them, each starting HandleInterruption (`acceptInterruptionEvents`). */
  interruptionEvents?: (body: unknown) => Promise<EventOutcome[]>;
  /** A GitLab job the simulated forge tracks, as `GET /projects/:id/jobs/:job_id` answers it. */
  gitlabJob?: (project: string, job: string) => unknown;
  /**
   * The simulated fleet, for `POST /sim/fleet/instances/:id/capacity-returns`: EC2 starts a spot warm
   * instance it stopped for an interruption (`SimulatedFleet.capacityReturns`).
   */
  fleet?: Pick<SimulatedFleet, "get" | "capacityReturns">;
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
  /**
   * Reads, checks and describes a list of simulated jobs: the jobs, or the refusal to answer with.
   * `/sim/forge/jobs` creates them too, so it also refuses a job listed twice.
   */
  async function describeBody(c: Context, forForge: boolean) {
    const read = await readJsonBody(c.req.raw);
    if (!read.ok) return errorResponse(c, read.status, read.code, read.message);
    const parsed = simulatedJobs.safeParse(read.body);
    if (!parsed.success) {
      const message = forForge ? issueText(parsed.error) : (parsed.error.issues[0]?.message ?? "invalid");
      return errorResponse(c, 400, "invalid_payload", message);
    }
    if (forForge) {
      const ids = new Set<string>();
      for (const { job } of parsed.data) {
        const key = `${job.source}#${job.id}`;
        if (ids.has(key)) return errorResponse(c, 400, "invalid_payload", `job ${key} is listed twice`);
        ids.add(key);
      }
    }
    if (!runners.describe(parsed.data)) {
      return errorResponse(
        c,
        413,
        "too_many_jobs",
        `the simulation keeps at most ${MAX_DESCRIBED_JOBS} described jobs that have not finished`,
      );
    }
    options.described?.();
    return parsed.data;
  }
  app.post("/sim/jobs", async (c) => {
    const jobs = await describeBody(c, false);
    if (jobs instanceof Response) return jobs;
    return c.json({ status: "ok", jobs: jobs.length });
  });
  app.post("/sim/forge/jobs", async (c) => {
    const forge = options.forge;
    if (!forge) return errorResponse(c, 404, "not_found", "no simulated forge runs here");
    const webhook = c.req.query("webhook") ?? "none";
    if (webhook !== "none" && webhook !== "queued")
      return errorResponse(c, 400, "invalid_query", "webhook is none (the default) or queued");
    const jobs = await describeBody(c, true);
    if (jobs instanceof Response) return jobs;
    const { delivered, dropped } = await forge.create(jobs, webhook);
    return c.json({ status: "accepted", jobs: jobs.length, webhook, delivered, dropped }, 202);
  });
  app.get("/sim/forge/webhook-loss", (c) => {
    if (!options.forge) return errorResponse(c, 404, "not_found", "no simulated forge runs here");
    return c.json({ rate: options.forge.webhookLoss.get() });
  });
  app.put("/sim/forge/webhook-loss", async (c) => {
    const forge = options.forge;
    if (!forge) return errorResponse(c, 404, "not_found", "no simulated forge runs here");
    const read = await readJsonBody(c.req.raw);
    if (!read.ok) return errorResponse(c, read.status, read.code, read.message);
    const body = read.body;
    const parsed = webhookLossBody.safeParse(body);
    if (!parsed.success) return errorResponse(c, 400, "invalid_payload", issueText(parsed.error));
    forge.webhookLoss.set(parsed.data.rate);
    return c.json({ rate: forge.webhookLoss.get() });
  });
  // EC2's spot events, exactly as EventBridge delivers them (one, or a list): what the rules do in AWS.
  app.post("/sim/aws/events", async (c) => {
    const accept = options.interruptionEvents;
    if (!accept) return errorResponse(c, 404, "not_found", "no HandleInterruption runs here");
    const read = await readJsonBody(c.req.raw);
    if (!read.ok) return errorResponse(c, read.status, read.code, read.message);
    const body = read.body;
    try {
      return c.json({ status: "accepted", events: await accept(body) }, 202);
    } catch (error) {
      if (error instanceof InvalidInterruptionEvent)
        return errorResponse(c, 400, "invalid_event", error.message);
      throw error;
    }
  });
  // Spot capacity is back for an instance an interruption stopped: EC2 starts it, store kept.
  app.post("/sim/fleet/instances/:id/capacity-returns", async (c) => {
    const fleet = options.fleet;
    if (!fleet) return errorResponse(c, 404, "not_found", "no simulated fleet runs here");
    const id = c.req.param("id");
    if (!/^i-[0-9a-f]{8,17}$/.test(id))
      return errorResponse(c, 400, "invalid_instance", "the instance id is i- and 8 or 17 hex digits");
    if (!fleet.get(id)) return errorResponse(c, 404, "not_found", `no instance ${id} in the simulated fleet`);
    try {
      await fleet.capacityReturns(id);
    } catch (error) {
      return errorResponse(c, 409, "not_interrupted", error instanceof Error ? error.message : String(error));
    }
    return c.json({ instanceId: id, lifecycle: fleet.get(id)?.lifecycle ?? null }, 202);
  });
  app.get("/sim/gitlab/api/v4/projects/:project/jobs/:job", (c) => {
    // A job the forge tracks, with its status as it is now (the sweep reads stuck jobs so).
    const tracked = options.gitlabJob?.(c.req.param("project"), c.req.param("job"));
    if (tracked) return c.json(tracked);
    const tags = runners.tagsOf(c.req.param("job"));
    if (!tags) return c.json({ message: "404 Job Not Found" }, 404);
    return c.json({ id: Number(c.req.param("job")), status: "pending", tag_list: tags });
  });
}
