import { createHash, timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every error Hearth answers: a stable code for programs, a sentence for people. */
export function errorResponse(c: Context, status: ContentfulStatusCode, code: string, message: string) {
  return c.json({ error: { code, message } }, status);
}

export const MAX_BODY_BYTES = 1024 * 1024;

export type BodyResult =
  | { ok: true; body: Uint8Array }
  | { ok: false; status: 400 | 413; code: string; message: string };

/**
 * Reads the raw body, refusing more than `limit` bytes: first by `Content-Length`, then by counting
 * what actually arrives (the header may be absent, chunked, or a lie).
 */
export async function readBody(request: Request, limit = MAX_BODY_BYTES): Promise<BodyResult> {
  const tooLarge = {
    ok: false,
    status: 413,
    code: "payload_too_large",
    message: `body exceeds ${limit} bytes`,
  } as const;
  const declared = request.headers.get("content-length");
  if (declared !== null) {
    if (!/^\d{1,15}$/.test(declared.trim())) {
      return { ok: false, status: 400, code: "malformed", message: "Content-Length is not a number" };
    }
    if (Number(declared) > limit) return tooLarge;
  }
  if (!request.body) return { ok: true, body: new Uint8Array(0) };
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch {
      // The client went away mid-body: nothing to process.
      return { ok: false, status: 400, code: "malformed", message: "the body could not be read to its end" };
    }
    const { done, value } = chunk;
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      return tooLarge;
    }
    chunks.push(value);
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { ok: true, body };
}

export type JsonBodyResult =
  | { ok: true; body: unknown }
  | { ok: false; status: 400 | 413; code: string; message: string };

/** Reads the body as `readBody` does, and parses it as UTF-8 JSON (`malformed` when it is not). */
export async function readJsonBody(request: Request, limit = MAX_BODY_BYTES): Promise<JsonBodyResult> {
  const read = await readBody(request, limit);
  if (!read.ok) return read;
  try {
    return { ok: true, body: JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(read.body)) };
  } catch {
    return { ok: false, status: 400, code: "malformed", message: "body is not UTF-8 JSON" };
  }
}

const digest = (value: string) => createHash("sha256").update(value).digest();

/**
 * Whether `Authorization` carries `Bearer <token>` (the scheme is case-insensitive, RFC 9110),
 * compared in constant time. True when no token is configured.
 */
export function bearerMatches(header: string | undefined, token: string | undefined): boolean {
  if (!token) return true;
  const given = /^bearer +(\S+)\s*$/i.exec(header ?? "")?.[1];
  return given !== undefined && timingSafeEqual(digest(given), digest(token));
}
