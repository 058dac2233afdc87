import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { policyNames } from "../src/simulation/trace";

const root = new URL("../../../", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "hearth-sim-"));

function simulateCli(...args: string[]) {
  const result = spawnSync(process.execPath, ["--import", "tsx", "scripts/simulate.ts", ...args], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function traceFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const header = "job_id,created_at_s,pipeline_id,cache_key,labels,duration_warm_s,duration_cold_s";

describe("npm run simulate", () => {
  it("prints the README's JSON array, one object per policy", () => {
    const file = traceFile(
      "small.csv",
      `${header}\n1,0,p,"app, build",nix;x86_64-linux,30,60\n2,0,p,test,nix;aarch64-linux,30,60\n`,
    );
    const { status, stdout } = simulateCli("--trace", file, "--policy", "all", "--json", "--seed", "3");
    expect(status).toBe(0);
    const results = JSON.parse(stdout) as Record<string, unknown>[];
    expect(results.map((r) => r.policy)).toEqual([...policyNames]);
    for (const result of results) {
      expect(Object.keys(result)).toEqual([
        "policy",
        "trace",
        "jobs",
        "waitP50",
        "waitP95",
        "waitMax",
        "costUsd",
        "instanceHours",
        "warmHitRate",
        "interruptedJobs",
        "lostJobs",
      ]);
      expect(result).toMatchObject({ trace: "small.csv", jobs: 2, lostJobs: 0 });
    }
  }, 60_000);

  it("reports unroutable jobs on stderr and counts them as lost", () => {
    const file = traceFile("odd.csv", `${header}\n1,0,p,k,nix;x86_64-linux,30,60\n2,1,p,k,macos-14,30,60\n`);
    const { status, stdout, stderr } = simulateCli("--trace", file, "--policy", "oracle", "--json");
    expect(status).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject([{ policy: "oracle", jobs: 2, lostJobs: 1 }]);
    expect(stderr).toContain(
      '1 of 2 jobs are unroutable (counted as lost):\n  1 × asks for the GitHub-hosted runner label "macos-14"',
    );
  }, 60_000);

  it("adds what interruptions cost with --interruptions, at the multiplied rate", () => {
    const file = traceFile("spot.csv", `${header}\n1,0,p,k,nix;x86_64-linux,30,60\n`);
    const { status, stdout } = simulateCli(
      "--trace",
      file,
      "--policy",
      "hearth",
      "--json",
      "--interruptions",
      "--interruption-rate-multiplier",
      "5",
      "--forge",
      "gitlab",
      "--no-retry-hold",
    );
    expect(status).toBe(0);
    const [result] = JSON.parse(stdout) as Array<Record<string, unknown>>;
    expect(result?.interruptions).toMatchObject({ ratePerHour: 0.25, retries: 0, lostToInterruptions: 0 });
  }, 60_000);

  it("switches the binary cache with --binary-cache and reports stores with --stores", () => {
    const file = traceFile(
      "cache.csv",
      `${header}\n1,0,p,k,nix;x86_64-linux,30,600\n2,5000,p,k,nix;x86_64-linux,30,600\n`,
    );
    const run = (...flags: string[]) => {
      const { status, stdout } = simulateCli(
        "--trace",
        file,
        "--policy",
        "ghr",
        "--json",
        "--stores",
        ...flags,
      );
      expect(status).toBe(0);
      return (JSON.parse(stdout) as Array<{ stores: Record<string, unknown> }>)[0]?.stores;
    };
    // ghr's second job lands on a fresh (cold) instance: substituted only with the cache.
    expect(run()).toMatchObject({ binaryCache: false, substituted: 0, cold: 2, achievable: 1 });
    expect(run("--binary-cache", "on")).toMatchObject({ binaryCache: true, substituted: 1, cold: 1 });
    expect(run("--binary-cache", "on", "--cache-window", "100")).toMatchObject({ substituted: 0 });
    const bad = simulateCli("--trace", file, "--binary-cache", "maybe");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("--binary-cache must be on, off or default, got maybe");
    for (const [flag, value, message] of [
      ["--placement", "nearest", "--placement must be warm-first or any, got nearest"],
      ["--idle-listening", "some", "--idle-listening must be all or none, got some"],
      ["--listener-start", "soon", "--listener-start must be a non-negative number of seconds, got soon"],
    ]) {
      const refused = simulateCli("--trace", file, flag as string, value as string);
      expect(refused.status).toBe(2);
      expect(refused.stderr).toContain(message);
    }
  }, 60_000);

  it("lists each store prototype in --help as a mechanism Hearth does not build yet, off by default", () => {
    const { status, stdout } = simulateCli("--help");
    expect(status).toBe(0);
    const heading = stdout.indexOf(
      "prototypes of store mechanisms Hearth does NOT build yet, each off by default",
    );
    const next = stdout.indexOf("pool settings");
    expect(heading).toBeGreaterThan(0);
    const section = stdout.slice(heading, next);
    for (const flag of [
      "--choose-resume",
      "--resume-extra",
      "--instant-listening",
      "--idle-listening",
      "--store-volumes",
      "--volume-retention",
      "--stopped-store-ttl",
    ])
      expect(section).toContain(flag);
    // Placement is built: its flags are not among the prototypes.
    for (const flag of ["--placement", "--cold-listen-delay", "--listener-start", "--warm-market"]) {
      expect(section).not.toContain(flag);
      expect(stdout.slice(0, heading)).toContain(flag);
    }
    for (const flag of ["--volume-attach", "--zones"])
      expect(stdout).toMatch(new RegExp(`${flag} N .*read by the prototypes only`));
    for (const flag of ["--spot-start-success", "--spot-start-fail"])
      expect(stdout).toMatch(new RegExp(`${flag} N .*read with --warm-market spot`));
  }, 60_000);

  it("prints a table without --json", () => {
    const file = traceFile("table.csv", `${header}\n1,0,p,k,nix;x86_64-linux,30,60\n`);
    const { status, stdout } = simulateCli("--trace", file, "--policy", "static");
    expect(status).toBe(0);
    expect(stdout.split("\n")[0]).toMatch(/^trace\s+policy\s+jobs\s+p50 s\s+p95 s\s+max s\s+cost \$/);
    expect(stdout).toContain("table.csv  static");
  }, 60_000);

  it("fails with a message for a bad trace, a bad policy or a bad flag", () => {
    const bad = traceFile("bad.csv", `${header}\n1,0,p,k,nix,thirty,60\n`);
    const parse = simulateCli("--trace", bad, "--json");
    expect(parse.status).toBe(1);
    expect(parse.stderr).toContain("bad.csv: line 2: duration_warm_s must be a non-negative number");
    const policy = simulateCli("--trace", bad, "--policy", "nomad");
    expect(policy.status).toBe(2);
    expect(policy.stderr).toContain("unknown policy nomad");
    // The message and a pointer to --help, not the whole usage after it.
    expect(policy.stderr.trim().split("\n")).toEqual([
      expect.stringContaining("unknown policy nomad"),
      "(--help lists the options)",
    ]);
    const flag = simulateCli("--trace", bad, "--spot-price", "-1");
    expect(flag.status).toBe(2);
    const multiplier = simulateCli("--trace", bad, "--interruption-rate-multiplier=-5");
    expect(multiplier.status).toBe(2);
    expect(multiplier.stderr).toContain(
      "--interruption-rate-multiplier must be a non-negative number, got -5",
    );
    const retries = simulateCli("--trace", bad, "--retry-interrupted", "4");
    expect(retries.status).toBe(2);
    expect(retries.stderr).toContain("--retry-interrupted must be an integer from 0 to 3, got 4");
    const holdMax = simulateCli("--trace", bad, "--retry-hold-max", "soon");
    expect(holdMax.status).toBe(2);
    expect(holdMax.stderr).toContain("--retry-hold-max must be a non-negative number of seconds, got soon");
    // The model's own bounds: one line naming the flag, no stack trace.
    for (const [name, value, says] of [
      ["--slots", "0", "--slots 0: Too small"],
      ["--slots", "1.5", "--slots 1.5:"],
      ["--max-instances", "0", "--max-instances 0: Too small"],
      ["--spot-start-success", "2", "--spot-start-success 2: Too big"],
    ] as const) {
      const model = simulateCli("--trace", bad, name, value);
      expect([name, value, model.status]).toEqual([name, value, 2]);
      expect(model.stderr).toContain(says);
      expect(model.stderr).not.toMatch(/ZodError|\n\s+at /);
    }
  }, 60_000);

  it("warns of times that look like clock times and of jobs slower warm than cold, and still runs them", () => {
    const file = traceFile(
      "epoch.csv",
      `${header}\n1,1726000000,p1,k,nix;x86_64-linux,600,60\n2,1726000100,p2,k,nix;x86_64-linux,60,120\n`,
    );
    const { status, stdout, stderr } = simulateCli("--trace", file, "--policy", "hearth", "--json");
    expect(status).toBe(0);
    expect(stderr).toContain("epoch.csv: the first job arrives 19977 days after the trace's start");
    expect(stderr).toContain("epoch.csv: 1 of 2 jobs run longer warm than cold");
    expect((JSON.parse(stdout) as { lostJobs: number }[])[0]?.lostJobs).toBe(0);
  }, 60_000);
});
