import { isIP } from "node:net";

/** Whether `host` is a loopback address: only this machine can reach a server bound to it. */
export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1" || host === "0:0:0:0:0:0:0:1";
}

/**
 * Local mode's rule for `--host`: an address others can reach serves the status API and the
 * simulation routes, so it needs STATUS_TOKEN (they then ask for it), or an explicit `--allow-open`.
 * The refusal, or undefined when the address may be served.
 */
export function openHostRefusal(host: string, statusToken: string | undefined, allowOpen: boolean) {
  if (isLoopback(host) || statusToken || allowOpen) return undefined;
  return (
    `--host ${host} would serve the status API and the simulation to the network without a token: ` +
    "set STATUS_TOKEN, or pass --allow-open to serve them open"
  );
}
