import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FleetSnapshot } from "@hearth/core/simulation/fleet";
import type { ForgeJobsSnapshot } from "@hearth/core/simulation/forge/jobs";
import type { ForgeRunnersSnapshot } from "@hearth/core/simulation/forge/runners";
import type { RunnersSnapshot, SimulatedJob } from "./sim-runners";

/**
 * The simulated fleet, its runners and the simulated forges' runners, kept in `--data` so that a restart, even a SIGKILL, loses
 * nothing: the machines outlive the process, as real ones would. Every change marks the state dirty;
 * it is written before anything outside the simulation can learn of the change (before each webhook
 * or heartbeat the runners send, and before a fleet call answers ScaleFleet), and otherwise within
 * `debounceMs`. Each write is whole and atomic (a temporary file renamed into place).
 *
 * Two files: `simulation.json` (instances, groups, stores, slots, the forges' runners; small, written often) and
 * `simulation-jobs.json` (the demo's job descriptions; written when the demo describes jobs).
 */

export interface SimulationState {
  fleet: FleetSnapshot;
  runners: Omit<RunnersSnapshot, "jobs">;
  /** The simulated forges' runners; absent in files written before they existed. */
  forge?: ForgeRunnersSnapshot;
  /** The simulated forges' jobs and runs (retries); absent in files written before they existed. */
  forgeJobs?: ForgeJobsSnapshot;
}

type Part = "state" | "jobs";

export interface SimulationFiles {
  /** What was kept, if anything. */
  load():
    | {
        fleet: FleetSnapshot;
        runners: RunnersSnapshot;
        forge?: ForgeRunnersSnapshot;
        forgeJobs?: ForgeJobsSnapshot;
      }
    | undefined;
  changed(part: Part): void;
  /** Writes what changed now. */
  flush(part?: Part): void;
  close(): void;
}

export function simulationFiles(
  dir: string,
  read: { state: () => SimulationState; jobs: () => SimulatedJob[] },
  debounceMs = 200,
): SimulationFiles {
  const files: Record<Part, string> = {
    state: join(dir, "simulation.json"),
    jobs: join(dir, "simulation-jobs.json"),
  };
  const dirty: Record<Part, boolean> = { state: false, jobs: false };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const write = (part: Part) => {
    if (!dirty[part]) return;
    dirty[part] = false;
    const body = JSON.stringify(part === "state" ? read.state() : read.jobs());
    // Owner only: the state holds runner configs handed to simulated instances, and GitLab tokens.
    writeFileSync(`${files[part]}.tmp`, body, { mode: 0o600 });
    renameSync(`${files[part]}.tmp`, files[part]);
  };
  const flush = (part?: Part) => {
    if (part) write(part);
    else {
      write("state");
      write("jobs");
    }
  };
  return {
    load() {
      if (!existsSync(files.state)) return undefined;
      const state = JSON.parse(readFileSync(files.state, "utf8")) as {
        fleet: FleetSnapshot;
        runners: RunnersSnapshot;
        forge?: ForgeRunnersSnapshot;
        forgeJobs?: ForgeJobsSnapshot;
      };
      const jobs = existsSync(files.jobs)
        ? (JSON.parse(readFileSync(files.jobs, "utf8")) as SimulatedJob[])
        : (state.runners.jobs ?? []);
      return {
        fleet: state.fleet,
        runners: { ...state.runners, jobs },
        ...(state.forge ? { forge: state.forge } : {}),
        ...(state.forgeJobs ? { forgeJobs: state.forgeJobs } : {}),
      };
    },
    changed(part) {
      dirty[part] = true;
      timer ??= setTimeout(() => {
        timer = undefined;
        flush();
      }, debounceMs);
      timer.unref?.();
    },
    flush,
    close() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      flush();
    },
  };
}
