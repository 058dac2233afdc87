import { createHmac, timingSafeEqual } from "node:crypto";
import { Webhook, WebhookVerificationError } from "standardwebhooks";

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

/** The reference implementation's reasons, said the way Hearth's other 401s say them. */
const reasons: Record<string, string> = {
  "Missing required headers": "webhook-id, webhook-timestamp and webhook-signature headers are required",
  "Invalid Signature Headers": "webhook-timestamp is not a Unix time",
  "Message timestamp too old": "webhook-timestamp is outside the allowed window",
  "Message timestamp too new": "webhook-timestamp is outside the allowed window",
  "No matching signature found": "webhook-signature does not match",
};

/**
 * Verifies GitLab's `webhook-signature` header with the Standard Webhooks reference implementation
 * (https://www.standardwebhooks.com/, the `standardwebhooks` package): HMAC-SHA256 over
 * `{webhook-id}.{webhook-timestamp}.{body}` with the `whsec_` key, one or more space-separated
 * `v1,<base64>` entries (several during a key rotation), and the timestamp within five minutes of now.
 *
 * The body must be valid UTF-8 (the caller checks): the reference implementation verifies text.
 */
export function verifyGitLabSignature(
  headers: SignedHeaders,
  body: Uint8Array,
  secret: string,
): SignatureCheck {
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature)
    return { ok: false, reason: reasons["Missing required headers"] ?? "" };
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: "webhook-timestamp is not a Unix time" };
  try {
    new Webhook(secret).verify(
      Buffer.from(body.buffer, body.byteOffset, body.byteLength),
      { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature },
      { jsonParse: false },
    );
    return { ok: true };
  } catch (error) {
    if (!(error instanceof WebhookVerificationError)) throw error;
    return { ok: false, reason: reasons[error.message] ?? `webhook-signature: ${error.message}` };
  }
}

/** Signs like GitLab does, with the reference implementation; for tests, the demo and `npm run webhooks`. */
export function signGitLabBody(
  id: string,
  timestamp: number,
  body: string | Uint8Array,
  secret: string,
): string {
  const payload =
    typeof body === "string" ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return new Webhook(secret).sign(id, new Date(timestamp * 1000), payload);
}
