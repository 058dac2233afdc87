import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * One local Hearth per `--data` directory: dynalite's LevelDB, the simulated fleet and the ScaleFleet
 * leases all assume a single writer. The lock is a file holding the owner's pid, taken before
 * anything in the directory is read or written, and removed on a clean stop. A lock whose process is
 * gone (a SIGKILL, a crash) is taken over.
 */

export class DataDirInUse extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(`directory ${dir} is in use by process ${pid} (another Hearth); stop it or use another --data`);
  }
}

export interface DataLock {
  /** True when the lock was taken over from a process that is gone (its leases may be left). */
  tookOver: boolean;
  release(): void;
}

export const LOCK_FILE = "hearth.lock";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function ownerOf(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export function lockDataDir(dir: string): DataLock {
  const path = resolve(dir);
  mkdirSync(path, { recursive: true });
  const file = join(path, LOCK_FILE);
  let tookOver = false;
  try {
    const fd = openSync(file, "wx", 0o600);
    writeFileSync(fd, `${process.pid}\n`);
    closeSync(fd);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const owner = ownerOf(file);
    if (owner !== null && alive(owner)) throw new DataDirInUse(dir, owner);
    // The owner is gone: take the lock over (written whole, then renamed into place).
    writeFileSync(`${file}.${process.pid}`, `${process.pid}\n`, { mode: 0o600 });
    renameSync(`${file}.${process.pid}`, file);
    tookOver = true;
  }
  return {
    tookOver,
    release() {
      if (ownerOf(file) === process.pid) rmSync(file, { force: true });
    },
  };
}
