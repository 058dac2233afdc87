import { chmod, mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parseJobList, runnerIdOf, systemdGitLab } from "../src/system/gitlab";
import { fileMemory } from "../src/system/memory";
import { systemdRunners } from "../src/system/runners";
import { hostStore } from "../src/system/store";
import { systemctl } from "../src/system/systemctl";
import { fakeServer } from "./support/http";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "hearth-agent-"));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

/** A `systemctl` that logs its arguments and answers `show` from a file the test writes. */
async function fakeSystemctl(): Promise<{
  command: string;
  calls(): Promise<string[]>;
  show(text: string): Promise<void>;
}> {
  const command = join(dir, "systemctl");
  await writeFile(
    command,
    `#!/bin/sh\necho "$*" >> "${dir}/calls"\nif [ "$1" = show ]; then cat "${dir}/show"; fi\n`,
  );
  await chmod(command, 0o755);
  return {
    command,
    calls: async () =>
      (await readFile(join(dir, "calls"), "utf8").catch(() => "")).split("\n").filter(Boolean),
    show: (text) => writeFile(join(dir, "show"), text),
  };
}

describe("the slots' runners as systemd units", () => {
  it("writes the config 0600 where only the unit reads it, and starts the slot's unit", async () => {
    const fake = await fakeSystemctl();
    const runners = systemdRunners({ systemctl: systemctl(fake.command), configDir: join(dir, "runners") });
    await runners.start(1, "jit-secret");
    const file = join(dir, "runners", "1", "jitconfig");
    expect(await readFile(file, "utf8")).toBe("jit-secret");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "runners", "1"))).mode & 0o777).toBe(0o700);
    expect(await fake.calls()).toEqual(["start hearth-github-runner@1.service"]);
    await runners.stop(1);
    expect(await fake.calls()).toContain("stop hearth-github-runner@1.service");
    await expect(stat(file)).rejects.toThrow();
  });

  it("starts the NixOS module's units, named with the slot in them", async () => {
    const fake = await fakeSystemctl();
    const runners = systemdRunners({
      systemctl: systemctl(fake.command),
      configDir: join(dir, "runners"),
      unit: "hearth-github-runner-{slot}.service",
    });
    await runners.start(2, "jit-secret");
    await runners.stop(2);
    expect(await fake.calls()).toEqual([
      "start hearth-github-runner-2.service",
      "stop hearth-github-runner-2.service",
    ]);
  });

  it("sees listening, running (a Runner.Worker in the unit's cgroup; which job, it cannot tell) and exited", async () => {
    const fake = await fakeSystemctl();
    const cgroupRoot = join(dir, "cgroup");
    const procRoot = join(dir, "proc");
    const group = "/system.slice/hearth-github-runner@1.service";
    await mkdir(join(cgroupRoot, group), { recursive: true });
    await writeFile(join(cgroupRoot, group, "cgroup.procs"), "100\n101\n");
    for (const [pid, comm] of [
      ["100", "Runner.Listener"],
      ["101", "Runner.Worker"],
      ["200", "Runner.Listener"],
    ]) {
      await mkdir(join(procRoot, pid as string), { recursive: true });
      await writeFile(join(procRoot, pid as string, "comm"), `${comm}\n`);
    }
    const other = "/system.slice/hearth-github-runner@0.service";
    await mkdir(join(cgroupRoot, other), { recursive: true });
    await writeFile(join(cgroupRoot, other, "cgroup.procs"), "200\n");
    // A file an older image's hook might leave: not read (no hook can know the job's id).
    await mkdir(join(dir, "runners", "1"), { recursive: true });
    await writeFile(join(dir, "runners", "1", "job"), "28311903001\n");
    await mkdir(join(dir, "runners", "2"), { recursive: true });
    await writeFile(join(dir, "runners", "2", "jitconfig"), "spent");
    await fake.show(
      [
        `Id=hearth-github-runner@0.service\nActiveState=active\nControlGroup=${other}`,
        `Id=hearth-github-runner@1.service\nActiveState=active\nControlGroup=${group}`,
        "Id=hearth-github-runner@2.service\nActiveState=failed\nControlGroup=",
      ].join("\n\n"),
    );
    const runners = systemdRunners({
      systemctl: systemctl(fake.command),
      configDir: join(dir, "runners"),
      cgroupRoot,
      procRoot,
    });
    const seen = await runners.inspect([0, 1, 2]);
    expect(Object.fromEntries(seen)).toEqual({
      0: { state: "listening" },
      1: { state: "running", job: null },
      2: { state: "exited" },
    });
    // An exited runner's config is removed: it is of no more use.
    await expect(stat(join(dir, "runners", "2", "jitconfig"))).rejects.toThrow();
    expect(await fake.calls()).toEqual([
      "show --property=Id,ActiveState,ControlGroup hearth-github-runner@0.service hearth-github-runner@1.service hearth-github-runner@2.service",
    ]);
  });
});

