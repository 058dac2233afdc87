import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { serveStatic } from "@hono/node-server/serve-static";
import type { Hono } from "hono";

/** The status page (built by `npm start`'s prestart step into packages/web/dist), served at `/`. */
export function serveStatusPage(app: Hono): void {
  const webRoot = relative(process.cwd(), fileURLToPath(new URL("../../../web/dist", import.meta.url)));
  app.use("/*", serveStatic({ root: webRoot }));
}
