import { runnerIdentity } from "@hearth/core/github-api";
import {
  MAX_GITHUB_RUNNERS_PER_SCOPE,
  MAX_RETIRED_CONFIGS,
  type SimGitHubScope,
  SimulatedForgeRunners,
} from "@hearth/core/simulation/forge/runners";
import { describe, expect, it } from "vitest";

/** The simulated forges' runners: what local mode's GitHub and GitLab allow, and what they refuse. */

const repo: SimGitHubScope = { repository: "acme/app" };
const org: SimGitHubScope = { organization: "acme" };
const pool = { labels: ["nix", "x86_64-linux"], architecture: "x86_64" as const };

function mint(forge: SimulatedForgeRunners, instanceId: string, slot: number, scope = repo) {
  const { name, labels } = runnerIdentity({ instanceId, slot, pool });
  const answer = forge.github.generateJitConfig(scope, { name, labels, runner_group_id: 1 });
  if (!answer.ok) throw new Error(answer.message);
  return answer.value;
}

describe("simulated GitHub runners", () => {
  it("mints an offline ephemeral runner with an opaque config that holds a random key", () => {
    const forge = new SimulatedForgeRunners();
    const first = mint(forge, "i-1", 0);
    expect(first.runner).toMatchObject({
      name: "hearth-i-1-0",
      status: "offline",
      busy: false,
      ephemeral: true,
      os: "unknown",
      runner_group_id: 1,
    });
    expect(first.runner.labels.map((label) => [label.name, label.type])).toEqual([
      ["nix", "custom"],
      ["x86_64-linux", "custom"],
      ["self-hosted", "read-only"],
      ["x64", "read-only"],
    ]);
    expect(first.encoded_jit_config).toMatch(/^[A-Za-z0-9+/]+=*$/);
    // The same name again, after the first is deleted: a new id and a config that differs.
    expect(forge.github.deleteRunner(repo, first.runner.id).ok).toBe(true);
    const second = mint(forge, "i-1", 0);
    expect(second.runner.id).not.toBe(first.runner.id);
    expect(second.encoded_jit_config).not.toBe(first.encoded_jit_config);
    // The config names its runner, but its key is random: it cannot be rebuilt from the id.
    const files = JSON.parse(Buffer.from(second.encoded_jit_config, "base64").toString()) as Record<
      string,
      string
    >;
    const forged = { ...files, ".credentials_rsaparams": Buffer.from('{"key":"guess"}').toString("base64") };
    const refusal = forge.github.startRunner({
      encodedJitConfig: Buffer.from(JSON.stringify(forged)).toString("base64"),
      instanceId: "i-1",
      slot: 0,
    });
    expect(refusal).toMatchObject({ ok: false, reason: "unknown-config" });
  });

  it("answers a duplicate name in a scope with GitHub's 422, and allows it in another scope", () => {
    const forge = new SimulatedForgeRunners();
    mint(forge, "i-1", 0);
    const again = forge.github.generateJitConfig(repo, {
      name: "hearth-i-1-0",
      labels: ["nix"],
      runner_group_id: 1,
    });
    expect(again).toEqual({
      ok: false,
      status: 422,
      message: "Validation Failed",
      errors: ["Already exists - A runner with the name hearth-i-1-0 already exists."],
    });
    expect(forge.github.all(repo)).toHaveLength(1);
    expect(mint(forge, "i-1", 0, org).runner.name).toBe("hearth-i-1-0");
    expect(forge.github.listRunners(repo, { name: "hearth-i-1-0" }).total_count).toBe(1);
    expect(forge.github.listRunners(org).total_count).toBe(1);
    expect(forge.github.listRunners({ repository: "ACME/App" }).total_count).toBe(1);
  });

  it("refuses bad bodies and a repository runner group other than 1, and keeps nothing of them", () => {
    const forge = new SimulatedForgeRunners();
    const bad = [
      { name: "", labels: ["a"], runner_group_id: 1 },
      { name: "x".repeat(65), labels: ["a"], runner_group_id: 1 },
      { name: "a", labels: [], runner_group_id: 1 },
      { name: "a", labels: [""], runner_group_id: 1 },
      { name: "a", labels: ["a"], runner_group_id: 0 },
      { name: "a\nb", labels: ["a"], runner_group_id: 1 },
    ];
    for (const body of bad) {
      expect(forge.github.generateJitConfig(repo, body)).toMatchObject({ ok: false, status: 422 });
    }
    expect(
      forge.github.generateJitConfig(repo, { name: "a", labels: ["a"], runner_group_id: 2 }),
    ).toMatchObject({ ok: false, status: 404 });
    expect(forge.github.generateJitConfig(org, { name: "a", labels: ["a"], runner_group_id: 2 }).ok).toBe(
      true,
    );
    expect(forge.github.all(repo)).toEqual([]);
  });

  it("bounds the runners of a scope", () => {
    const forge = new SimulatedForgeRunners();
    for (let i = 0; i < MAX_GITHUB_RUNNERS_PER_SCOPE; i++) {
      expect(
        forge.github.generateJitConfig(repo, { name: `r${i}`, labels: ["a"], runner_group_id: 1 }).ok,
      ).toBe(true);
    }
    expect(
      forge.github.generateJitConfig(repo, { name: "over", labels: ["a"], runner_group_id: 1 }),
    ).toMatchObject({ ok: false, status: 422 });
  });

  it("starts a runner only with a config minted here, for its own slot, once", () => {
    const forge = new SimulatedForgeRunners();
    const minted = mint(forge, "i-1", 0);
    const config = minted.encoded_jit_config;
    expect(
      forge.github.startRunner({ encodedJitConfig: "bm9wZQ==", instanceId: "i-1", slot: 0 }),
    ).toMatchObject({
      ok: false,
      reason: "unknown-config",
    });
    // Another instance, or another slot of the same instance: refused, and the config stays unused.
    expect(forge.github.startRunner({ encodedJitConfig: config, instanceId: "i-2", slot: 0 })).toMatchObject({
      ok: false,
      reason: "wrong-slot",
    });
    expect(forge.github.startRunner({ encodedJitConfig: config, instanceId: "i-1", slot: 1 })).toMatchObject({
      ok: false,
      reason: "wrong-slot",
    });
    expect(forge.github.runner(minted.runner.id)?.startedBy).toBeNull();
    const started = forge.github.startRunner({ encodedJitConfig: config, instanceId: "i-1", slot: 0 });
    expect(started).toMatchObject({ ok: true, runner: { startedBy: { instanceId: "i-1", slot: 0 } } });
    expect(forge.github.getRunner(repo, minted.runner.id)).toMatchObject({
      ok: true,
      value: { status: "online", os: "Linux", busy: false },
    });
    expect(forge.github.startRunner({ encodedJitConfig: config, instanceId: "i-1", slot: 0 })).toMatchObject({
      ok: false,
      reason: "config-used",
    });
    expect(forge.github.runnerOf("i-1", 0)?.id).toBe(minted.runner.id);
    expect(forge.github.runnerOf("i-1", 1)).toBeUndefined();
  });

  it("refuses a config whose runner was deleted", () => {
    const forge = new SimulatedForgeRunners();
    const minted = mint(forge, "i-1", 0);
    expect(forge.github.deleteRunner(repo, minted.runner.id)).toEqual({ ok: true, value: null });
    expect(
      forge.github.startRunner({ encodedJitConfig: minted.encoded_jit_config, instanceId: "i-1", slot: 0 }),
    ).toMatchObject({ ok: false, reason: "runner-gone" });
  });

  it("forgets the oldest configs of deleted runners beyond a bound, and no live runner's", () => {
    const forge = new SimulatedForgeRunners();
    const live = mint(forge, "i-live", 0);
    const configs: string[] = [];
    for (let i = 0; i <= MAX_RETIRED_CONFIGS; i++) {
      const minted = mint(forge, "i-1", 0);
      configs.push(minted.encoded_jit_config);
      forge.github.deleteRunner(repo, minted.runner.id);
    }
    const start = (encodedJitConfig: string) =>
      forge.github.startRunner({ encodedJitConfig, instanceId: "i-1", slot: 0 });
    expect(start(configs[0] ?? "")).toMatchObject({ ok: false, reason: "unknown-config" });
    expect(start(configs[1] ?? "")).toMatchObject({ ok: false, reason: "runner-gone" });
    expect(start(configs[configs.length - 1] ?? "")).toMatchObject({ ok: false, reason: "runner-gone" });
    expect(forge.snapshot().github.configs).toHaveLength(MAX_RETIRED_CONFIGS + 1);
    expect(
      forge.github.startRunner({ encodedJitConfig: live.encoded_jit_config, instanceId: "i-live", slot: 0 }),
    ).toMatchObject({ ok: true });
  });

  it("gives a job only to a started idle runner, refuses deletion while it runs, and deletes it after", () => {
    const forge = new SimulatedForgeRunners();
    const job = { source: "github" as const, id: "77" };
    const minted = mint(forge, "i-1", 0);
    const id = minted.runner.id;
    expect(forge.github.takeJob(999, job)).toMatchObject({ ok: false, reason: "unknown-runner" });
    expect(forge.github.takeJob(id, job)).toMatchObject({ ok: false, reason: "not-started" });
    forge.github.startRunner({ encodedJitConfig: minted.encoded_jit_config, instanceId: "i-1", slot: 0 });
    expect(forge.github.finishJob(id)).toMatchObject({ ok: false, reason: "no-job" });
    expect(forge.github.takeJob(id, job)).toMatchObject({ ok: true, runner: { job } });
    expect(forge.github.takeJob(id, { source: "github", id: "78" })).toMatchObject({
      ok: false,
      reason: "busy",
    });
    expect(forge.github.getRunner(repo, id)).toMatchObject({ ok: true, value: { busy: true } });
    expect(forge.github.deleteRunner(repo, id)).toEqual({
      ok: false,
      status: 422,
      message: "Bad request - Runner hearth-i-1-0 is still running a job.",
    });
    expect(forge.github.finishJob(id)).toMatchObject({ ok: true, runner: { id, job } });
    // Ephemeral: gone after its one job.
    expect(forge.github.runner(id)).toBeUndefined();
    expect(forge.github.getRunner(repo, id)).toMatchObject({ ok: false, status: 404 });
    expect(forge.github.deleteRunner(repo, id)).toMatchObject({ ok: false, status: 404 });
  });

  it("keeps a stopped idle runner registered and offline; a stopped busy one is gone", () => {
    const forge = new SimulatedForgeRunners();
    const idle = mint(forge, "i-1", 0);
    const busy = mint(forge, "i-1", 1);
    forge.github.startRunner({ encodedJitConfig: idle.encoded_jit_config, instanceId: "i-1", slot: 0 });
    forge.github.startRunner({ encodedJitConfig: busy.encoded_jit_config, instanceId: "i-1", slot: 1 });
    forge.github.takeJob(busy.runner.id, { source: "github", id: "1" });
    forge.github.stopRunner(idle.runner.id);
    forge.github.stopRunner(busy.runner.id);
    expect(forge.github.getRunner(repo, idle.runner.id)).toMatchObject({
      ok: true,
      value: { status: "offline" },
    });
    expect(forge.github.takeJob(idle.runner.id, { source: "github", id: "2" })).toMatchObject({
      ok: false,
      reason: "stopped",
    });
    expect(forge.github.runner(busy.runner.id)).toBeUndefined();
  });

  it("deletes only within the runner's own scope", () => {
    const forge = new SimulatedForgeRunners();
    const minted = mint(forge, "i-1", 0, org);
    expect(forge.github.deleteRunner(repo, minted.runner.id)).toMatchObject({ ok: false, status: 404 });
    expect(forge.github.getRunner(repo, minted.runner.id)).toMatchObject({ ok: false, status: 404 });
    expect(forge.github.runner(minted.runner.id)).toBeDefined();
  });

  it("restores from its snapshot, JSON and all, with configs still consumed once", () => {
    const forge = new SimulatedForgeRunners();
    const used = mint(forge, "i-1", 0);
    const fresh = mint(forge, "i-1", 1);
    forge.github.startRunner({ encodedJitConfig: used.encoded_jit_config, instanceId: "i-1", slot: 0 });
    const saved = JSON.stringify(forge.snapshot());
    // The snapshot keeps digests of the configs, never the configs.
    expect(saved).not.toContain(used.encoded_jit_config);
    expect(saved).not.toContain(fresh.encoded_jit_config);

    const restored = new SimulatedForgeRunners();
    restored.restore(JSON.parse(saved));
    expect(restored.snapshot()).toEqual(forge.snapshot());
    expect(
      restored.github.startRunner({ encodedJitConfig: used.encoded_jit_config, instanceId: "i-1", slot: 0 }),
    ).toMatchObject({ ok: false, reason: "config-used" });
    expect(
      restored.github.startRunner({ encodedJitConfig: fresh.encoded_jit_config, instanceId: "i-1", slot: 1 }),
    ).toMatchObject({ ok: true });
    expect(mint(restored, "i-2", 0).runner.id).toBeGreaterThan(fresh.runner.id);
  });

  it("tells its listener of every change", () => {
    let changes = 0;
    const forge = new SimulatedForgeRunners({ changed: () => changes++ });
    const minted = mint(forge, "i-1", 0);
    expect(changes).toBe(1);
    forge.github.generateJitConfig(repo, { name: "hearth-i-1-0", labels: ["a"], runner_group_id: 1 });
    expect(changes).toBe(1);
    forge.github.startRunner({ encodedJitConfig: minted.encoded_jit_config, instanceId: "i-1", slot: 0 });
    forge.gitlab.poolRunner("x86_64", { tagList: ["nix"], runUntagged: true });
    expect(changes).toBe(3);
  });
});