describe("gitlab-runner", () => {
  it("gets its system_id before it starts, and signals only its main process", async () => {
    const fake = await fakeSystemctl();
    const gitlab = systemdGitLab({
      systemctl: systemctl(fake.command),
      service: "gitlab-runner.service",
      systemIdFile: join(dir, "gitlab-runner", ".runner_system_id"),
      envFile: join(dir, "secrets", "gitlab-runner.env"),
    });
    await gitlab.start({ url: "https://gitlab.example.com", token: "glrt-secret" }, "s_4e1f0a9c2b7d");
    expect(await readFile(join(dir, "gitlab-runner", ".runner_system_id"), "utf8")).toBe("s_4e1f0a9c2b7d\n");
    const env = join(dir, "secrets", "gitlab-runner.env");
    expect(await readFile(env, "utf8")).toBe(
      "CI_SERVER_URL=https://gitlab.example.com\nCI_SERVER_TOKEN=glrt-secret\n",
    );
    expect((await stat(env)).mode & 0o777).toBe(0o600);
    await gitlab.drain();
    await gitlab.abort();
    expect(await fake.calls()).toEqual([
      "start --no-block gitlab-runner.service",
      // Drained by a stop: systemd would restart a runner that ended after a bare signal.
      "stop --no-block gitlab-runner.service",
      "kill --signal=SIGTERM --kill-whom=main gitlab-runner.service",
    ]);
  });

  it("is stopped for a release by systemd (not signalled), and says when it has ended", async () => {
    const fake = await fakeSystemctl();
    const gitlab = systemdGitLab({
      systemctl: systemctl(fake.command),
      service: "gitlab-runner.service",
      systemIdFile: join(dir, "gitlab-runner", ".runner_system_id"),
    });
    await gitlab.stop();
    await fake.show("deactivating\n");
    expect(await gitlab.active()).toBe(true);
    await fake.show("inactive\n");
    expect(await gitlab.active()).toBe(false);
    expect(await fake.calls()).toEqual([
      "stop --no-block gitlab-runner.service",
      "show --property=ActiveState --value gitlab-runner.service",
      "show --property=ActiveState --value gitlab-runner.service",
    ]);
  });

  it("asks gitlab-runner's listen address for its jobs, and says null without one", async () => {
    const server = await fakeServer((_request, res) => {
      res
        .writeHead(200)
        .end("url=https://gitlab.example.com/acme/app/-/jobs/4411 state=running stage=build\n");
    });
    try {
      const fake = await fakeSystemctl();
      const base = {
        systemctl: systemctl(fake.command),
        service: "gitlab-runner.service",
        systemIdFile: join(dir, "id"),
      };
      expect(
        await systemdGitLab({ ...base, jobsUrl: `${server.url}/debug/jobs/list` }).runningJobs(),
      ).toEqual([{ source: "gitlab", id: "4411" }]);
      expect(server.requests[0]?.path).toBe("/debug/jobs/list");
      expect(await systemdGitLab(base).runningJobs()).toBeNull();
    } finally {
      await server.close();
    }
  });

  it("reads its runner's id from config.toml once gitlab-runner has registered, and never more", async () => {
    const configFile = join(dir, "gitlab-runner", "config.toml");
    const fake = await fakeSystemctl();
    const gitlab = systemdGitLab({
      systemctl: systemctl(fake.command),
      service: "gitlab-runner.service",
      systemIdFile: join(dir, "gitlab-runner", ".runner_system_id"),
      configFile,
    });
    // Not registered yet: no file.
    expect(await gitlab.runnerId?.()).toBeNull();
    await mkdir(join(dir, "gitlab-runner"), { recursive: true });
    // As gitlab-runner 17 writes it after `register` with an authentication token.
    await writeFile(
      configFile,
      [
        "concurrent = 2",
        "check_interval = 3",
        'listen_address = "127.0.0.1:9252"',
        "",
        "[session_server]",
        "  session_timeout = 1800",
        "",
        "[[runners]]",
        '  name = "x86_64"',
        '  url = "https://gitlab.example.com"',
        "  id = 812",
        '  token = "glrt-secret-token"',
        "  token_obtained_at = 2026-11-30T10:00:00Z",
        "  token_expires_at = 0001-01-01T00:00:00Z",
        '  executor = "shell"',
        "  [runners.cache]",
        "    MaxUploadedArchiveSize = 0",
        "",
      ].join("\n"),
    );
    expect(await gitlab.runnerId?.()).toBe(812);
    expect(runnerIdOf('[[runners]]\n  name = "a"\n  [runners.cache]\n  id = 5\n')).toBeNull();
    expect(runnerIdOf("[[runners]]\n  id = 0\n")).toBeNull();
    expect(runnerIdOf("id = 7\n")).toBeNull();
    const withoutFile = systemdGitLab({
      systemctl: systemctl(fake.command),
      service: "x",
      systemIdFile: "/x",
    });
    expect(await withoutFile.runnerId?.()).toBeNull();
  });

  it("reads its running jobs from /debug/jobs/list", () => {
    expect(
      parseJobList(
        "url=https://gitlab.example.com/acme/app/-/jobs/4411 state=running stage=build executor_stage=step_script duration=1m2s\n" +
          "url=https://gitlab.example.com/sub/path/acme/lib/-/jobs/4412 state=running stage=test\n\n",
      ),
    ).toEqual([
      { source: "gitlab", id: "4411" },
      { source: "gitlab", id: "4412" },
    ]);
  });
});

