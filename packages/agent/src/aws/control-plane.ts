import { send as httpSend, type Send } from "../http";
import type { ControlPlanePort, HeartbeatBody } from "../ports";
import type { AwsCredentials } from "./imds";
import { executeApiRegion, signRequest } from "./sign";
import { withoutHost } from "./ssm";

/**
 * The heartbeat over HTTPS, signed with the instance role twice over:
 * - SigV4 for `execute-api`, which API Gateway's IAM authorization checks before the function runs;
 * - a signed, unsent `sts:GetCallerIdentity` in `X-Hearth-Identity`, which a single-host controller
 *   (local mode's `--fleet aws`, not behind API Gateway) sends to STS to learn who is calling.
 */

export interface ControlPlaneOptions {
  heartbeatUrl: string;
  /** The instance's region: STS's, and API Gateway's when the URL does not name one. */
  region: string;
  credentials: () => Promise<AwsCredentials>;
  send?: Send;
  timeoutMs?: number;
  now?: () => Date;
}

export function createControlPlane(options: ControlPlaneOptions): ControlPlanePort {
  const send = options.send ?? httpSend;
  const apiRegion = executeApiRegion(options.heartbeatUrl) ?? options.region;
  return {
    async heartbeat(beat: HeartbeatBody) {
      const credentials = await options.credentials();
      const now = options.now?.();
      const body = JSON.stringify(beat);
      const identity = await stsIdentity(credentials, options.region, now);
      const headers = await signRequest(
        {
          method: "POST",
          url: options.heartbeatUrl,
          headers: { "content-type": "application/json", "x-hearth-identity": identity },
          body,
        },
        { credentials, region: apiRegion, service: "execute-api", ...(now ? { now } : {}) },
      );
      const response = await send(options.heartbeatUrl, {
        method: "POST",
        headers: withoutHost(headers),
        body,
        timeoutMs: options.timeoutMs ?? 10_000,
      });
      const text = response.text;
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON (a proxy's error page): the status says enough.
      }
      return { status: response.status, body: parsed };
    },
  };
}

const STS_BODY = "Action=GetCallerIdentity&Version=2011-06-15";

/** A signed GetCallerIdentity request, base64 JSON of its URL, headers and body. */
export async function stsIdentity(credentials: AwsCredentials, region: string, now?: Date): Promise<string> {
  const url = `https://sts.${region}.amazonaws.com/`;
  const headers = await signRequest(
    {
      method: "POST",
      url,
      headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
      body: STS_BODY,
    },
    { credentials, region, service: "sts", ...(now ? { now } : {}) },
  );
  return Buffer.from(JSON.stringify({ url, headers, body: STS_BODY })).toString("base64");
}
