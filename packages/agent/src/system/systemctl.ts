import { execFile } from "node:child_process";

/** Runs `systemctl` (or the command tests put in its place) and returns its stdout. */
export type Systemctl = (args: readonly string[]) => Promise<string>;

export function systemctl(command = "systemctl", timeoutMs = 30_000): Systemctl {
  return (args) =>
    new Promise((resolve, reject) => {
      execFile(command, [...args], { timeout: timeoutMs, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`systemctl ${args.join(" ")} failed: ${String(stderr).trim() || error.message}`));
          return;
        }
        resolve(String(stdout));
      });
    });
}
