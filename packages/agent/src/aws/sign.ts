import { createHash, createHmac, type Hash, type Hmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentials } from "./imds";

/**
 * SigV4 with node's own SHA-256: `@smithy/signature-v4` does the canonical request, and this class
 * is the hash it asks for (what `@aws-crypto/sha256-js` would be, without another dependency).
 */
class NodeSha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret
      ? createHmac("sha256", typeof secret === "string" ? secret : toBuffer(secret))
      : createHash("sha256");
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(typeof data === "string" ? data : toBuffer(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    throw new Error("not supported");
  }
}

function toBuffer(data: ArrayBuffer | ArrayBufferView): Buffer {
  return ArrayBuffer.isView(data)
    ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    : Buffer.from(data);
}

export interface RequestToSign {
  method: "GET" | "POST" | "PUT" | "DELETE";
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** The request's headers with SigV4's `authorization`, `x-amz-date` and `x-amz-security-token`. */
export async function signRequest(
  request: RequestToSign,
  signing: { credentials: AwsCredentials; region: string; service: string; now?: Date },
): Promise<Record<string, string>> {
  const url = new URL(request.url);
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: signing.credentials.accessKeyId,
      secretAccessKey: signing.credentials.secretAccessKey,
      ...(signing.credentials.sessionToken ? { sessionToken: signing.credentials.sessionToken } : {}),
    },
    region: signing.region,
    service: signing.service,
    sha256: NodeSha256,
  });
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) query[key] = value;
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query,
      headers: { ...request.headers, host: url.host },
      body: request.body,
    },
    signing.now ? { signingDate: signing.now } : {},
  );
  return signed.headers as Record<string, string>;
}

/** The region of an API Gateway URL (`<id>.execute-api.<region>.amazonaws.com`), if it is one. */
export function executeApiRegion(url: string): string | undefined {
  return /\.execute-api\.([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?$/.exec(
    new URL(url).hostname,
  )?.[1];
}
