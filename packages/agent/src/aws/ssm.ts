import { send as httpSend, type Send } from "../http";
import type { ParametersPort } from "../ports";
import type { AwsCredentials } from "./imds";
import { signRequest } from "./sign";

/**
 * SSM's GetParameter over its JSON 1.1 API, signed with the instance role. One call, so the agent
 * need not bundle the SDK's SSM client. Values are secrets: never in an error or a log.
 */

export interface SsmOptions {
  region: string;
  credentials: () => Promise<AwsCredentials>;
  /** `https://ssm.<region>.amazonaws.com` by default. */
  endpoint?: string;
  send?: Send;
  timeoutMs?: number;
}

export function createSsmParameters(options: SsmOptions): ParametersPort {
  const endpoint = options.endpoint ?? `https://ssm.${options.region}.amazonaws.com/`;
  const send = options.send ?? httpSend;
  return {
    async get(name) {
      const body = JSON.stringify({ Name: name, WithDecryption: true });
      const headers = await signRequest(
        {
          method: "POST",
          url: endpoint,
          headers: {
            "content-type": "application/x-amz-json-1.1",
            "x-amz-target": "AmazonSSM.GetParameter",
          },
          body,
        },
        { credentials: await options.credentials(), region: options.region, service: "ssm" },
      );
      const response = await send(endpoint, {
        method: "POST",
        headers: withoutHost(headers),
        body,
        timeoutMs: options.timeoutMs ?? 10_000,
      });
      const text = response.text;
      let parsed: { Parameter?: { Value?: unknown }; __type?: unknown } = {};
      try {
        parsed = JSON.parse(text);
      } catch {
        // The status below says what went wrong.
      }
      if (response.status === 200 && typeof parsed.Parameter?.Value === "string")
        return parsed.Parameter.Value;
      // `__type` may carry a namespace: `com.amazonaws.ssm#ParameterNotFound`.
      const type = typeof parsed.__type === "string" ? (parsed.__type.split("#").pop() ?? "") : "";
      if (type === "ParameterNotFound") return null;
      throw new Error(`SSM GetParameter ${name} failed: ${response.status} ${type || "(no error type)"}`);
    },
  };
}

/** The HTTP client sets `host` itself from the URL, which is the host that was signed. */
export function withoutHost(headers: Record<string, string>): Record<string, string> {
  const { host: _host, ...rest } = headers;
  return rest;
}
