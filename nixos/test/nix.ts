/**
 * Evaluating Hearth's NixOS modules from tests and scripts: Debian's `nix-instantiate` (Nix 2.8 is
 * enough) with the nixpkgs `lib` vendored in nixos/vendor, unpacked once per process.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const nixosDir = resolve(import.meta.dirname, "..");
const libTarball = join(nixosDir, "vendor", "nixpkgs-lib.tar.xz");
/** Nix warns when the build users' group is missing; evaluation needs none. */
const env = { ...process.env, NIX_CONFIG: "build-users-group =" };

/** Throws a helpful error when nix-instantiate is not installed. */
export function requireNixInstantiate(): void {
  const probe = spawnSync("nix-instantiate", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      "nix-instantiate was not found: the NixOS module tests need it. Install Debian's nix-bin " +
        "(`sudo apt-get install nix-bin`; .ci/run does this) or any Nix, then run the tests again.",
    );
  }
}

let unpacked: { dir: string; lib: string } | undefined;

/** The vendored nixpkgs lib, unpacked to a temporary folder (removed by `cleanUp`). */
export function nixpkgsLib(): string {
  if (!unpacked) {
    const dir = mkdtempSync(join(tmpdir(), "hearth-nixpkgs-lib-"));
    execFileSync("tar", ["-xJf", libTarball, "-C", dir]);
    unpacked = { dir, lib: join(dir, "lib") };
  }
  return unpacked.lib;
}

export function cleanUp(): void {
  if (unpacked) rmSync(unpacked.dir, { recursive: true, force: true });
  unpacked = undefined;
}

export class NixEvalError extends Error {}

/**
 * Evaluates nixos/test/eval.nix with `settings` (a Nix expression: a module) and returns its JSON.
 * An evaluation error (a type error, a missing option) throws NixEvalError with Nix's message.
 */
export function evaluate<T = EvalResult>(settings = "{ }"): T {
  const result = spawnSync(
    "nix-instantiate",
    [
      "--eval",
      "--strict",
      "--json",
      join(nixosDir, "test", "eval.nix"),
      "--arg",
      "lib",
      `import ${nixpkgsLib()}`,
      "--arg",
      "settings",
      settings,
    ],
    { encoding: "utf8", env, maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.status !== 0) throw new NixEvalError(result.stderr);
  return JSON.parse(result.stdout) as T;
}

/** Evaluates a Nix expression to JSON; `lib` is in scope (the vendored nixpkgs lib). */
export function evaluateExpression<T>(expression: string): T {
  const result = spawnSync(
    "nix-instantiate",
    ["--eval", "--strict", "--json", "-E", `let lib = import ${nixpkgsLib()}; in ${expression}`],
    { encoding: "utf8", env, cwd: nixosDir },
  );
  if (result.status !== 0) throw new NixEvalError(result.stderr);
  return JSON.parse(result.stdout) as T;
}

/** `nix-instantiate --parse` of one file; returns Nix's error, or undefined when it parses. */
export function parseError(file: string): string | undefined {
  const result = spawnSync("nix-instantiate", ["--parse", file], { encoding: "utf8", env });
  return result.status === 0 ? undefined : result.stderr;
}

/** Every `.nix` file under nixos/ (the vendored lib aside). */
export function nixFiles(dir = nixosDir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "vendor" ? [] : nixFiles(path);
    return name.endsWith(".nix") ? [path] : [];
  });
}

export interface OptionDoc {
  name: string;
  type: string;
  default: string | null;
  description: string;
  readOnly: boolean;
}

export interface Unit {
  description: string;
  wantedBy: string[];
  wants: string[];
  requires: string[];
  after: string[];
  before: string[];
  path: string[];
  environment: Record<string, string>;
  unitConfig: Record<string, unknown>;
  serviceConfig: Record<string, unknown>;
  pathConfig: Record<string, unknown>;
  script: string;
}

export interface EvalResult {
  failedAssertions: string[];
  hearth: { slots: number; stage: string | null; pool: string | null; jobUids: number[] };
  nix: {
    settings: Record<string, unknown>;
    nrBuildUsers: number;
    extraOptions: string;
    gcAutomatic: boolean;
  };
  nftables: { enable: boolean; tables: Record<string, { family: string; content: string; enable: boolean }> };
  gitlabRunner: {
    enable: boolean;
    gracefulTermination: boolean;
    gracefulTimeout: string;
    settings: Record<string, unknown>;
    services: Record<
      string,
      {
        executor: string;
        authenticationTokenConfigFile: string | null;
        limit: number;
        buildsDir: string | null;
      }
    >;
  };
  services: Record<string, Unit>;
  paths: Record<string, Unit>;
  users: {
    users: Record<string, { uid: number | null; group: string; isSystemUser: boolean; home: string }>;
    groups: Record<string, { gid: number | null }>;
  };
  etc: Record<string, { text: string | null }>;
  options: OptionDoc[];
}
