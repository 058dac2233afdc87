import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ForgeJob,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";
import { afterEach, describe, expect, it } from "vitest";
import { type Child, childEnv, kill, localMain, run } from "./support/child";

/**
 * Configured secrets never leave local mode: not on stdout or stderr, not in any file it writes (the
 * --data directory, the file `npm run demo` reads). A secret it generated is shown once, as generated.
 */

const children: Child[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) await kill(child);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "hearth-secrets-"));
  dirs.push(dir);
  return dir;
};

/** Every file under `dir`, as raw bytes. */
function files(dir: string): Array<{ path: string; bytes: Buffer }> {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => ({ path, bytes: readFileSync(path) }));
}

const job = (source: "github" | "gitlab", id: string): ForgeJob => ({
  source,
  id,
  project: "acme/app",
  projectId: "7",
  pipelineId: "70",
  name: `test-${id}`,
  labels: ["nix", "x86_64-linux"],
});

async function start(env: NodeJS.ProcessEnv, args: string[]) {
  const cwd = tempDir();
  const child = run(localMain, ["--port", "0", ...args], { env, cwd });
  children.push(child);
  const [, url] = await child.waitFor(/Hearth is running at (http:\/\/\S+)/);
  return { child, url: url as string, cwd };
}

describe("secrets in local mode", () => {
  it("never writes a configured secret anywhere", async () => {
    const secret = (prefix: string) => `${prefix}${randomBytes(16).toString("hex")}`;
    const configured = {
      GITHUB_WEBHOOK_SECRET: secret("gh-"),
      GITLAB_WEBHOOK_TOKEN: secret("gl-"),
      GITLAB_SIGNING_TOKEN: `whsec_${randomBytes(24).toString("base64")}`,
      STATUS_TOKEN: secret("st-"),
      // An API nobody answers: the tag lookups fail, and their failures are logged.
      GITLAB_URL: "http://127.0.0.1:9",
      GITLAB_API_TOKEN: secret("glpat-"),
    };
    const data = join(tempDir(), "data");
    const { child, url, cwd } = await start(childEnv(configured), ["--data", data]);
    const forge = {
      githubWebhookSecret: configured.GITHUB_WEBHOOK_SECRET,
      gitlabWebhookToken: configured.GITLAB_WEBHOOK_TOKEN,
      gitlabSigningToken: configured.GITLAB_SIGNING_TOKEN,
    };
    const auth = { authorization: `Bearer ${configured.STATUS_TOKEN}` };
    const described = await fetch(`${url}/sim/jobs`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth },
      body: JSON.stringify([{ job: job("github", "1"), warmSeconds: 2, coldSeconds: 2 }]),
    });
    expect(described.status).toBe(200);
    for (const request of [
      githubDelivery(
        workflowJobPayload(job("github", "1"), "queued", { createdAt: new Date().toISOString() }),
        forge,
      ),
      gitlabDelivery(
        jobHookPayload(job("gitlab", "2"), "pending", { createdAt: new Date().toISOString() }),
        forge,
        new Date(),
      ),
      // A wrong one too: rejections are logged.
      githubDelivery(
        workflowJobPayload(job("github", "3"), "queued", { createdAt: new Date().toISOString() }),
        {
          ...forge,
          githubWebhookSecret: "wrong",
        },
      ),
    ]) {
      await fetch(`${url}${request.path}`, { method: "POST", headers: request.headers, body: request.body });
    }
    expect((await fetch(`${url}/api/status`, { headers: auth })).status).toBe(200);
    // The tag lookup fails and is logged; the simulated runners send webhooks signed with the secrets.
    await child.waitFor(/gitlab tag lookup failed/, 20_000);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    child.process.kill("SIGTERM");
    expect(await child.exited).toBe(0);

    const written = [
      { path: "stdout", bytes: Buffer.from(child.stdout()) },
      { path: "stderr", bytes: Buffer.from(child.stderr()) },
      ...files(data),
      ...files(cwd),
    ];
    expect(written.some((file) => file.path.endsWith("simulation.json"))).toBe(true);
    // With a signing token, an unsigned GitLab webhook is refused: the banner offers no curl line
    // that would be.
    expect(child.stderr()).toContain("GitLab webhooks must be signed here");
    expect(child.stderr()).not.toContain("X-Gitlab-Token: $GITLAB_WEBHOOK_TOKEN");
    for (const [name, value] of Object.entries(configured)) {
      if (name === "GITLAB_URL") continue;
      const found = written.filter((file) => file.bytes.includes(value)).map((file) => file.path);
      expect([name, found]).toEqual([name, []]);
    }
  }, 60_000);

  it("shows a generated secret once, labelled as generated", async () => {
    const { child } = await start(childEnv(), []);
    const [, token] = await child.waitFor(/^ {2}GITLAB_WEBHOOK_TOKEN=([0-9a-f]{48})$/m);
    const [, secret] = await child.waitFor(/^ {2}GITHUB_WEBHOOK_SECRET=([0-9a-f]{48})$/m);
    const output = child.stdout() + child.stderr();
    expect(output).toContain("so Hearth generated them for this run:");
    for (const value of [token, secret] as string[]) expect(output.split(value).length - 1).toBe(1);
    // Without a signing token, the generated token is all a GitLab webhook needs: the banner's example.
    expect(output).toContain("X-Gitlab-Token: $GITLAB_WEBHOOK_TOKEN");
  });
});
