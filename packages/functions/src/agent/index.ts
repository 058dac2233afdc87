import { acceptHeartbeat, type HeartbeatDeps, type HeartbeatRejection } from "@hearth/core/heartbeat";
import { type Context, Hono } from "hono";
import { errorResponse, readBody } from "../http";
import type { Logger } from "../log";

export interface AgentDeps extends HeartbeatDeps {
  /** The instance the caller authenticated as (IAM session in AWS, token locally), or null. */
  identify: (c: Context) => string | null | Promise<string | null>;
  /**
   * What a caller `identify` cannot name gets: 401 `unauthenticated` where the route is the one that
   * checks credentials (local mode's tokens; the default), 403 `forbidden` behind API Gateway's IAM
   * authorization, which answers unsigned requests itself: a caller that reaches the route is signed,
   * as some principal that is not an instance.
   */
  unidentified?: 401 | 403;
  log: Logger;
}

const rejectionStatus: Record<HeartbeatRejection, 400 | 403> = {
  invalid_heartbeat: 400,
  forbidden: 403,
  unknown_instance: 403,
};

/** A heartbeat is small; anything near this is not one. */
const MAX_HEARTBEAT_BYTES = 64 * 1024;

/** `POST /agent/heartbeat`. */
export function agentRoutes(deps: AgentDeps) {
  return new Hono()
    .post("/heartbeat", async (c) => {
      // Who is calling comes first: a caller that is no instance learns nothing of the schema, and
      // costs no body read.
      const caller = await deps.identify(c);
      if (caller === null) {
        const forbidden = deps.unidentified === 403;
        const code = forbidden ? "forbidden" : "unauthenticated";
        deps.log.warn("heartbeat rejected", { code });
        if (!forbidden) c.header("WWW-Authenticate", "Bearer");
        return errorResponse(
          c,
          forbidden ? 403 : 401,
          code,
          forbidden ? "not an instance of the fleet" : "no instance credentials",
        );
      }
      const read = await readBody(c.req.raw, MAX_HEARTBEAT_BYTES);
      if (!read.ok) return errorResponse(c, read.status, read.code, read.message);
      let body: unknown;
      try {
        body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(read.body));
      } catch {
        return errorResponse(c, 400, "malformed", "body is not valid UTF-8 JSON");
      }
      const result = await acceptHeartbeat(deps, caller, body);
      if (result.kind === "rejected") {
        deps.log.warn("heartbeat rejected", { code: result.code, caller });
        return errorResponse(c, rejectionStatus[result.code], result.code, result.message);
      }
      const { instance, protocol, instructions } = result;
      // A version-0 agent gets the answer it always had; a later one, its instructions too.
      return c.json({
        status: "ok",
        instance: instance.id,
        runner: instance.runner,
        ...(instructions ? { protocol, instructions } : {}),
      });
    })
    .all("/heartbeat", (c) => {
      c.header("Allow", "POST");
      return errorResponse(c, 405, "method_not_allowed", `${c.req.method} is not allowed here; use POST`);
    });
}
