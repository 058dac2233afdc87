import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ForgeJob, githubDelivery, workflowJobPayload } from "@hearth/core/simulation/forge";
import type { Status } from "@hearth/core/status";
import { afterEach, describe, expect, it } from "vitest";
import { type Child, childEnv, kill, startChild } from "./support/child";

/**
 * `npm start -- --data DIR` stopped in the middle of traffic, by SIGKILL and by SIGTERM, and started
 * again on the same directory: scaling resumes within seconds (no lease of the dead process holds the
 * pool), and the simulated fleet is the one the first process left (the instances running jobs too).
 */

const secrets = { githubWebhookSecret: "restart-github-secret", gitlabWebhookToken: "restart-gitlab-token" };
const env = childEnv({
  GITHUB_WEBHOOK_SECRET: secrets.githubWebhookSecret,
  GITLAB_WEBHOOK_TOKEN: secrets.gitlabWebhookToken,
});

const dirs: string[] = [];
const children: Child[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) await kill(child);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** One pool that boots in seconds, so that jobs run soon after they are queued. */
function config(dir: string): string {
  const file = join(dir, "hearth.config.json");
  writeFileSync(
    file,
    JSON.stringify({
      pools: [
        {
          name: "x86_64",
          labels: ["nix", "x86_64-linux"],
          architecture: "x86_64",
          instanceTypes: ["c6a.xlarge"],
          untagged: true,
          maxInstances: 200,
          boot: { coldSeconds: 2, warmSeconds: 1 },
        },
      ],
    }),
  );
  return file;
}

let nextId = 5_000_000;

async function queueJob(url: string): Promise<void> {
  nextId += 1;
  const job: ForgeJob = {
    source: "github",
    id: String(nextId),
    project: "acme/app",
    projectId: "1",
    pipelineId: String(nextId),
    name: `build-${nextId}`,
    labels: ["nix", "x86_64-linux"],
  };
  // Long enough to be running across the restart.
  const described = await fetch(`${url}/sim/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify([{ job, warmSeconds: 120, coldSeconds: 120 }]),
  });
  expect(described.status).toBe(200);
  const request = githubDelivery(
    workflowJobPayload(job, "queued", { createdAt: new Date().toISOString() }),
    secrets,
  );
  const response = await fetch(`${url}${request.path}`, {
    method: "POST",
    headers: request.headers,
    body: request.body,
  });
  expect(response.status).toBe(202);
}

/** Sends a job every `everyMs` until stopped: the traffic the restart happens in. */
function load(url: string, everyMs = 150) {
  let stopped = false;
  const done = (async () => {
    while (!stopped) {
      await queueJob(url).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return async () => {
    stopped = true;
    await done;
  };
}

async function status(url: string): Promise<Status> {
  return (await (await fetch(`${url}/api/status`)).json()) as Status;
}

/** Polls the status until `ok`, for at most `ms`. */
async function until(url: string, ok: (status: Status) => boolean, ms: number): Promise<Status | null> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const current = await status(url);
    if (ok(current)) return current;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return null;
}

const decidedSince = (since: number) => (s: Status) =>
  s.events.some((event) => event.kind === "decision" && Date.parse(event.time) >= since);

describe.each(["SIGKILL", "SIGTERM"] as const)("local mode stopped by %s under load", (signal) => {
  it("scales again within seconds of the restart, with the fleet it left", { timeout: 120_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "hearth-restart-"));
    dirs.push(dir);
    const data = join(dir, "data");
    const args = ["--data", data, "--config", config(dir)];

    const first = await startChild(args, env);
    children.push(first.child);
    const stopFirst = load(first.url);
    // ScaleFleet ran, launched capacity, and jobs run on it.
    const running = await until(first.url, (s) => decidedSince(0)(s) && s.jobs.running.length >= 4, 40_000);
    expect(running, "jobs should run before the restart").not.toBeNull();
    // The instances running jobs, as ScaleFleet last saw them.
    const busy = await until(
      first.url,
      (s) => s.instances.filter((i) => i.state === "busy").length >= 2,
      20_000,
    );
    const busyBefore = (busy?.instances ?? []).filter((i) => i.state === "busy").map((i) => i.id);
    expect(busyBefore.length).toBeGreaterThanOrEqual(2);

    // Stopped in the middle of a run (the queue keeps growing, so the run keeps its lease).
    first.child.process.kill(signal);
    // A clean stop ends within seconds, traffic or not (it once waited for a run started after it).
    const exited = await Promise.race([
      first.child.exited,
      new Promise((resolve) => setTimeout(() => resolve("still running 20 s after the signal"), 20_000)),
    ]);
    expect(exited, first.child.stderr().slice(-4000)).toBe(signal === "SIGKILL" ? "SIGKILL" : 0);
    await stopFirst();

    // What the directory keeps: every instance that was running jobs, in service, with its slots.
    const kept = JSON.parse(readFileSync(join(data, "simulation.json"), "utf8")) as {
      fleet: { instances: Array<{ id: string; lifecycle: string }> };
      runners: { slots: Record<string, unknown[]> };
    };
    const keptLifecycle = new Map(kept.fleet.instances.map((i) => [i.id, i.lifecycle]));
    for (const id of busyBefore) {
      expect([id, keptLifecycle.get(id)]).toEqual([id, "in-service"]);
      expect(kept.runners.slots[id]?.some((slot) => slot !== null)).toBe(true);
    }

    const restarted = Date.now();
    const second = await startChild(args, env);
    children.push(second.child);
    const stopSecond = load(second.url);
    try {
      // A run starts at once (the tick at start-up, and the webhooks) and launches for the queue.
      const decided = await until(second.url, decidedSince(restarted), 15_000);
      expect(decided, "a ScaleFleet decision within seconds of the restart").not.toBeNull();

      // The fleet is the one the first process left: the instances that ran jobs still run them.
      const after = await status(second.url);
      const states = new Map(after.instances.map((i) => [i.id, i.state]));
      for (const id of busyBefore) expect([id, states.get(id)]).toEqual([id, "busy"]);
      for (const job of after.jobs.running) {
        expect(
          states.has(job.instanceId ?? ""),
          `running job ${job.id}'s instance ${job.instanceId} in ${JSON.stringify([...states])} ${JSON.stringify(job)}`,
        ).toBe(true);
      }
    } finally {
      await stopSecond();
    }
    // A clean stop frees its leases itself; only a killed process leaves any for the next start.
    const freed = /freed ScaleFleet leases left by a previous process/.test(second.child.stdout());
    expect(freed).toBe(signal === "SIGKILL");
  });
});
