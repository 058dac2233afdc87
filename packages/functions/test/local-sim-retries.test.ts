import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FakeClock } from "@hearth/core/clock";
import { createGitHubClient } from "@hearth/core/github-api/client";
import { rerunFailedJobs } from "@hearth/core/github-api/reruns";
import { createGitLabJobs } from "@hearth/core/gitlab-api/client";
import type { ForgeJob } from "@hearth/core/simulation/forge";
import { afterEach, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import { startTestHearth } from "./support/local";

/**
 * Local mode's simulated forges retry with the forges' rules, driven over HTTP by Hearth's own
 * clients: GitHub re-runs a run's failed jobs only once the run completed (403 before), as the next
 * attempt with new job ids and `run_attempt`; GitLab retries a job only once it finished, and once.
 * The new jobs' webhooks reach Hearth, and a run whose jobs all finished sends `workflow_run`.
 */

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

const githubClient = (url: string) =>
  createGitHubClient({
    credentials: { kind: "personal-access-token", token: "ghp_local", forLocalModeOnly: true },
    baseUrl: `${url}/sim/github`,
    writeSpacingMs: 0,
    retryAfterBaseMs: 1,
    serverErrorRetries: 0,
  });

const job = (overrides: Partial<ForgeJob>): ForgeJob => ({
  source: "github",
  id: "100",
  project: "acme/app",
  projectId: "5",
  pipelineId: "4242",
  name: "build",
  labels: ["nix", "x86_64-linux"],
  ...overrides,
});

async function eventually<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("never happened");
}

describe("the simulated GitHub's rerun-failed-jobs", () => {
  it("answers 403 until the run completed, then re-runs its failed jobs as the next attempt", async () => {
    ({ hearth } = await startTestHearth());
    const local = hearth;
    const jobs = local.simulation?.forgeJobs;
    if (!jobs) throw new Error("no simulation");
    const client = githubClient(local.url);
    const failing = job({ id: "100", name: "build" });
    const sibling = job({ id: "101", name: "test" });
    jobs.add(failing, { warmSeconds: 30, coldSeconds: 60 });
    jobs.add(sibling);
    expect(jobs.observe(failing, "failed")).toBeUndefined();
    // GitHub's own answer while a job of the run still runs.
    await expect(
      client.request(
        { repository: "acme/app" },
        "POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs",
        {
          run_id: 4242,
        },
      ),
    ).rejects.toMatchObject({
      status: 403,
      message: expect.stringContaining("This workflow is already running"),
    });
    expect(await rerunFailedJobs(client, "acme/app", "4242")).toBe("not-completed");

    expect(jobs.observe(sibling, "success")).toEqual({
      repository: "acme/app",
      runId: "4242",
      attempt: 1,
      conclusion: "failure",
    });
    expect(await rerunFailedJobs(client, "acme/app", "4242")).toBe("rerun");
    // The re-run is attempt 2, running again: another re-run waits for it.
    expect(await rerunFailedJobs(client, "acme/app", "4242")).toBe("not-completed");
    // Only the failed job runs again, with a new id; its webhook says run_attempt 2.
    const rerun = await eventually(async () =>
      (await local.ledger.queued()).find((queued) => queued.pipelineId === "4242"),
    );
    expect(rerun).toMatchObject({ source: "github", attempt: 2, name: "CI / build", status: "queued" });
    expect(rerun.id).not.toBe("100");
    expect(jobs.durations(rerun)).toEqual({ warmSeconds: 30, coldSeconds: 60 });
    // A run GitHub does not know is an error, not a wait.
    await expect(rerunFailedJobs(client, "acme/app", "9999")).rejects.toMatchObject({ status: 404 });
  });

  it("refuses a run with no failed job, and a run it does not know", async () => {
    ({ hearth } = await startTestHearth());
    const jobs = hearth.simulation?.forgeJobs;
    if (!jobs) throw new Error("no simulation");
    jobs.add(job({}));
    jobs.observe(job({}), "success");
    const client = githubClient(hearth.url);
    await expect(
      client.request(
        { repository: "acme/app" },
        "POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs",
        {
          run_id: 4242,
        },
      ),
    ).rejects.toMatchObject({ status: 403, message: expect.stringContaining("cannot be retried") });
    await expect(
      client.request(
        { repository: "acme/app" },
        "POST /repos/{owner}/{repo}/actions/runs/{run_id}/rerun-failed-jobs",
        {
          run_id: 1,
        },
      ),
    ).rejects.toMatchObject({ status: 404 });
  });
});

describe("the simulated GitLab's job retry", () => {
  it("retries a finished job once, with GitLab's answers, and sends the new job's webhook", async () => {
    ({ hearth } = await startTestHearth());
    const local = hearth;
    const jobs = local.simulation?.forgeJobs;
    if (!jobs) throw new Error("no simulation");
    const gitlab = createGitLabJobs({ url: `${local.url}/sim/gitlab`, token: "local" });
    const retryJob = gitlab.retryJob?.bind(gitlab);
    if (!retryJob) throw new Error("the client cannot retry");
    const running = job({ source: "gitlab", id: "77", name: "build" });
    jobs.add(running);
    jobs.observe(running, "running");
    await expect(retryJob("5", "77")).rejects.toThrow(/403|Forbidden/);
    await expect(retryJob("5", "78")).rejects.toThrow(/404|Not Found/);
    jobs.observe(running, "failed");
    const retried = await retryJob("5", "77");
    expect(retried.status).toBe("pending");
    expect(retried.id).not.toBe("77");
    // A job that was retried is not retryable again.
    await expect(retryJob("5", "77")).rejects.toThrow(/403|Forbidden/);
    const queued = await eventually(async () => {
      const recorded = await local.ledger.get({ source: "gitlab", id: retried.id });
      return recorded?.status === "queued" ? recorded : undefined;
    });
    expect(queued).toMatchObject({ pipelineId: "4242", attempt: 1, name: "test / build" });
  });
});

describe("the simulated forges' jobs across a restart", () => {
  it("are kept in --data, so a job that failed before the restart can be retried after it", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hearth-forge-jobs-"));
    try {
      const clock = new FakeClock();
      ({ hearth } = await startTestHearth({ dataDir, clock }));
      const failed = job({ source: "gitlab", id: "77", name: "build" });
      hearth.simulation?.forgeJobs.add(failed, { warmSeconds: 10, coldSeconds: 20 });
      hearth.simulation?.forgeJobs.observe(failed, "failed");
      await hearth.close();

      ({ hearth } = await startTestHearth({ dataDir, clock }));
      const gitlab = createGitLabJobs({ url: `${hearth.url}/sim/gitlab`, token: "local" });
      const retried = await gitlab.retryJob?.("5", "77");
      expect(retried?.status).toBe("pending");
      expect(hearth.simulation?.forgeJobs.durations({ source: "gitlab", id: retried?.id ?? "" })).toEqual({
        warmSeconds: 10,
        coldSeconds: 20,
      });
    } finally {
      await hearth?.close();
      hearth = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
