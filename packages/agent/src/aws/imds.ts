import { send as httpSend, type Send } from "../http";
import type { ImdsPort, SpotAction } from "../ports";

/**
 * IMDSv2: every read carries a session token got with `PUT /latest/api/token`. The image allows only
 * IMDSv2 with a hop limit of 1, and job users cannot reach it at all.
 */

export interface ImdsOptions {
  /** `http://169.254.169.254` on EC2; a fake server's address in tests. */
  endpoint?: string;
  send?: Send;
  /** The clock that tells when the token and credentials expire. */
  now?: () => number;
  timeoutMs?: number;
}

/** The instance role's temporary credentials. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Epoch ms. */
  expiration?: number;
}

const TOKEN_TTL_SECONDS = 21_600;
const spotActions = new Set(["terminate", "stop", "hibernate"]);

export interface ImdsClient extends ImdsPort {
  /** A metadata path's text, or null when IMDS answers 404. */
  get(path: string): Promise<string | null>;
  /** The instance role's credentials, cached until five minutes before they expire. */
  credentials(): Promise<AwsCredentials>;
}

export function createImdsClient(options: ImdsOptions = {}): ImdsClient {
  const endpoint = (options.endpoint ?? "http://169.254.169.254").replace(/\/+$/, "");
  const send = options.send ?? httpSend;
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? 2000;
  let token: { value: string; expires: number } | null = null;
  let cached: AwsCredentials | null = null;

  async function sessionToken(): Promise<string> {
    if (token && token.expires > now()) return token.value;
    const response = await send(`${endpoint}/latest/api/token`, {
      method: "PUT",
      headers: { "x-aws-ec2-metadata-token-ttl-seconds": String(TOKEN_TTL_SECONDS) },
      timeoutMs,
    });
    if (response.status !== 200) throw new Error(`IMDS refused a session token (${response.status})`);
    token = { value: response.text, expires: now() + (TOKEN_TTL_SECONDS - 60) * 1000 };
    return token.value;
  }

  async function get(path: string): Promise<string | null> {
    for (let attempt = 0; ; attempt++) {
      const response = await send(`${endpoint}${path}`, {
        headers: { "x-aws-ec2-metadata-token": await sessionToken() },
        timeoutMs,
      });
      if (response.status === 404) return null;
      // An expired or revoked token: a new one, once.
      if (response.status === 401 && attempt === 0) {
        token = null;
        continue;
      }
      if (response.status !== 200) throw new Error(`IMDS answered ${response.status} for ${path}`);
      return response.text;
    }
  }

  async function required(path: string): Promise<string> {
    const value = await get(path);
    if (value === null) throw new Error(`IMDS has no ${path}`);
    return value.trim();
  }

  return {
    get,
    instanceId: () => required("/latest/meta-data/instance-id"),
    region: () => required("/latest/meta-data/placement/region"),

    async spotAction(): Promise<SpotAction | null> {
      const text = await get("/latest/meta-data/spot/instance-action");
      if (text === null) return null;
      const notice = JSON.parse(text) as { action?: unknown; time?: unknown };
      if (typeof notice.action !== "string" || !spotActions.has(notice.action)) {
        throw new Error("IMDS's spot instance-action names no known action");
      }
      if (typeof notice.time !== "string" || Number.isNaN(Date.parse(notice.time))) {
        throw new Error("IMDS's spot instance-action has no time");
      }
      return { action: notice.action as SpotAction["action"], time: new Date(notice.time).toISOString() };
    },

    async rebalanceRecommendation() {
      const text = await get("/latest/meta-data/events/recommendations/rebalance");
      if (text === null) return null;
      const notice = JSON.parse(text) as { noticeTime?: unknown };
      if (typeof notice.noticeTime !== "string" || Number.isNaN(Date.parse(notice.noticeTime))) {
        throw new Error("IMDS's rebalance recommendation has no noticeTime");
      }
      return { noticeTime: new Date(notice.noticeTime).toISOString() };
    },

    async credentials() {
      if (cached && (cached.expiration ?? 0) - 5 * 60_000 > now()) return cached;
      const role = (await required("/latest/meta-data/iam/security-credentials/")).split("\n")[0]?.trim();
      if (!role) throw new Error("the instance has no role");
      const text = await required(`/latest/meta-data/iam/security-credentials/${encodeURIComponent(role)}`);
      const parsed = JSON.parse(text) as Record<string, unknown>;
      if (
        parsed.Code !== "Success" ||
        typeof parsed.AccessKeyId !== "string" ||
        typeof parsed.SecretAccessKey !== "string" ||
        typeof parsed.Token !== "string"
      ) {
        throw new Error("IMDS gave no usable role credentials");
      }
      cached = {
        accessKeyId: parsed.AccessKeyId,
        secretAccessKey: parsed.SecretAccessKey,
        sessionToken: parsed.Token,
        expiration: typeof parsed.Expiration === "string" ? Date.parse(parsed.Expiration) : undefined,
      };
      return cached;
    },
  };
}
