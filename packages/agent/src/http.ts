import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

/**
 * One HTTP exchange over node's own `http`/`https`. Not `fetch`: loading undici alone adds about
 * 20 MiB to the agent's RSS (docs/BENCHMARKS.md), and the agent needs none of it.
 */

export interface HttpRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  text: string;
}

export type Send = (url: string, init?: HttpRequest) => Promise<HttpResponse>;

/** Answers larger than this are cut off with an error: nothing the agent reads is near it. */
const MAX_RESPONSE_BYTES = 1 << 20;

export const send: Send = (url, init = {}) =>
  new Promise((resolve, reject) => {
    const target = new URL(url);
    const body = init.body === undefined ? undefined : Buffer.from(init.body);
    const request = (target.protocol === "https:" ? httpsRequest : httpRequest)(
      target,
      {
        method: init.method ?? "GET",
        headers: { ...init.headers, ...(body ? { "content-length": String(body.length) } : {}) },
        timeout: init.timeoutMs ?? 10_000,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            request.destroy(new Error(`the answer from ${target.host} is too large`));
            return;
          }
          chunks.push(chunk);
        });
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        response.on("error", reject);
      },
    );
    request.on("timeout", () => request.destroy(new Error(`no answer from ${target.host} in time`)));
    request.on("error", reject);
    request.end(body);
  });
