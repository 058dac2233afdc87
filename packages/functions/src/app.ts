import { Hono } from "hono";
import { type AgentDeps, agentRoutes } from "./agent";
import { errorResponse } from "./http";
import type { Logger } from "./log";
import { type StatusRouteDeps, statusRoutes } from "./status";
import { type WebhookDeps, webhookRoutes } from "./webhooks";

export interface AppDeps extends WebhookDeps {
  log: Logger;
  /** `/agent/heartbeat`; absent in a function that does not serve it. */
  agent?: Omit<AgentDeps, "log">;
  /** `GET /api/status`; absent in a function that does not serve it. */
  status?: StatusRouteDeps;
}

/** The HTTP surface of Hearth, the same in Lambda and in local mode. */
export function createApp(deps: AppDeps) {
  const app = new Hono();
  app.route("/webhooks", webhookRoutes(deps));
  if (deps.agent) app.route("/agent", agentRoutes({ ...deps.agent, log: deps.log }));
  if (deps.status) app.route("/api", statusRoutes(deps.status));
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.notFound((c) => errorResponse(c, 404, "not_found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((error, c) => {
    deps.log.error("request failed", { path: c.req.path, error: error.message });
    return errorResponse(c, 500, "internal", "Hearth could not handle this request; it has been logged");
  });
  return app;
}
