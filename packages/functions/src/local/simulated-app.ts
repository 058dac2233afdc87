import { generateKeyPairSync, type KeyObject, verify } from "node:crypto";

/**
 * The GitHub App local mode's poller authenticates as against the simulated GitHub: App id 1 (the
 * simulated installation's `app_id`), with a key pair made when first needed (polling is the only
 * user). The simulated GitHub accepts a JWT this key signed for `/app/…` routes, as GitHub does,
 * whether or not a status token guards the other routes.
 */
export interface SimulatedApp {
  appId: number;
  privateKey(): string;
  /** Whether `token` is a JWT of this App, signed with its key (RS256) and not expired. */
  verifies(token: string, nowMs?: number): boolean;
}

export const SIMULATED_APP_ID = 1;

export function createSimulatedApp(): SimulatedApp {
  let keys: { privateKey: string; publicKey: KeyObject } | undefined;
  const made = () => {
    if (!keys) {
      const pair = generateKeyPairSync("rsa", { modulusLength: 2048 });
      keys = {
        privateKey: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
        publicKey: pair.publicKey,
      };
    }
    return keys;
  };
  return {
    appId: SIMULATED_APP_ID,
    privateKey: () => made().privateKey,
    verifies(token, nowMs = Date.now()) {
      // No key made yet: no JWT of this App can exist.
      if (!keys) return false;
      const parts = token.split(".");
      if (parts.length !== 3) return false;
      const [header, payload, signature] = parts as [string, string, string];
      try {
        const head = JSON.parse(Buffer.from(header, "base64url").toString("utf8")) as { alg?: unknown };
        if (head.alg !== "RS256") return false;
        const signed = verify(
          "RSA-SHA256",
          Buffer.from(`${header}.${payload}`),
          keys.publicKey,
          Buffer.from(signature, "base64url"),
        );
        if (!signed) return false;
        const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as {
          iss?: unknown;
          exp?: unknown;
        };
        return (
          String(claims.iss) === String(SIMULATED_APP_ID) &&
          typeof claims.exp === "number" &&
          claims.exp * 1000 > nowMs
        );
      } catch {
        return false;
      }
    },
  };
}
