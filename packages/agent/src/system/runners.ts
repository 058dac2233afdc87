import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { RunnerObservation, RunnersPort } from "../ports";
import type { Systemctl } from "./systemctl";

/**
 * The slots' GitHub runners as systemd units: `hearth-github-runner@<slot>` runs
 * `Runner.Listener run --jitconfig` with the config the agent wrote to `<dir>/<slot>/jitconfig`
 * (mode 0600, tmpfs). The agent sees a runner take a job by its `Runner.Worker` process in the
 * unit's cgroup. Which job it is the agent cannot tell: the runner's job-started hook gets no job id
 * in its environment (only the `job.check_run_id` expression has it), and the control plane already
 * knows a GitHub job's instance from `workflow_job.in_progress` (the runner's name carries the
 * instance id). So a running slot is reported with `job: null` (docs/PROTOCOL.md §2).
 */

export interface SystemdRunnersOptions {
  systemctl: Systemctl;
  /** `/run/hearth/runners`. */
  configDir: string;
  /**
   * The slot units: a template's name before `@` (`hearth-github-runner` → `hearth-github-runner@0.service`),
   * or a name with `{slot}` in it (`hearth-github-runner-{slot}.service`, as the NixOS module names them).
   */
  unit?: string;
  /** Where cgroup v2 is mounted. */
  cgroupRoot?: string;
  procRoot?: string;
}

const alive = new Set(["active", "activating", "reloading", "deactivating"]);

export function systemdRunners(options: SystemdRunnersOptions): RunnersPort {
  const name = options.unit ?? "hearth-github-runner";
  const unit = (slot: number) =>
    name.includes("{slot}") ? name.replaceAll("{slot}", String(slot)) : `${name}@${slot}.service`;
  const slotDir = (slot: number) => join(options.configDir, String(slot));
  const cgroupRoot = options.cgroupRoot ?? "/sys/fs/cgroup";
  const procRoot = options.procRoot ?? "/proc";

  async function takesJob(controlGroup: string): Promise<boolean> {
    if (!controlGroup) return false;
    const procs = await readFile(join(cgroupRoot, controlGroup, "cgroup.procs"), "utf8").catch(() => "");
    for (const pid of procs.split("\n").filter(Boolean)) {
      const comm = await readFile(join(procRoot, pid, "comm"), "utf8").catch(() => "");
      if (comm.trim() === "Runner.Worker") return true;
    }
    return false;
  }

  return {
    async start(slot, config) {
      const dir = slotDir(slot);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const file = join(dir, "jitconfig");
      // Removed first: `mode` applies only to a file that is created.
      await rm(file, { force: true });
      await writeFile(file, config, { mode: 0o600, flag: "wx" });
      // Waits for the start job: right after a `--no-block` start the unit may still show inactive,
      // which would read as a runner that already exited.
      await options.systemctl(["start", unit(slot)]);
    },

    async stop(slot) {
      await options.systemctl(["stop", unit(slot)]);
      await rm(join(slotDir(slot), "jitconfig"), { force: true });
    },

    async inspect(slots) {
      const seen = new Map<number, RunnerObservation>();
      if (!slots.length) return seen;
      const out = await options.systemctl([
        "show",
        "--property=Id,ActiveState,ControlGroup",
        ...slots.map(unit),
      ]);
      const units = new Map<string, Record<string, string>>();
      for (const block of out.split(/\n\s*\n/)) {
        const fields = Object.fromEntries(
          block
            .split("\n")
            .filter((line) => line.includes("="))
            .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
        );
        if (fields.Id) units.set(fields.Id, fields);
      }
      for (const slot of slots) {
        const fields = units.get(unit(slot));
        if (!fields) continue;
        if (!alive.has(fields.ActiveState ?? "")) {
          // Served its job (or failed): its config is of no more use.
          await rm(join(slotDir(slot), "jitconfig"), { force: true });
          seen.set(slot, { state: "exited" });
          continue;
        }
        if (!(await takesJob(fields.ControlGroup ?? ""))) {
          seen.set(slot, { state: "listening" });
          continue;
        }
        seen.set(slot, { state: "running", job: null });
      }
      return seen;
    },
  };
}