describe("the store's figures", () => {
  it("measures disk by statfs, the push queue's depth and age, and recorded cache keys", async () => {
    const queue = join(dir, "queue");
    await mkdir(queue);
    const now = Date.parse("2026-03-02T10:00:00Z");
    for (const [name, age] of [
      ["a", 42],
      ["b", 5],
    ] as const) {
      await writeFile(join(queue, name), "/nix/store/abc-x");
      await utimes(join(queue, name), (now - age * 1000) / 1000, (now - age * 1000) / 1000);
    }
    await writeFile(join(dir, "cache-keys.json"), JSON.stringify(["acme/app:build", 7, ""]));
    const figures = await hostStore({
      storePath: dir,
      pushQueueDir: queue,
      stateDir: dir,
      now: () => now,
    }).measure();
    expect(figures).toMatchObject({ pushQueueDepth: 2, pushLagSeconds: 42, cacheKeys: ["acme/app:build"] });
    expect(figures.storeBytes).toBeGreaterThan(0);
    expect(figures.freeDiskBytes).toBeGreaterThan(0);
  });

  it("says null for what it cannot measure, and no cache keys without a record", async () => {
    const figures = await hostStore({
      storePath: join(dir, "absent"),
      pushQueueDir: join(dir, "absent"),
      stateDir: dir,
    }).measure();
    expect(figures).toEqual({
      storeBytes: null,
      freeDiskBytes: null,
      pushQueueDepth: null,
      pushLagSeconds: null,
      cacheKeys: [],
    });
  });
});

describe("the agent's memory", () => {
  it("gives back what was saved in this boot, and nothing after a reboot", async () => {
    const bootId = join(dir, "boot_id");
    await writeFile(bootId, "boot-1\n");
    const memory = fileMemory(join(dir, "state", "slots.json"), bootId);
    expect(await memory.load()).toBeNull();
    await memory.save({ slots: [{ runnerId: 501, parameter: "/p", state: "running", job: null }, null] });
    expect(await memory.load()).toEqual({
      slots: [{ runnerId: 501, parameter: "/p", state: "running", job: null }, null],
    });
    expect((await stat(join(dir, "state", "slots.json"))).mode & 0o777).toBe(0o600);
    await writeFile(bootId, "boot-2\n");
    expect(await memory.load()).toBeNull();
  });
});
