import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";

/** What the fake `/api/status` answers; tests change it between steps. */
export interface FakeApi {
  /** When set, the API wants `Authorization: Bearer <token>` and answers 401 otherwise. */
  token: string | null;
  /** When set, the API fails with this HTTP status, in Hearth's error shape. */
  failWith: number | null;
  /** The document, given the request's `cursor` parameter (null without one). */
  document: (cursor: string | null) => unknown;
  /** Whether answers carry a `Date` header, which the page uses to measure the data's age. */
  sendDate: boolean;
  /** The Authorization header of each status request, in order. */
  authorizations: (string | undefined)[];
  /** Local mode's simulated forges' webhook loss rate (`/sim/forge/webhook-loss`); undefined: no such route. */
  webhookLoss?: number;
}

const types: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
};

/** The built page and a fake status API on one loopback origin, as local mode serves them. */
export async function servePage(dir: string, api: FakeApi): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer(async (request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    if (path === "/sim/forge/webhook-loss" && api.webhookLoss !== undefined) {
      // As local mode answers it: the status token, then GET the rate or PUT {rate} from 0 to 1.
      const answer = (status: number, body: unknown) => {
        response.writeHead(status, { "content-type": "application/json" });
        response.end(JSON.stringify(body));
      };
      if (api.token !== null && request.headers.authorization !== `Bearer ${api.token}`) {
        return answer(401, { error: { code: "unauthorized", message: "a status token is required" } });
      }
      if (request.method === "PUT") {
        let text = "";
        for await (const chunk of request) text += chunk;
        const rate = (() => {
          try {
            return (JSON.parse(text) as { rate?: unknown }).rate;
          } catch {
            return undefined;
          }
        })();
        if (typeof rate !== "number" || rate < 0 || rate > 1) {
          return answer(400, { error: { code: "invalid_payload", message: "rate: rate is from 0 to 1" } });
        }
        api.webhookLoss = rate;
      }
      return answer(200, { rate: api.webhookLoss });
    }
    if (path === "/api/status") {
      api.authorizations.push(request.headers.authorization);
      response.sendDate = api.sendDate;
      const json = (status: number, body: unknown) => {
        response.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
        response.end(JSON.stringify(body));
      };
      if (api.token !== null && request.headers.authorization !== `Bearer ${api.token}`) {
        return json(401, { error: { code: "unauthorized", message: "a status token is required" } });
      }
      if (api.failWith !== null) {
        return json(api.failWith, { error: { code: "internal", message: "the ledger did not answer" } });
      }
      return json(
        200,
        api.document(new URL(request.url ?? "/", "http://localhost").searchParams.get("cursor")),
      );
    }
    const file = normalize(join(dir, path === "/" ? "index.html" : decodeURIComponent(path)));
    if (!file.startsWith(dir + sep)) {
      response.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      response.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
