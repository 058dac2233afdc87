import { spawn } from "node:child_process";
import { delimiter, join } from "node:path";
import type { StageSecrets } from "@hearth/core/gitlab-api/pool-runners";

/**
 * A stage's secrets through the SST CLI: `sst secret list` for which are set, `sst secret set` to
 * store one. The value goes to `sst secret set` on its standard input, never on its command line,
 * where any user of the machine could read it (`ps`, /proc/PID/cmdline): SST reads the value from
 * stdin when it is left out (`sst secret set Name < file`, in SST's own help), the whole input up to
 * its end, so no newline is added.
 *
 * `sst` is looked up on PATH first, then in the project's node_modules/.bin.
 */
export function sstSecrets(options: { stage: string; projectRoot: string }): StageSecrets {
  const env = {
    ...process.env,
    PATH: [process.env.PATH, join(options.projectRoot, "node_modules", ".bin")]
      .filter(Boolean)
      .join(delimiter),
  };
  const sst = (args: string[], input: string | undefined) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn("sst", args, { cwd: options.projectRoot, env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk;
      });
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
      });
      child.once("error", (error: NodeJS.ErrnoException) =>
        reject(
          new Error(
            error.code === "ENOENT"
              ? "the SST CLI (sst) is not installed: run npm install"
              : `sst ${args.slice(0, 3).join(" ")}: ${error.message}`,
          ),
        ),
      );
      child.once("close", (code) => resolve({ code, stdout, stderr }));
      child.stdin.on("error", () => {
        // sst exited before reading its input: its exit code says why.
      });
      child.stdin.end(input ?? "");
    });
  /** SST's last words on a failure, without colours and without the value it was given. */
  const lastLine = (text: string, secret?: string) => {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the terminal's colour codes
    const plain = text.replace(/\u001b\[[0-9;]*m/g, "");
    const line = plain.trim().split("\n").filter(Boolean).at(-1) ?? "no output";
    return secret ? line.split(secret).join("[redacted]") : line;
  };
  return {
    async names() {
      const args = ["secret", "list", "--stage", options.stage];
      // Its output holds the secrets' values: only the names are kept, and nothing of it is printed.
      const listed = await sst(args, undefined);
      if (listed.code !== 0) {
        if (/No secrets found/.test(listed.stderr + listed.stdout)) return new Set();
        throw new Error(`sst ${args.join(" ")} failed (exit ${listed.code}): ${lastLine(listed.stderr)}`);
      }
      const names = new Set<string>();
      for (const line of listed.stdout.split("\n")) {
        const match = /^([A-Z][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
        if (match?.[1] && match[2]) names.add(match[1]);
      }
      return names;
    },
    async set(name, value) {
      const args = ["secret", "set", name, "--stage", options.stage];
      const result = await sst(args, value);
      if (result.code !== 0) {
        throw new Error(
          `sst ${args.join(" ")} failed (exit ${result.code}): ${lastLine(result.stderr || result.stdout, value)}`,
        );
      }
    },
  };
}
