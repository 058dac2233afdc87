import { createHmac, timingSafeEqual } from "node:crypto";

/** Constant-time comparison of the `X-Gitlab-Token` header with the configured token. */
export function verifyGitLabToken(header: string | undefined, expected: string): boolean {
  if (header === undefined) return false;
  // Compare digests so that neither the length nor the content of the token leaks through timing.
  const a = createHmac("sha256", "hearth").update(header).digest();
  const b = createHmac("sha256", "hearth").update(expected).digest();
  return timingSafeEqual(a, b);
}

export interface SignedHeaders {
  id: string | undefined;
  timestamp: string | undefined;
  signature: string | undefined;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/** GitLab signs with Standard Webhooks: a `whsec_`-prefixed base64 key (https://www.standardwebhooks.com/). */
function signingKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith("whsec_") ? secret.slice("whsec_".length) : secret, "base64");
}

/**
 * Verifies GitLab's `webhook-signature` header: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`,
 * sent as one or more space-separated `v1,<base64>` entries, with the timestamp within `toleranceSeconds`.
 */
export function verifyGitLabSignature(
  headers: SignedHeaders,
  body: Uint8Array,
  secret: string,
  now: Date,
  toleranceSeconds = 300,
): SignatureCheck {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature) {
    return { ok: false, reason: "webhook-id, webhook-timestamp and webhook-signature headers are required" };
  }
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "webhook-timestamp is not a Unix time" };
  const skew = Math.abs(now.getTime() / 1000 - Number(timestamp));
  if (skew > toleranceSeconds)
    return { ok: false, reason: "webhook-timestamp is outside the allowed window" };
  const expected = createHmac("sha256", signingKey(secret))
    .update(`${id}.${timestamp}.`)
    .update(body)
    .digest();
  for (const entry of signature.split(" ")) {
    const [version, value] = entry.split(",", 2);
    if (version !== "v1" || !value) continue;
    const given = Buffer.from(value, "base64");
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true };
  }
  return { ok: false, reason: "webhook-signature does not match" };
}

/** Signs like GitLab does; for tests, the demo and `npm run webhooks`. */
export function signGitLabBody(
  id: string,
  timestamp: number,
  body: string | Uint8Array,
  secret: string,
): string {
  const mac = createHmac("sha256", signingKey(secret))
    .update(`${id}.${timestamp}.`)
    .update(body)
    .digest("base64");
  return `v1,${mac}`;
}
