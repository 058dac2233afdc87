import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
  BINARY_CACHE_KEY_PLACEHOLDER,
  generateSigningKey,
  publicKeyOf,
  setCacheKey,
  signingKeyName,
} from "../src/binary-cache";

/** Nix itself (Debian's nix-bin, as the NixOS module tests need): `nix key …` on stdin. */
function nixKey(args: string[], input: string): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync("nix", ["--extra-experimental-features", "nix-command", "key", ...args], {
    input,
    encoding: "utf8",
    env: { ...process.env, NIX_CONFIG: "build-users-group =" },
  });
  if (result.error)
    throw new Error(`nix is needed for this test (Debian's nix-bin): ${result.error.message}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("the binary cache signing key", () => {
  it("is a key Nix takes, whose public half is the one Nix derives", () => {
    for (let i = 0; i < 5; i++) {
      const key = generateSigningKey(signingKeyName("prod"));
      expect(key.secretKey).toMatch(/^hearth-prod-1:/);
      const derived = nixKey(["convert-secret-to-public"], key.secretKey);
      expect(derived.stderr).toBe("");
      expect(derived.stdout.trim()).toBe(key.publicKey);
      expect(publicKeyOf(key.secretKey)).toBe(key.publicKey);
    }
  });

  it("reads a key Nix generated", () => {
    const secret = nixKey(["generate-secret", "--key-name", "hearth-dev-1"], "").stdout.trim();
    expect(publicKeyOf(secret)).toBe(nixKey(["convert-secret-to-public"], secret).stdout.trim());
  });

  it("has a placeholder that Nix, and Hearth, refuse as a key", () => {
    expect(nixKey(["convert-secret-to-public"], BINARY_CACHE_KEY_PLACEHOLDER).status).not.toBe(0);
    expect(() => publicKeyOf(BINARY_CACHE_KEY_PLACEHOLDER)).toThrow("not a Nix secret signing key");
    const key = generateSigningKey("k");
    const tampered = `k:${Buffer.from(Buffer.from(key.secretKey.slice(2), "base64").map((b, i) => (i === 40 ? b ^ 1 : b))).toString("base64")}`;
    expect(() => publicKeyOf(tampered)).toThrow("its public half does not match its seed");
    expect(() => generateSigningKey("no spaces")).toThrow(/not a key name/);
  });

  it("is set once per stage unless replaced, and its secret half never leaves in an error", async () => {
    const stored = new Map<string, string>();
    let fail = false;
    const secrets = {
      names: async () => new Set(stored.keys()),
      set: async (name: string, value: string) => {
        if (fail) throw new Error(`could not set ${name}=${value}`);
        stored.set(name, value);
      },
    };
    const first = await setCacheKey({ stage: "prod", secrets, replace: false });
    expect(first).toMatchObject({ action: "set", replaced: false });
    expect(publicKeyOf(stored.get("BinaryCacheSigningKey") ?? "")).toBe(
      first.action === "set" ? first.publicKey : "",
    );
    const kept = await setCacheKey({ stage: "prod", secrets, replace: false });
    expect(kept.action).toBe("kept");
    const before = stored.get("BinaryCacheSigningKey");
    expect(await setCacheKey({ stage: "prod", secrets, replace: true })).toMatchObject({ replaced: true });
    expect(stored.get("BinaryCacheSigningKey")).not.toBe(before);
    fail = true;
    const error = await setCacheKey({ stage: "prod", secrets, replace: true }).catch((e: Error) => e);
    expect(String(error)).toMatch(/could not set BinaryCacheSigningKey=\[redacted\]$/);
  });
});
