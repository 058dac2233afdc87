import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Local mode and the demo as a user runs them: a real child process (node with tsx's loader, one
 * process, so a signal reaches Hearth itself), with its output captured.
 */

const loader = import.meta.resolve("tsx");
const source = (path: string) => fileURLToPath(new URL(`../../src/${path}`, import.meta.url));
export const localMain = source("local/main.ts");
export const demoMain = source("demo/main.ts");

export interface Child {
  process: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
  /** Resolves with the first match of `pattern` in stderr or stdout. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

/** A clean environment: no AWS or Hearth settings from the machine running the tests. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^(AWS_|GITHUB_|GITLAB_|STATUS_TOKEN|PORT$|HEARTH_)/.test(key)) continue;
    env[key] = value;
  }
  return { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true", ...extra };
}

export function run(
  script: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Child {
  const child = spawn(process.execPath, ["--import", loader, script, ...args], {
    cwd: options.cwd ?? mkdtempSync(join(tmpdir(), "hearth-cwd-")),
    env: options.env ?? childEnv(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
    for (const wake of waiters) wake();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString("utf8");
    for (const wake of waiters) wake();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => {
      resolve(code ?? signal ?? "unknown");
      for (const wake of waiters) wake();
    }),
  );
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  return {
    process: child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(err) ?? pattern.exec(out);
          if (match) {
            finish();
            resolve(match);
          } else if (gone) {
            finish();
            reject(new Error(`exited before ${pattern}:\n${err}\n${out}`));
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${err}\n${out}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Local mode in a child process; resolves once it serves, with its URL. */
export async function startChild(args: string[], env?: NodeJS.ProcessEnv) {
  const child = run(localMain, ["--port", "0", ...args], { env });
  const [, url] = await child.waitFor(/Hearth is running at (http:\/\/\S+)/);
  return { child, url: url as string };
}

/** Stops a child if it still runs (tests' cleanup). */
export async function kill(child: Child | undefined): Promise<void> {
  if (!child || child.process.exitCode !== null || child.process.signalCode !== null) return;
  child.process.kill("SIGKILL");
  await child.exited;
}
