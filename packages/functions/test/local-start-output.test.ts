import { type ChildProcess, spawn } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";

const repo = new URL("../../../", import.meta.url).pathname;

let child: ChildProcess | undefined;
afterEach(() => {
  // npm runs tsx runs node: the group holds them all.
  if (child?.pid !== undefined && child.exitCode === null) process.kill(-child.pid, "SIGTERM");
  child = undefined;
});

/** `npm start` as a new user runs it, until its banner is out and a moment after. */
async function startOutput(): Promise<string> {
  const env = { ...process.env };
  // Vitest's config sets this for the tests themselves; a user's shell does not.
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  const started = spawn("npm", ["start", "--", "--port", "0"], {
    cwd: repo,
    env: {
      ...env,
      GITHUB_WEBHOOK_SECRET: "start-output-github",
      GITLAB_WEBHOOK_TOKEN: "start-output-gitlab",
    },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child = started;
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString("utf8");
      if (output.includes("Hearth is running at")) setTimeout(resolve, 1000);
    };
    started.stdout?.on("data", onData);
    started.stderr?.on("data", onData);
    started.on("exit", (code) => reject(new Error(`npm start exited with ${code}:\n${output}`)));
  });
  return output;
}

describe("npm start", () => {
  it("prints Hearth's banner and no warnings", async () => {
    const output = await startOutput();
    expect(output).toContain("Hearth is running at http://127.0.0.1:");
    const noisy = output
      .split("\n")
      .filter((line) => /warn|deprecat|\(node:\d+\)|not found|error/i.test(line));
    expect(noisy).toEqual([]);
  }, 120_000);
});
