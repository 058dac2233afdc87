import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type ServerType, serve } from "@hono/node-server";

/** The port is taken: one clear sentence, no stack. */
export class PortInUse extends Error {
  constructor(host: string, port: number) {
    super(`${host}:${port} is already in use by another process; choose another port with --port`);
  }
}

/** Serves `fetch` on `host:port` (0: any free port); resolves with the server and its URL once it listens. */
export async function listen(
  fetch: (request: Request) => Response | Promise<Response>,
  host: string,
  port: number,
): Promise<{ server: ServerType; url: string; close(): Promise<void> }> {
  const server = serve({ fetch, port, hostname: host });
  await new Promise<void>((resolve, reject) => {
    if (server.listening) resolve();
    server.once("listening", () => resolve());
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "EADDRINUSE" ? new PortInUse(host, port) : error),
    );
  });
  const bound = (server.address() as AddressInfo).port;
  // A wildcard address is reached on loopback; an IPv6 one is written in brackets.
  const shown = host !== "0.0.0.0" && host !== "::" ? (host.includes(":") ? `[${host}]` : host) : "127.0.0.1";
  return {
    server,
    url: `http://${shown}:${bound}`,
    close: () => closeServer(server as Server),
  };
}

/** How long requests under way may take to finish once the server closes. */
const CLOSE_GRACE_MS = 5_000;

/**
 * Stops listening and ends every connection. `server.close` alone ends only the connections idle at
 * that moment: a client that keeps sending on a kept-alive connection (a forge's burst of webhooks)
 * would hold the server open for as long as it sends. So each response from then on says
 * `Connection: close`, idle connections are ended as they become idle, and any still busy after the
 * grace period are cut.
 */
function closeServer(server: Server): Promise<void> {
  server.on("request", (_request: IncomingMessage, response: ServerResponse) => {
    if (!response.headersSent) response.setHeader("connection", "close");
  });
  return new Promise<void>((resolve) => {
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    server.close(() => {
      clearInterval(idle);
      clearTimeout(cut);
      resolve();
    });
    server.closeIdleConnections();
  });
}
