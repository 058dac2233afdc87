import { FakeClock } from "@hearth/core/clock";
import type { SimulatedFleet } from "@hearth/core/fleet-sim";
import {
  type ForgeJob,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  workflowJobPayload,
} from "@hearth/core/forge-sim";
import { afterEach, describe, expect, it } from "vitest";
import { type LocalHearth, startLocal } from "../src/local/server";
import { silentLogger } from "../src/log";

/**
 * The whole control plane in one process on a fake clock: webhook → ledger → ScaleFleet (the real
 * ASL under aws-local-stepfunctions) → simulated fleet → agent heartbeats → release back to the
 * warm pool.
 */

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

async function start(): Promise<{ hearth: LocalHearth; clock: FakeClock; fleet: SimulatedFleet }> {
  const clock = new FakeClock();
  hearth = await startLocal({
    port: 0,
    settings: { GITHUB_WEBHOOK_SECRET: "gh-secret", GITLAB_WEBHOOK_TOKEN: "gl-token" } as never,
    log: silentLogger,
    clock,
    tickSeconds: 0,
    maxIterations: 1,
    initialWarmPool: 1,
  });
  const fleet = hearth.simulation?.fleet;
  if (!fleet) throw new Error("expected the simulated fleet");
  return { hearth, clock, fleet };
}

const secrets = { githubWebhookSecret: "gh-secret", gitlabWebhookToken: "gl-token" };

async function post(url: string, request: { path: string; headers: Record<string, string>; body: string }) {
  const response = await fetch(`${url}${request.path}`, {
    method: "POST",
    headers: request.headers,
    body: request.body,
  });
  expect(response.status, await response.clone().text()).toBeLessThan(300);
  return response;
}

/** Advances the fake clock in steps, letting each step's work finish. */
async function pass(h: LocalHearth, clock: FakeClock, seconds: number, step = 5) {
  for (let t = 0; t < seconds; t += step) {
    await clock.advance(step * 1000);
    await h.idle();
  }
}

const lifecycleOf = (fleet: SimulatedFleet, id: string) => fleet.get(id)?.lifecycle;

describe.each(["github", "gitlab"] as const)("end to end with %s", (source) => {
  it("queues, resumes a warm instance, runs the job, and returns the instance to the warm pool", async () => {
    const { hearth: h, clock, fleet } = await start();
    const job: ForgeJob = {
      source,
      id: "4242",
      project: "acme/app",
      projectId: "77",
      pipelineId: "900",
      name: "build",
      labels: ["nix", "aarch64-linux"],
    };
    const createdAt = new Date(clock.now()).toISOString();
    // GitLab's hooks carry no tags: the simulated GitLab API answers the lookup from this.
    await post(h.url, {
      path: "/sim/jobs",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([{ job, warmSeconds: 600, coldSeconds: 900 }]),
    });
    const stopped = fleet.all().find((i) => i.pool === "aarch64" && i.lifecycle === "stopped");
    expect(stopped).toBeDefined();
    const instanceId = stopped?.id as string;

    // 1. a signed queued webhook
    const queued =
      source === "github"
        ? githubDelivery(workflowJobPayload(job, "queued", { createdAt }), secrets)
        : gitlabDelivery(jobHookPayload(job, "pending", { createdAt }), secrets, new Date(clock.now()));
    await post(h.url, queued);
    await h.idle();

    // 2. the job is in the ledger, with its labels (for GitLab, from the API lookup)
    const recorded = await h.ledger.get({ source, id: "4242" });
    expect(recorded).toMatchObject({ status: "queued", labels: ["aarch64-linux", "nix"], labelsKnown: true });

    // 3. ScaleFleet ran once for the job's pool, and 4. resumed the stopped warm instance
    expect(h.scaleFleet.executions).toBe(1);
    expect(lifecycleOf(fleet, instanceId)).toBe("pending");
    const [decision] = await h.journal.latest(5);
    expect(decision).toMatchObject({ kind: "decision", pool: "aarch64" });
    expect(decision?.calls.join(" ")).toContain("SetDesiredCapacity(group=sim-aarch64-warm, desired=1)");

    // 5. the instance boots warm (25 s), claims the job, and its heartbeat shows it running
    await pass(h, clock, 30);
    expect(lifecycleOf(fleet, instanceId)).toBe("in-service");
    const running = await h.ledger.get({ source, id: "4242" });
    expect(running).toMatchObject({ status: "running", instanceId });
    expect((await h.registry.get(instanceId))?.runningJobs).toEqual([{ source, id: "4242" }]);

    // 6. the forge says the job completed
    const finishedAt = new Date(clock.now()).toISOString();
    const completed =
      source === "github"
        ? githubDelivery(
            workflowJobPayload(job, "completed", {
              createdAt,
              startedAt: running?.startedAt ?? createdAt,
              finishedAt,
              runnerName: `${instanceId}-1`,
              conclusion: "success",
            }),
            secrets,
          )
        : gitlabDelivery(
            jobHookPayload(job, "success", {
              createdAt,
              startedAt: running?.startedAt ?? createdAt,
              finishedAt,
              runnerName: instanceId,
            }),
            secrets,
            new Date(clock.now()),
          );
    await post(h.url, completed);
    expect((await h.ledger.get({ source, id: "4242" }))?.status).toBe("completed");

    // 7. the idle timeout passes (the agent keeps reporting, idle), and the periodic tick runs ScaleFleet
    const pool = h.pools.find((p) => p.name === "aarch64");
    await pass(h, clock, (pool?.idleTimeouts.warmSeconds ?? 60) + 20);
    expect((await h.registry.get(instanceId))?.runningJobs).toEqual([]);
    await h.tick();
    await h.idle();

    // 8. the instance goes back to the warm pool, stopped, with its store
    await pass(h, clock, 15);
    expect(lifecycleOf(fleet, instanceId)).toBe("stopped");
    // Its store is warm for the job it ran, and stays so while stopped.
    expect((await h.registry.get(instanceId))?.cacheKeys).toHaveLength(1);
    const release = (await h.journal.latest(10)).find((entry) => entry.details.released === instanceId);
    expect(release?.calls.join(" ")).toContain(
      `SetInstanceProtection(instances=${instanceId}, protected=false)`,
    );
  });
});
