/**
 * Hearth's NixOS modules, evaluated with the vendored nixpkgs `lib` (`lib.evalModules`) against
 * declarations of the upstream options they set (nixos/test/stubs.nix). What needs full nixpkgs — the
 * system closure, the Amazon image, the VM test — is `nix flake check ./nixos`, in CI.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { userData } from "../../infra/lib/fleet";
import { parseAgentFile, resolveAgentFile } from "../../packages/agent/src/config";
import { BINARY_CACHE_KEY_PLACEHOLDER, generateSigningKey } from "../../packages/core/src/binary-cache";
import { parameterPaths } from "../../packages/core/src/deploy";
import { gitlabSystemId } from "../../packages/core/src/gitlab-api";
import { poolConfigSchema } from "../../packages/core/src/pools";
import {
  cleanUp,
  evaluate,
  evaluateExpression,
  NixEvalError,
  nixFiles,
  nixosDir,
  parseError,
  requireNixInstantiate,
} from "./nix";
import { currentSection, readmePath, renderOptions } from "./options-doc";

const everything =
  "services.hearth = { enable = true; gitlab.enable = true; github.enable = true; agent.enable = true; binaryCache.enable = true; }";
const withAll = (more = "") => `{ ${everything}; ${more} }`;

beforeAll(() => requireNixInstantiate());
afterAll(() => cleanUp());

describe("Nix syntax", () => {
  it("parses every .nix file in nixos/", () => {
    const files = nixFiles();
    expect(files.map((file) => relative(nixosDir, file))).toEqual(
      expect.arrayContaining(["flake.nix", "modules/base.nix", "tests/runner.nix", "test/stubs.nix"]),
    );
    const errors = files.flatMap((file) => {
      const error = parseError(file);
      return error ? [`${relative(nixosDir, file)}: ${error}`] : [];
    });
    expect(errors).toEqual([]);
  });
});

describe("the flake", () => {
  it("has the outputs the image is built from, without fetching nixpkgs", () => {
    // The outputs' names evaluate with nixpkgs lib alone; their values need full nixpkgs (CI).
    const outputs = evaluateExpression<Record<string, string[]>>(`
      let flake = import ${nixosDir}/flake.nix;
          outputs = flake.outputs { self = outputs; nixpkgs = { inherit lib; }; };
      in lib.mapAttrs (_: lib.attrNames) outputs // {
        inputs = [ flake.inputs.nixpkgs.url ];
        packagesX86 = lib.attrNames outputs.packages.x86_64-linux;
        checksX86 = lib.attrNames outputs.checks.x86_64-linux;
      }`);
    expect(outputs.nixosModules).toEqual([
      "agent",
      "base",
      "binary-cache",
      "default",
      "github-runner",
      "gitlab-runner",
    ]);
    expect(outputs.nixosConfigurations).toEqual(["runner-aarch64", "runner-x86_64"]);
    expect(outputs.packages).toEqual(["aarch64-linux", "x86_64-linux"]);
    expect(outputs.packagesX86).toEqual(["agent", "ami"]);
    expect(outputs.checksX86).toEqual(["runner-vm", "toplevel"]);
    // The lock pins the branch flake.nix names.
    const lock = JSON.parse(readFileSync(`${nixosDir}/flake.lock`, "utf8"));
    const original = lock.nodes.nixpkgs.original;
    expect(outputs.inputs).toEqual([`github:${original.owner}/${original.repo}/${original.ref}`]);
    expect(lock.nodes.nixpkgs.locked.rev).toMatch(/^[0-9a-f]{40}$/);
  });

  it("exports modules that evaluate together", () => {
    const names = evaluateExpression<string[]>(`
      let flake = (import ${nixosDir}/flake.nix).outputs { self = { }; nixpkgs = { inherit lib; }; };
          evaluated = lib.evalModules { modules = [ ./test/stubs.nix flake.nixosModules.default
            { services.hearth = { enable = true; github.enable = true; }; } ]; };
      in lib.attrNames evaluated.config.systemd.services`);
    expect(names).toEqual(["hearth-github-runner-0", "hearth-github-runner-1", "hearth-secrets"]);
  });
});

describe("base", () => {
  it("sizes Nix to the job slots, keeps a warm store and trusts root only", () => {
    const result = evaluate("{ services.hearth.enable = true; }");
    expect(result.failedAssertions).toEqual([]);
    expect(result.hearth.slots).toBe(2);
    expect(result.nix.settings).toMatchObject({
      "max-jobs": 2,
      sandbox: true,
      "trusted-users": ["root"],
      "keep-outputs": true,
      "min-free": 10 * 2 ** 30,
      "max-free": 30 * 2 ** 30,
    });
    expect(result.nix.settings["experimental-features"]).toEqual(
      expect.arrayContaining(["nix-command", "flakes"]),
    );
    expect(result.nix.settings["allowed-users"]).toContain("@hearth-jobs");
    expect(result.nix.nrBuildUsers).toBe(2);
    expect(result.nix.gcAutomatic).toBe(false);
    expect(result.users.groups["hearth-jobs"]).toEqual({ gid: 30000 });

    const four = evaluate(
      "{ services.hearth = { enable = true; slots = 4; nix.minFree = 1000; nix.maxFree = 2000; }; }",
    );
    expect(four.nix.settings).toMatchObject({ "max-jobs": 4, "min-free": 1000, "max-free": 2000 });
    expect(four.nix.nrBuildUsers).toBe(4);
  });

  it("sets nothing while disabled", () => {
    const result = evaluate("{ }");
    expect(result.services).toEqual({});
    expect(result.nftables.tables).toEqual({});
    expect(result.nix.settings["max-jobs"]).toBe("auto");
  });

  it("refuses fewer than one slot, max-jobs below the slots, a GC timer and a baked machine-id", () => {
    expect(evaluate("{ services.hearth = { enable = true; slots = 0; }; }").failedAssertions).toContain(
      "services.hearth.slots must be at least 1 (it is 0).",
    );
    const lowMaxJobs = evaluate("{ services.hearth = { enable = true; slots = 3; nix.maxJobs = 2; }; }");
    expect(lowMaxJobs.failedAssertions).toEqual([
      "nix.settings.max-jobs (2) must be a number of at least services.hearth.slots (3): every slot may build at once.",
    ]);
    const auto = evaluate(
      `{ lib, ... }: { services.hearth.enable = true; nix.settings.max-jobs = lib.mkForce "auto"; }`,
    );
    expect(auto.failedAssertions).toEqual([expect.stringContaining("nix.settings.max-jobs (auto)")]);
    expect(evaluate("{ services.hearth.enable = true; nix.gc.automatic = true; }").failedAssertions).toEqual([
      expect.stringContaining("nix.gc.automatic"),
    ]);
    expect(
      evaluate(`{ services.hearth.enable = true; environment.etc."machine-id".text = "0123"; }`)
        .failedAssertions,
    ).toEqual([
      "/etc/machine-id must not be baked into the image: systemd writes one per instance at first boot.",
    ]);
    expect(
      evaluate("{ services.hearth = { enable = true; nix.minFree = 5; nix.maxFree = 5; }; }")
        .failedAssertions,
    ).toEqual(["services.hearth.nix.maxFree must be more than services.hearth.nix.minFree."]);
  });

  it("refuses a runner, the agent or the cache without the base", () => {
    const result = evaluate("{ services.hearth = { gitlab.enable = true; binaryCache.enable = true; }; }");
    expect(result.failedAssertions).toEqual([
      "services.hearth.gitlab.enable needs services.hearth.enable (the job users, hearth-secrets and Nix settings it relies on).",
      "services.hearth.binaryCache.enable needs services.hearth.enable (the job users, hearth-secrets and Nix settings it relies on).",
    ]);
  });

  it("rejects values of the wrong type with the option's name", () => {
    expect(() => evaluate("{ services.hearth.slots = -1; }")).toThrow(NixEvalError);
    expect(() => evaluate("{ services.hearth.slots = -1; }")).toThrow(/services\.hearth\.slots/);
    expect(() => evaluate("{ services.hearth.stage = 3; }")).toThrow(/services\.hearth\.stage.*not of type/s);
    expect(() => evaluate(withAll('services.hearth.secretsDir = "/tmp";'))).toThrow(/read-only/);
  });

  it("drops the job users' traffic to IMDS, by uid and by group", () => {
    const result = evaluate(withAll("services.hearth.slots = 3;"));
    const table = result.nftables.tables["hearth-imds"];
    expect(result.nftables.enable).toBe(true);
    expect(table?.family).toBe("inet");
    expect(table?.content).toBe(
      [
        "chain output {",
        "  type filter hook output priority filter; policy accept;",
        "  meta skgid 30000 ip daddr 169.254.169.254 drop",
        "  meta skgid 30000 ip6 daddr fd00:ec2::254 drop",
        "  meta skuid { 30100, 30101, 30102, 30001 } ip daddr 169.254.169.254 drop",
        "  meta skuid { 30100, 30101, 30102, 30001 } ip6 daddr fd00:ec2::254 drop",
        "}",
        "",
      ].join("\n"),
    );
    // Every user a job runs as is in the rule and in the job group.
    const jobUsers = Object.values(result.users.users);
    expect(jobUsers.map((user) => user.uid).sort()).toEqual([...result.hearth.jobUids].sort());
    expect(new Set(jobUsers.map((user) => user.group))).toEqual(new Set(["hearth-jobs"]));

    const off = evaluate(withAll("services.hearth.imds.blockJobUsers = false;"));
    expect(off.nftables.tables).toEqual({});
  });

  it("reads from the user data only keys infra writes there", () => {
    const pool = poolConfigSchema.parse({
      name: "x86_64",
      labels: ["nix"],
      architecture: "x86_64",
      instanceTypes: ["c7a.xlarge"],
    });
    const written = Object.keys(JSON.parse(userData("production", "us-east-1", pool)).hearth);
    const script = evaluate(withAll()).services["hearth-secrets"]?.script ?? "";
    const read = [...script.matchAll(/from_user_data (\w+)\)/g)].map((match) => match[1]);
    expect(read.sort()).toEqual(["agentConfigParameter", "credentialsParameter", "pool", "stage"]);
    expect(written).toEqual(expect.arrayContaining(read));
  });

  it("generates shell that bash parses", () => {
    const result = evaluate(withAll());
    const scripts = Object.entries(result.services).filter(([, unit]) => unit.script);
    expect(scripts.map(([name]) => name)).toEqual(
      expect.arrayContaining(["hearth-secrets", "hearth-cache-push"]),
    );
    for (const [name, unit] of scripts) {
      const check = spawnSync("bash", ["-n"], { input: unit.script, encoding: "utf8" });
      expect(check.stderr, name).toBe("");
      expect(check.status, name).toBe(0);
    }
  });

  it("fetches secrets at boot into /run, ahead of the Nix daemon", () => {
    const unit = evaluate(withAll()).services["hearth-secrets"];
    expect(unit?.serviceConfig).toMatchObject({ Type: "oneshot", RemainAfterExit: true });
    expect(unit?.wantedBy).toEqual(["multi-user.target"]);
    expect(unit?.before).toContain("nix-daemon.service");
    expect(unit?.script).toContain("X-aws-ec2-metadata-token-ttl-seconds");
    expect(unit?.script).not.toMatch(/set -x|echo "\$credentials|cat .*secrets/);
  });
});

describe("gitlab-runner", () => {
  it("runs one shell-executor runner for the pool, with the token under /run and concurrency = slots", () => {
    const result = evaluate(withAll('services.hearth.slots = 3; services.hearth.pool = "x86_64";'));
    expect(result.failedAssertions).toEqual([]);
    const runner = result.gitlabRunner;
    expect(runner.enable).toBe(true);
    expect(runner.gracefulTermination).toBe(true);
    expect(runner.gracefulTimeout).toBe("21600s");
    expect(runner.settings.concurrent).toBe(3);
    // Loopback only: the agent asks it for the running jobs.
    expect(runner.settings.listen_address).toBe("127.0.0.1:9252");
    expect(Object.keys(runner.services)).toEqual(["x86_64"]);
    expect(runner.services.x86_64).toMatchObject({
      executor: "shell",
      authenticationTokenConfigFile: "/run/secrets/gitlab-runner.env",
      limit: 3,
    });
    const unit = result.services["gitlab-runner"];
    expect(unit?.serviceConfig).toMatchObject({
      DynamicUser: false,
      User: "gitlab-runner",
      Group: "hearth-jobs",
      // A stop (drain, release) is SIGQUIT to gitlab-runner alone; its jobs finish.
      KillSignal: "SIGQUIT",
      KillMode: "mixed",
    });
    expect(unit?.requires).toContain("hearth-secrets.service");
    expect(unit?.unitConfig.ConditionPathExists).toBe("/run/secrets/gitlab-runner.env");
    expect(result.users.users["gitlab-runner"]).toMatchObject({ uid: 30001, group: "hearth-jobs" });

    const capped = evaluate(withAll("services.hearth.maxJobSeconds = 3600;"));
    expect(capped.gitlabRunner.gracefulTimeout).toBe("3600s");
    expect(evaluate(withAll("services.hearth.maxJobSeconds = null;")).gitlabRunner.gracefulTimeout).toBe(
      "6h",
    );
  });

  it("refuses GitLab without a way to the pool's credentials", () => {
    const result = evaluate(withAll("services.hearth.readUserData = false;"));
    expect(result.failedAssertions).toEqual([
      "services.hearth.gitlab is enabled but the pool has no credentials: set services.hearth.poolCredentialsParameter or keep services.hearth.readUserData.",
    ]);
    const named = evaluate(
      withAll(
        'services.hearth.readUserData = false; services.hearth.poolCredentialsParameter = "/hearth/s/pools/p/credentials";',
      ),
    );
    expect(named.failedAssertions).toEqual([]);
    expect(named.services["hearth-secrets"]?.script).toContain(
      "credentials_parameter=/hearth/s/pools/p/credentials",
    );
  });

  it("writes the system id the control plane derives from the instance id", () => {
    const script = evaluate(withAll()).services["hearth-secrets"]?.script ?? "";
    const line = script.split("\n").find((l) => l.startsWith("system_id="));
    expect(line).toBeDefined();
    for (const instanceId of ["i-0123456789abcdef0", "i-0fedcba9876543210"]) {
      const systemId = execFileSync("bash", ["-c", `${line}\nprintf '%s' "$system_id"`], {
        env: { PATH: process.env.PATH, instance_id: instanceId },
        encoding: "utf8",
      });
      expect(systemId).toBe(gitlabSystemId(instanceId));
    }
    expect(script).toContain("> /var/lib/gitlab-runner/.gitlab-runner/.runner_system_id");
  });
});

describe("github-runner", () => {
  it("has one JIT runner unit per slot, started by the agent, as that slot's job user", () => {
    const result = evaluate(withAll("services.hearth.slots = 3;"));
    const units = Object.keys(result.services).filter((name) => name.startsWith("hearth-github-runner-"));
    expect(units.sort()).toEqual([
      "hearth-github-runner-0",
      "hearth-github-runner-1",
      "hearth-github-runner-2",
    ]);
    for (const slot of [0, 1, 2]) {
      const unit = result.services[`hearth-github-runner-${slot}`];
      expect(unit?.wantedBy).toEqual([]);
      expect(unit?.unitConfig.ConditionPathExists).toBe(`/run/hearth/runners/${slot}/jitconfig`);
      expect(unit?.serviceConfig).toMatchObject({
        User: `hearth-job-${slot}`,
        Group: "hearth-jobs",
        WorkingDirectory: `/var/lib/hearth/runners/${slot}`,
        LoadCredential: `jitconfig:/run/hearth/runners/${slot}/jitconfig`,
        Restart: "no",
        // A backstop past the longest limit a pool may set: the agent enforces the pool's own.
        RuntimeMaxSec: "432600s",
        ProtectProc: "invisible",
      });
      expect(unit?.serviceConfig.ExecStartPost).toMatch(
        new RegExp(`rm -f /run/hearth/runners/${slot}/jitconfig$`),
      );
      expect(unit?.script).toMatch(
        /^exec \/nix\/store\/\S+-github-runner\/bin\/Runner\.Listener run --jitconfig "\$\(cat "\$CREDENTIALS_DIRECTORY\/jitconfig"\)"\n$/,
      );
      expect(result.users.users[`hearth-job-${slot}`]).toMatchObject({
        uid: 30100 + slot,
        isSystemUser: true,
      });
    }
  });
});

describe("agent", () => {
  it("writes its config from the options and runs as root, restarted always", () => {
    const result = evaluate(
      withAll('services.hearth = { stage = "production"; region = "eu-west-1"; pool = "arm"; slots = 3; };'),
    );
    const config = JSON.parse(result.etc["hearth/agent.json"]?.text ?? "null");
    expect(config).toEqual({
      stage: "production",
      region: "eu-west-1",
      pool: "arm",
      slots: 3,
      agentConfigParameter: null,
      poolCredentialsParameter: null,
      runnerConfigPrefix: null,
      stateDir: "/var/lib/hearth",
      runnerCommand: expect.stringMatching(/^\/nix\/store\/\S+-github-runner\/bin\/Runner\.Listener$/),
      runnerUnit: "hearth-github-runner-{slot}.service",
      runnerConfigDir: "/run/hearth/runners",
      gitlabRunnerService: "gitlab-runner.service",
      gitlabSystemIdFile: "/var/lib/gitlab-runner/.gitlab-runner/.runner_system_id",
      gitlabJobsUrl: "http://127.0.0.1:9252/debug/jobs/list",
      gitlabConfigFile: "/var/lib/gitlab-runner/.gitlab-runner/config.toml",
      maxJobSeconds: 21600,
      pushQueueDir: "/var/lib/hearth/push-queue",
    });
    // The jobs URL is gitlab-runner's own listen address.
    expect(config.gitlabJobsUrl).toBe(
      `http://${result.gitlabRunner.settings.listen_address}/debug/jobs/list`,
    );
    const unit = result.services["hearth-agent"];
    expect(unit?.serviceConfig).toMatchObject({
      ExecStart: expect.stringMatching(
        /^\/nix\/store\/\S+-nodejs_22\/bin\/node \/opt\/hearth\/agent\.mjs --config \/etc\/hearth\/agent\.json$/,
      ),
      Restart: "always",
      User: "root",
      KillMode: "process",
    });
    expect(unit?.wantedBy).toEqual(["multi-user.target"]);
    expect(unit?.after).toContain("hearth-secrets.service");
  });

  it("writes a config the agent takes, completed by the user data infra gives each instance", () => {
    const text = evaluate(withAll()).etc["hearth/agent.json"]?.text ?? "";
    const pool = poolConfigSchema.parse({
      name: "arm",
      labels: ["nix", "aarch64-linux"],
      architecture: "arm64",
      instanceTypes: ["c7g.xlarge"],
      slotsPerInstance: 3,
      maxJobMinutes: 90,
    });
    const resolved = resolveAgentFile(parseAgentFile(text), userData("production", "eu-west-1", pool));
    expect(resolved).toMatchObject({
      stage: "production",
      region: "eu-west-1",
      pool: "arm",
      slots: 3,
      agentConfigParameter: "/hearth/production/agent",
      poolCredentialsParameter: "/hearth/production/pools/arm/credentials",
      runnerConfigPrefix: "/hearth/production/runners",
      runnerUnit: "hearth-github-runner-{slot}.service",
      gitlabJobsUrl: "http://127.0.0.1:9252/debug/jobs/list",
      gitlabConfigFile: "/var/lib/gitlab-runner/.gitlab-runner/config.toml",
      // The pool's limit, from the user data, over the image's 6 h.
      maxJobSeconds: 90 * 60,
    });
    // Without user data, the agent says what it lacks rather than guessing.
    expect(() => resolveAgentFile(parseAgentFile(text), null)).toThrow(/user data says stage, region, pool/);
  });

  it("names no GitHub or GitLab part the image does not have", () => {
    const config = JSON.parse(
      evaluate("{ services.hearth = { enable = true; agent.enable = true; }; }").etc["hearth/agent.json"]
        ?.text ?? "",
    );
    expect(config).toMatchObject({
      runnerCommand: null,
      gitlabRunnerService: null,
      gitlabJobsUrl: null,
      gitlabConfigFile: null,
      pushQueueDir: null,
    });
  });
});

describe("binary-cache", () => {
  it("substitutes from the stage's cache and cache.nixos.org, and only enqueues after a build", () => {
    const result = evaluate(
      withAll('services.hearth.binaryCache.url = "s3://cache-bucket?region=us-east-1";'),
    );
    expect(result.nix.settings.substituters).toEqual([
      "s3://cache-bucket?region=us-east-1",
      "https://cache.nixos.org/",
    ]);
    expect(result.nix.settings["trusted-public-keys"]).toContain(
      "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=",
    );
    expect(result.nix.settings["post-build-hook"]).toMatch(/-hearth-enqueue-build$/);
    const push = result.services["hearth-cache-push"];
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell, not a template
    expect(push?.script).toContain('nix copy --to "$url${sep}secret-key=/run/secrets/nix-signing-key"');
    expect(push?.unitConfig.ConditionPathExists).toContain("/run/secrets/nix-signing-key");
    expect(result.paths["hearth-cache-push"]?.pathConfig).toEqual({
      DirectoryNotEmpty: "/var/lib/hearth/push-queue",
    });
  });

  it("takes the cache from the agent config parameter at boot when no URL is set", () => {
    const result = evaluate(withAll());
    expect(result.nix.settings.substituters).toEqual(["https://cache.nixos.org/"]);
    expect(result.nix.extraOptions).toBe("!include /run/hearth/nix-cache.conf\n");
    const script = result.services["hearth-secrets"]?.script ?? "";
    expect(script).toContain(`param "$agent_config_parameter" | jq -r '.binaryCache // empty' || true`);
    expect(script).toContain("extra-substituters = %s");
    expect(script).toContain('signing_key_parameter="/hearth/$stage/binary-cache/signing-key"');
    expect(script).toContain("> /run/secrets/nix-signing-key.new");
  });
});

describe("the binary cache's signing key at boot", () => {
  /**
   * The binary-cache fragment of `hearth-secrets`, run by bash with Debian's `nix` for the store's and
   * with the parameter read from a file: /run is a folder of the test's.
   */
  function boot(parameterValue: string | null) {
    const script = evaluate(withAll()).services["hearth-secrets"]?.script ?? "";
    const lines = script.split("\n");
    const from = lines.findIndex((line) => line.startsWith("cache_url="));
    const to = lines.findIndex((line) => line.startsWith("rm -f /run/secrets/nix-signing-key.new"));
    expect(from).toBeGreaterThanOrEqual(0);
    expect(to).toBeGreaterThan(from);
    const run = mkdtempSync(join(tmpdir(), "hearth-boot-"));
    mkdirSync(join(run, "secrets"));
    mkdirSync(join(run, "hearth"));
    if (parameterValue !== null) writeFileSync(join(run, "signing-key"), parameterValue);
    const fragment = lines
      .slice(from, to + 1)
      .join("\n")
      .replace(/\/nix\/store\/[^/\s]+-nix\/bin\/nix/g, "nix")
      .replaceAll("/run/", `${run}/`);
    const prelude = [
      "set -euo pipefail",
      "stage=prod agent_config_parameter=/hearth/prod/agent",
      // Parameter Store: the signing key's parameter from the test's file, the agent config with a cache.
      `param() { case "$1" in */signing-key) cat ${run}/signing-key 2>/dev/null ;; */agent) echo '{"binaryCache":"s3://cache?region=eu-west-1"}' ;; esac; }`,
    ].join("\n");
    const result = spawnSync("bash", ["-c", `${prelude}\n${fragment}`], {
      encoding: "utf8",
      env: { PATH: process.env.PATH, NIX_CONFIG: "build-users-group =" },
    });
    const read = (path: string) =>
      existsSync(join(run, path)) ? readFileSync(join(run, path), "utf8") : null;
    const outcome = {
      status: result.status,
      stdout: result.stdout,
      stderr: result.stderr,
      key: read("secrets/nix-signing-key"),
      conf: read("hearth/nix-cache.conf"),
      leftover: existsSync(join(run, "secrets/nix-signing-key.new")),
    };
    rmSync(run, { recursive: true, force: true });
    return outcome;
  }

  it("takes a key made by npm run cache-key, and trusts its public half", () => {
    const key = generateSigningKey("hearth-prod-1");
    const booted = boot(key.secretKey);
    expect(booted.status).toBe(0);
    expect(booted.key).toBe(key.secretKey);
    expect(booted.conf).toBe(
      `extra-substituters = s3://cache?region=eu-west-1\nextra-trusted-public-keys = ${key.publicKey}\n`,
    );
    expect(booted.stdout).toContain("signing key read from /hearth/prod/binary-cache/signing-key");
    expect(booted.stdout + booted.stderr).not.toContain(key.secretKey.split(":")[1]);
    expect(booted.leftover).toBe(false);
  });

  it("takes the placeholder, or anything Nix refuses, as no key: queues, pushes nothing, says so once", () => {
    for (const value of [BINARY_CACHE_KEY_PLACEHOLDER, "hearth-prod-1:bm90IGEga2V5", ""]) {
      const booted = boot(value);
      expect(booted.status, value).toBe(0);
      // No key file: hearth-cache-push's ConditionPathExists keeps it from pushing.
      expect(booted.key).toBeNull();
      expect(booted.conf).toBe("extra-substituters = s3://cache?region=eu-west-1\n");
      expect(booted.stdout.match(/binary cache:.*/g)).toEqual([
        "binary cache: /hearth/prod/binary-cache/signing-key holds no signing key (set one with npm run cache-key); builds are queued, not pushed",
      ]);
      expect(booted.leftover).toBe(false);
    }
    const unreadable = boot(null);
    expect(unreadable.key).toBeNull();
    expect(unreadable.stdout).toContain("is not readable; builds are queued, not pushed");
  });

  it("reads the parameter infra writes", () => {
    const script = evaluate(withAll()).services["hearth-secrets"]?.script ?? "";
    expect(script).toContain(`signing_key_parameter="${parameterPaths("$stage").binaryCacheSigningKey}"`);
  });
});

describe("nixos/README.md", () => {
  it("documents every option with its type and default, as the modules declare them", () => {
    const options = evaluate().options;
    expect(options.map((option) => option.name)).toEqual(
      expect.arrayContaining([
        "services.hearth.slots",
        "services.hearth.gitlab.enable",
        "services.hearth.binaryCache.url",
      ]),
    );
    const section = currentSection(readFileSync(readmePath, "utf8"));
    expect(section, "regenerate it: npx tsx nixos/test/options-doc.ts --write").toBe(renderOptions(options));
  });
});
