import { createHash, createHmac } from "node:crypto";

/**
 * An independent SigV4 check (AWS's "Create a signed AWS API request" steps, written out): recomputes
 * the signature of a received request from the secret key, as AWS does, to prove the agent's
 * signing rather than trust it.
 */

export interface Received {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

const sha256 = (data: string) => createHash("sha256").update(data).digest("hex");
const hmac = (key: Buffer | string, data: string) => createHmac("sha256", key).update(data).digest();

export function parseAuthorization(value: string | undefined) {
  const match =
    /^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
      value ?? "",
    );
  if (!match) return null;
  const [, accessKeyId, date, region, service, signedHeaders, signature] = match as unknown as string[];
  return {
    accessKeyId,
    date,
    region,
    service,
    signedHeaders: (signedHeaders as string).split(";"),
    signature,
  };
}

export function verifySigV4(request: Received, secretAccessKey: string): boolean {
  const auth = parseAuthorization(header(request.headers, "authorization"));
  if (!auth) return false;
  const amzDate = header(request.headers, "x-amz-date") ?? "";
  const [path, query = ""] = request.path.split("?");
  const canonicalQuery = query.split("&").filter(Boolean).sort().join("&");
  const canonicalHeaders = auth.signedHeaders
    .map((name) => `${name}:${(header(request.headers, name) ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  const canonicalRequest = [
    request.method,
    path,
    canonicalQuery,
    canonicalHeaders,
    auth.signedHeaders.join(";"),
    sha256(request.body),
  ].join("\n");
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, sha256(canonicalRequest)].join("\n");
  let key = hmac(`AWS4${secretAccessKey}`, auth.date as string);
  for (const part of [auth.region, auth.service, "aws4_request"]) key = hmac(key, part as string);
  return createHmac("sha256", key).update(stringToSign).digest("hex") === auth.signature;
}

function header(headers: Received["headers"], name: string): string | undefined {
  const value = headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(value) ? value.join(",") : value;
}
