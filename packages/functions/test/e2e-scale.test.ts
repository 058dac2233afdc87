import type { FakeClock } from "@hearth/core/clock";
import type { SimulatedFleet } from "@hearth/core/simulation/fleet";
import {
  type ForgeJob,
  githubDelivery,
  gitlabDelivery,
  jobHookPayload,
  workflowJobPayload,
} from "@hearth/core/simulation/forge";
import { afterEach, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import { describeJobs, pass, secrets, send, startTestHearth } from "./support/local";
import { autoScalingPools } from "./support/pools";

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
  const started = await startTestHearth({ initialWarmPool: 1, pools: autoScalingPools });
  hearth = started.hearth;
  const fleet = started.hearth.simulation?.fleet;
  if (!fleet) throw new Error("expected the simulated fleet");
  return { hearth: started.hearth, clock: started.clock, fleet };
}

async function post(h: LocalHearth, request: Parameters<typeof send>[1]) {
  const response = await send(h, request);
  expect(response.status, await response.clone().text()).toBeLessThan(300);
  return response;
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
    await describeJobs(h, [job], 600);
    const stopped = fleet.all().find((i) => i.pool === "aarch64" && i.lifecycle === "stopped");
    expect(stopped).toBeDefined();
    const instanceId = stopped?.id as string;

    // 1. a signed queued webhook
    const queued =
      source === "github"
        ? githubDelivery(workflowJobPayload(job, "queued", { createdAt }), secrets)
        : gitlabDelivery(jobHookPayload(job, "pending", { createdAt }), secrets, new Date(clock.now()));
    await post(h, queued);
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
    await post(h, completed);
    expect((await h.ledger.get({ source, id: "4242" }))?.status).toBe("completed");

    // 7. the idle timeout passes (the agent keeps reporting, idle), and the periodic tick runs ScaleFleet
    const pool = h.pools.find((p) => p.name === "aarch64");
    await pass(h, clock, (pool?.idleTimeouts.warmSeconds ?? 60) + 20);
    expect((await h.registry.get(instanceId))?.runningJobs).toEqual([]);
    await h.tick();
    await h.idle();
    // The release's first phase: marked, still in service; its agent is told and stops claiming.
    expect((await h.registry.get(instanceId))?.releasing).toMatchObject({ releasedAt: null });
    expect(lifecycleOf(fleet, instanceId)).toBe("in-service");
    await pass(h, clock, 15);
    expect((await h.registry.get(instanceId))?.releasing?.confirmedAt).not.toBeNull();
    // The next run finds it confirmed and lets it go.
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
