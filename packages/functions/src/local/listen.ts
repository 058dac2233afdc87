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
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