describe("simulated GitLab runners", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");

  it("creates a runner as POST /user/runners answers, and refuses what GitLab refuses", () => {
    const forge = new SimulatedForgeRunners({ now: () => now });
    const made = forge.gitlab.createRunner({ runner_type: "group_type", group_id: 5, tag_list: ["nix"] });
    expect(made).toMatchObject({ ok: true, value: { id: 1, token_expires_at: null } });
    if (!made.ok) return;
    expect(made.value.token).toMatch(/^glrt-[A-Za-z0-9_-]{20,}$/);
    expect(forge.gitlab.createRunner({ runner_type: "group_type" })).toMatchObject({
      ok: false,
      status: 400,
    });
    expect(forge.gitlab.createRunner({ runner_type: "project_type" })).toMatchObject({
      ok: false,
      status: 400,
    });
    expect(forge.gitlab.createRunner({ runner_type: "nope" as "group_type" })).toMatchObject({
      ok: false,
      status: 400,
    });
    expect(forge.gitlab.all()).toHaveLength(1);
  });

  it("gives each pool one runner with its own token", () => {
    const forge = new SimulatedForgeRunners({ now: () => now });
    const x86 = forge.gitlab.poolRunner("x86_64", { tagList: ["nix", "x86_64-linux"], runUntagged: true });
    const arm = forge.gitlab.poolRunner("aarch64", { tagList: ["nix", "aarch64-linux"], runUntagged: false });
    expect(forge.gitlab.poolRunner("x86_64", { tagList: [], runUntagged: false })).toEqual(x86);
    expect(arm.token).not.toBe(x86.token);
    expect(forge.gitlab.tokenOf("x86_64")).toBe(x86.token);
    expect(forge.gitlab.tokenOf("none")).toBeUndefined();
    expect(forge.gitlab.runner(arm.id)).toMatchObject({ pool: "aarch64", runUntagged: false });
  });

  it("registers a manager per system_id on verify, deletes it once, and refuses an unknown token", () => {
    let clock = now;
    const forge = new SimulatedForgeRunners({ now: () => clock });
    const { id, token } = forge.gitlab.poolRunner("x86_64", { tagList: ["nix"], runUntagged: true });
    expect(forge.gitlab.verify(token)).toEqual({ ok: true, value: { id, token, token_expires_at: null } });
    expect(forge.gitlab.managers(id)).toEqual([]);
    expect(forge.gitlab.verify(token, "s_0123456789ab")).toMatchObject({ ok: true, value: { id } });
    expect(forge.gitlab.verify(token, "s_ba9876543210").ok).toBe(true);
    clock += 60_000;
    expect(forge.gitlab.verify(token, "s_0123456789ab").ok).toBe(true);
    expect(forge.gitlab.managers(id)).toEqual([
      {
        id: 1,
        system_id: "s_0123456789ab",
        version: null,
        revision: null,
        platform: null,
        architecture: null,
        created_at: "2026-01-01T00:00:00.000Z",
        contacted_at: "2026-01-01T00:01:00.000Z",
        ip_address: null,
        status: "online",
      },
      expect.objectContaining({ id: 2, system_id: "s_ba9876543210" }),
    ]);
    clock += 3 * 3600_000;
    expect(forge.gitlab.managers(id)?.[0]?.status).toBe("offline");
    expect(forge.gitlab.verify("glrt-unknown", "s_0123456789ab")).toEqual({
      ok: false,
      status: 403,
      message: "403 Forbidden",
    });
    expect(forge.gitlab.verify(token, "bad system id")).toMatchObject({ ok: false, status: 400 });
    expect(forge.gitlab.deleteManager("glrt-unknown", "s_0123456789ab")).toBe("forbidden");
    expect(forge.gitlab.deleteManager(token, "s_0123456789ab")).toBe("deleted");
    expect(forge.gitlab.deleteManager(token, "s_0123456789ab")).toBe("already-gone");
    expect(forge.gitlab.managers(id)?.map((manager) => manager.system_id)).toEqual(["s_ba9876543210"]);
    expect(forge.gitlab.managers(999)).toBeUndefined();
  });

  it("hands a job only to a registered manager of a runner whose tags allow it", () => {
    const forge = new SimulatedForgeRunners({ now: () => now });
    const x86 = forge.gitlab.poolRunner("x86_64", { tagList: ["nix", "x86_64-linux"], runUntagged: true });
    const arm = forge.gitlab.poolRunner("aarch64", { tagList: ["nix", "aarch64-linux"], runUntagged: false });
    const manager = "s_0123456789ab";
    expect(forge.gitlab.mayTakeJob("glrt-nope", manager, ["nix"])).toMatchObject({
      ok: false,
      reason: "unknown-token",
    });
    expect(forge.gitlab.mayTakeJob(x86.token, manager, ["nix"])).toMatchObject({
      ok: false,
      reason: "unknown-manager",
    });
    forge.gitlab.verify(x86.token, manager);
    forge.gitlab.verify(arm.token, manager);
    expect(forge.gitlab.mayTakeJob(x86.token, manager, ["NIX", "x86_64-linux"])).toEqual({
      ok: true,
      runnerId: x86.id,
    });
    expect(forge.gitlab.mayTakeJob(x86.token, manager, [])).toEqual({ ok: true, runnerId: x86.id });
    expect(forge.gitlab.mayTakeJob(x86.token, manager, ["aarch64-linux"])).toMatchObject({
      ok: false,
      reason: "tags",
    });
    expect(forge.gitlab.mayTakeJob(arm.token, manager, [])).toMatchObject({ ok: false, reason: "tags" });
    forge.gitlab.deleteManager(x86.token, manager);
    expect(forge.gitlab.mayTakeJob(x86.token, manager, ["nix"])).toMatchObject({
      ok: false,
      reason: "unknown-manager",
    });
  });

  it("restores runners, tokens and managers from its snapshot", () => {
    const forge = new SimulatedForgeRunners({ now: () => now });
    const { id, token } = forge.gitlab.poolRunner("x86_64", { tagList: ["nix"], runUntagged: true });
    forge.gitlab.verify(token, "s_0123456789ab");
    const restored = new SimulatedForgeRunners({ now: () => now });
    restored.restore(JSON.parse(JSON.stringify(forge.snapshot())));
    expect(restored.gitlab.tokenOf("x86_64")).toBe(token);
    expect(restored.gitlab.mayTakeJob(token, "s_0123456789ab", ["nix"])).toEqual({ ok: true, runnerId: id });
    expect(restored.gitlab.createRunner({ runner_type: "instance_type" })).toMatchObject({
      ok: true,
      value: { id: id + 1 },
    });
  });
});
