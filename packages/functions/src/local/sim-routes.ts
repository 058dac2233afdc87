import type { Hono } from "hono";
import * as z from "zod";
import { errorResponse } from "../http";
import type { SimulatedRunners } from "./sim-runners";

const simulatedJobs = z
  .array(
    z.object({
      job: z.object({
        source: z.enum(["gitlab", "github"]),
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

/**
 * Local mode's simulation controls: the demo describes jobs before it queues them, and the local
 * GitLab API answers tag lookups for them (`GET /sim/gitlab/api/v4/projects/:id/jobs/:job_id`).
 */
export function simRoutes(app: Hono, runners: SimulatedRunners): void {
  app.post("/sim/jobs", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return errorResponse(c, 400, "malformed", "body is not JSON");
    }
    const parsed = simulatedJobs.safeParse(body);
    if (!parsed.success)
      return errorResponse(c, 400, "invalid_payload", parsed.error.issues[0]?.message ?? "invalid");
    runners.describe(parsed.data);
    return c.json({ status: "ok", jobs: parsed.data.length });
  });
  app.get("/sim/gitlab/api/v4/projects/:project/jobs/:job", (c) => {
    const tags = runners.tagsOf(c.req.param("job"));
    if (!tags) return c.json({ message: "404 Job Not Found" }, 404);
    return c.json({ id: Number(c.req.param("job")), status: "pending", tag_list: tags });
  });
}
