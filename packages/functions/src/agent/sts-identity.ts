import { instanceFromAssumedRoleArn } from "@hearth/core/heartbeat";

/**
 * Who is calling, proven by AWS itself, for hosts that are not behind API Gateway's IAM auth (local
 * mode's `--fleet aws`). The agent signs an `sts:GetCallerIdentity` request with its instance
 * credentials and sends it, unsent, in `X-Hearth-Identity` (base64 JSON of its URL, headers and body).
 * The host sends it to STS: only the holder of the instance's credentials can produce a request that
 * STS accepts, and STS answers with the caller's ARN, whose session name is the instance id. (The
 * same proof HashiCorp Vault's AWS auth method uses.)
 */

interface SignedRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** Official STS endpoints only: the host must never send the request anywhere else. */
const stsHost = /^sts(\.[a-z]{2}(-[a-z]+)+-\d)?\.amazonaws\.com(\.cn)?$/;

export function isStsUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "https:" && stsHost.test(url.hostname) && url.pathname === "/" && !url.search;
  } catch {
    return false;
  }
}

export interface StsIdentityOptions {
  /**
   * The fleet's AWS account. STS proves a caller in any account, and whoever assumes a role names the
   * session, so a caller in another account could otherwise pose as one of the fleet's instances.
   */
  account: string | (() => Promise<string>);
  /** Sends the request (tests put a fake STS behind this). */
  fetch?: typeof fetch;
  /** Which URLs may be called; official STS endpoints by default. */
  allowUrl?: (url: string) => boolean;
}

/** The instance id of the caller whose signed GetCallerIdentity request this is, or null. */
export async function identifyBySts(header: string | undefined, options: StsIdentityOptions) {
  if (!header || header.length > 16_384) return null;
  let signed: SignedRequest;
  try {
    signed = JSON.parse(Buffer.from(header, "base64").toString("utf8"));
  } catch {
    return null;
  }
  if (
    typeof signed?.url !== "string" ||
    typeof signed.body !== "string" ||
    typeof signed.headers !== "object"
  ) {
    return null;
  }
  if (!(options.allowUrl ?? isStsUrl)(signed.url)) return null;
  if (!/^Action=GetCallerIdentity&Version=2011-06-15$/.test(signed.body)) return null;
  const response = await (options.fetch ?? fetch)(signed.url, {
    method: "POST",
    headers: signed.headers,
    body: signed.body,
    signal: AbortSignal.timeout(5_000),
  });
  if (!response.ok) return null;
  const arn = /<Arn>([^<]+)<\/Arn>/.exec(await response.text())?.[1];
  const account = typeof options.account === "string" ? options.account : await options.account();
  return instanceFromAssumedRoleArn(arn, account);
}
