import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { resourcePrefix } from "../deploy";

/**
 * The stage's Nix binary cache signing key, in Nix's own format (what `nix key generate-secret`
 * writes): the secret key is `<name>:<base64 of 64 bytes>`, the Ed25519 seed followed by the public
 * key (libsodium's layout), and the public key `<name>:<base64 of its 32 bytes>`. Instances sign what
 * they push with the secret one and trust the public one; `npm run cache-key` makes it.
 */

/** The stage secret that holds the secret key (`sst secret set BinaryCacheSigningKey`). */
export const BINARY_CACHE_KEY_SECRET = "BinaryCacheSigningKey";

/**
 * What the secret holds until a key is set, so that a stage deploys without one. Not a key Nix takes,
 * so instances treat it as none: they queue their builds and push nothing.
 */
export const BINARY_CACHE_KEY_PLACEHOLDER = "unset";

/** `hearth-<stage>-1`: the key's name, which Nix writes into every signature. */
export const signingKeyName = (stage: string): string => `${resourcePrefix(stage)}-1`;

export interface SigningKey {
  /** `<name>:<base64 of seed ‖ public key>`: a secret. */
  secretKey: string;
  /** `<name>:<base64 of the public key>`. */
  publicKey: string;
}

/** A new Ed25519 key in Nix's format. */
export function generateSigningKey(name: string): SigningKey {
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) throw new Error(`"${name}" is not a key name Nix accepts`);
  const { privateKey } = generateKeyPairSync("ed25519");
  return nixKeyPair(name, privateKey.export({ format: "jwk" }));
}

/** The public key of a secret key in Nix's format; throws when it is not one. */
export function publicKeyOf(secretKey: string): string {
  const colon = secretKey.indexOf(":");
  const name = secretKey.slice(0, colon);
  const bytes = Buffer.from(secretKey.slice(colon + 1), "base64");
  if (colon < 1 || bytes.length !== 64) throw new Error("not a Nix secret signing key");
  const seed = bytes.subarray(0, 32);
  // PKCS#8 of an Ed25519 seed: a fixed 16-byte prefix, then the seed.
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const derived = nixKeyPair(
    name,
    createPrivateKey({ key: der, format: "der", type: "pkcs8" }).export({ format: "jwk" }),
  );
  if (derived.secretKey !== secretKey)
    throw new Error("not a Nix secret signing key: its public half does not match its seed");
  return derived.publicKey;
}

function nixKeyPair(name: string, jwk: { d?: string; x?: string }): SigningKey {
  if (!jwk.d || !jwk.x) throw new Error("node:crypto gave no Ed25519 key");
  const seed = Buffer.from(jwk.d, "base64url");
  const publicKey = Buffer.from(jwk.x, "base64url");
  return {
    secretKey: `${name}:${Buffer.concat([seed, publicKey]).toString("base64")}`,
    publicKey: `${name}:${publicKey.toString("base64")}`,
  };
}

/** The stage's secrets, as `npm run runners` uses them (SST's, through its CLI). */
export interface CacheKeySecrets {
  names(): Promise<Set<string>>;
  set(name: string, value: string): Promise<void>;
}

export type CacheKeyOutcome =
  | { action: "set"; publicKey: string; replaced: boolean }
  | { action: "kept"; reason: string };

/**
 * Makes the stage's signing key and stores its secret half as the stage secret, unless one is set
 * already and `replace` is not given: a new key invalidates nothing already pushed (old signatures
 * stay verifiable only by the old public key), but instances still running trust only the old one.
 * Returns the public key, the only part that is ever printed.
 */
export async function setCacheKey(options: {
  stage: string;
  secrets: CacheKeySecrets;
  replace: boolean;
}): Promise<CacheKeyOutcome> {
  const set = (await options.secrets.names()).has(BINARY_CACHE_KEY_SECRET);
  if (set && !options.replace) {
    return {
      action: "kept",
      reason: `${BINARY_CACHE_KEY_SECRET} is already set for stage ${options.stage}; --replace makes a new key (instances launched before the next deploy keep trusting the old one)`,
    };
  }
  const key = generateSigningKey(signingKeyName(options.stage));
  try {
    await options.secrets.set(BINARY_CACHE_KEY_SECRET, key.secretKey);
  } catch (error) {
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(cause.split(key.secretKey).join("[redacted]"));
  }
  return { action: "set", publicKey: key.publicKey, replaced: set };
}
