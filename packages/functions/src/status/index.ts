import { createHash, timingSafeEqual } from "node:crypto";
import { buildStatus, StatusCursorError, type StatusDeps } from "@hearth/core/status/build";
import { type Context, Hono } from "hono";
import { errorResponse } from "../http";

export interface StatusRouteDeps extends StatusDeps {
  stage: string;
  /** When set, `Authorization: Bearer <token>` is required. Deployed stages always set it. */
  token: string | undefined;
  /** The status page's origin when it is served from elsewhere (the deployed static site). */
  allowOrigin?: string;
}

const digest = (value: string) => createHash("sha256").update(value).digest();

function authorized(c: Context, token: string | undefined): boolean {
  if (!token) return true;
  // The scheme's name is case-insensitive (RFC 9110, section 11.1): `bearer` is `Bearer`.
  const given = /^Bearer +(\S+) *$/i.exec(c.req.header("authorization") ?? "")?.[1];
  return given !== undefined && timingSafeEqual(digest(given), digest(token));
}

/** `GET /api/status`: the status document (see `@hearth/core/status`). */
export function statusRoutes(deps: StatusRouteDeps) {
  const cors = (c: Context) => {
    if (!deps.allowOrigin) return;
    c.header("Access-Control-Allow-Origin", deps.allowOrigin);
    c.header("Access-Control-Allow-Headers", "Authorization");
    c.header("Access-Control-Allow-Methods", "GET, OPTIONS");
    // The page measures staleness on the server's clock.
    c.header("Access-Control-Expose-Headers", "Date");
    c.header("Vary", "Origin");
  };
  return new Hono()
    .options("/status", (c) => {
      cors(c);
      return c.body(null, 204);
    })
    .get("/status", async (c) => {
      cors(c);
      c.header("Cache-Control", "no-store");
      if (!authorized(c, deps.token)) {
        c.header("WWW-Authenticate", 'Bearer realm="hearth"');
        return errorResponse(
          c,
          401,
          "unauthorized",
          "this status needs a token: send Authorization: Bearer <token>",
        );
      }
      const cursor = c.req.query("cursor");
      try {
        return c.json(await buildStatus(deps, deps.stage, { cursor }));
      } catch (error) {
        if (error instanceof StatusCursorError) return errorResponse(c, 400, "bad_request", error.message);
        throw error;
      }
    })
    .all("/status", (c) => {
      c.header("Allow", "GET, OPTIONS");
      return errorResponse(c, 405, "method_not_allowed", `${c.req.method} is not allowed here; use GET`);
    });
}
