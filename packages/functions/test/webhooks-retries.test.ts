import { partialEvent } from "@hearth/core/jobs";
import { markJobsInterrupted } from "@hearth/core/retries";
import examples from "@octokit/webhooks-examples/api.github.com/index.json" with { type: "json" };
import { afterAll, describe, expect, it } from "vitest";
import { gitlabJobHookExample, workflowJobExamples } from "../../core/test/fixtures";
import { createHarness, githubRequest, gitlabRequest, stopEmbeddedDynamo } from "./support/harness";

/**
 * `workflow_run` through the webhook route, with GitHub's own example payloads: a run with no
 * interrupted job costs a read and nothing else; a run with one re-runs its failed jobs once, when it
 * completes, and the next attempt's job is recorded as the retry.
 */

afterAll(stopEmbeddedDynamo);

interface WorkflowRunExample {
  action: string;
  workflow_run: { id: number; run_attempt: number; [field: string]: unknown };
  repository: { full_name: string };
  [field: string]: unknown;
}
const workflowRuns = (examples.find((group) => group.name === "workflow_run")?.examples ??
  []) as unknown as WorkflowRunExample[];

const INSTANCE = "i-0123456789abcdef0";

/** GitHub's rule: a run re-runs only once completed; the test says when it is. */
function fakeGitHub() {
  const completed = new Set<string>();
  const reruns: string[] = [];
  return {
    completed,
    reruns,
    forges: {
      github: {
        async rerunFailedJobs(repository: string, runId: string) {
          if (!completed.has(`${repository}#${runId}`)) return "not-completed" as const;
          completed.delete(`${repository}#${runId}`);
          reruns.push(`${repository}#${runId}`);
          return "rerun" as const;
        },
      },
    },
  };
}

describe("POST /webhooks/github: workflow_run", () => {
  it("answers a completed run without an interrupted job with 202, and writes nothing", async () => {
    const github = fakeGitHub();
    const { app, items } = await createHarness({ retryForges: github.forges });
    const completed = workflowRuns.filter((example) => example.action === "completed");
    expect(completed.length).toBeGreaterThan(0);
    for (const example of completed) {
      const response = await app.request(await githubRequest("workflow_run", example));
      expect(response.status).toBe(202);
      expect(await response.json()).toEqual({ status: "accepted" });
    }
    const requested = workflowRuns.find((example) => example.action === "requested");
    const ignored = await app.request(await githubRequest("workflow_run", requested));
    expect(ignored.status).toBe(200);
    expect(await ignored.json()).toMatchObject({ status: "ignored" });
    expect(await items()).toEqual([]);
    expect(github.reruns).toEqual([]);
  });

  it("refuses a workflow_run that is not GitHub's shape with 400", async () => {
    const { app, items } = await createHarness({ retryForges: fakeGitHub().forges });
    const example = structuredClone(workflowRuns[1]) as WorkflowRunExample;
    (example.workflow_run as Record<string, unknown>).id = "not a number";
    const response = await app.request(await githubRequest("workflow_run", example));
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      error: { code: "invalid_payload", message: expect.stringContaining("workflow_run.id") },
    });
    expect(await items()).toEqual([]);
  });

  it("re-runs an interrupted job's run once when it completes, and links the next attempt's job", async () => {
    const github = fakeGitHub();
    const harness = await createHarness({ retryForges: github.forges });
    const { app, ledger } = harness;
    const retries = harness.retries;
    if (!retries) throw new Error("no retries");
    const base = workflowJobExamples.find((example) => example.action === "in_progress");
    if (!base) throw new Error("no in_progress example");
    const runId = 289782451;
    const started = structuredClone(base);
    Object.assign(started.workflow_job, { run_id: runId, runner_name: `hearth-${INSTANCE}-0`, runner_id: 9 });
    started.repository = { ...started.repository, full_name: "octo-org/octo-repo" };
    expect((await app.request(await githubRequest("workflow_job", started))).status).toBe(202);
    const jobId = String(started.workflow_job.id);
    expect((await ledger.get({ source: "github", id: jobId }))?.instanceId).toBe(INSTANCE);

    await markJobsInterrupted(retries, {
      instanceId: INSTANCE,
      pool: "x86_64",
      at: new Date().toISOString(),
    });
    const failed = structuredClone(started);
    failed.action = "completed";
    Object.assign(failed.workflow_job, {
      status: "completed",
      conclusion: "failure",
      completed_at: new Date().toISOString(),
    });
    expect((await app.request(await githubRequest("workflow_job", failed))).status).toBe(202);
    await harness.settle();
    // The run had not completed: GitHub said 403, and Hearth waits for the run.
    expect(github.reruns).toEqual([]);

    const run = structuredClone(
      workflowRuns.find(
        (example) => example.action === "completed" && example.workflow_run.status === "completed",
      ),
    );
    if (!run) throw new Error("no completed run example");
    github.completed.add(`octo-org/octo-repo#${runId}`);
    // Delivered three times at once: one re-run.
    const answers = await Promise.all(
      [1, 2, 3].map(async () => app.request(await githubRequest("workflow_run", run))),
    );
    await harness.settle();
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
    expect(github.reruns).toEqual([`octo-org/octo-repo#${runId}`]);
    expect((await ledger.get({ source: "github", id: jobId }))?.retry).toMatchObject({ newJobId: null });

    // Attempt 2's job of the same name arrives queued: it is the retry.
    const next = structuredClone(base);
    next.action = "queued";
    Object.assign(next.workflow_job, {
      id: 99_000_001,
      run_id: runId,
      run_attempt: 2,
      status: "queued",
      runner_name: null,
      runner_id: null,
      started_at: null,
    });
    next.repository = { ...next.repository, full_name: "octo-org/octo-repo" };
    expect((await app.request(await githubRequest("workflow_job", next))).status).toBe(202);
    expect(await ledger.get({ source: "github", id: "99000001" })).toMatchObject({
      status: "queued",
      attempt: 2,
      retryOf: jobId,
      retryNumber: 1,
    });
    expect((await ledger.get({ source: "github", id: jobId }))?.retry?.newJobId).toBe("99000001");
  });
});

describe("POST /webhooks/gitlab: an interrupted job's failure", () => {
  it("retries it once, however often the failure is delivered, and records the new job as its retry", async () => {
    const retried: string[] = [];
    const harness = await createHarness({
      retryForges: {
        gitlab: {
          async retryJob(project: string, job: string) {
            retried.push(`${project}/${job}`);
            return { id: "2001", status: "pending" };
          },
        },
      },
    });
    const { app, ledger, retries } = harness;
    if (!retries) throw new Error("no retries");
    const hook = (status: string, extra: Record<string, unknown> = {}) => ({
      ...gitlabJobHookExample(),
      build_status: status,
      build_started_at: "2026-01-01 10:00:20 UTC",
      ...extra,
    });
    expect((await app.request(gitlabRequest(hook("running")))).status).toBe(202);
    // The instance's heartbeat said it ran job 1977; then its spot warning came.
    await ledger.record(
      partialEvent({ source: "gitlab", id: "1977" }, { status: "running", instanceId: INSTANCE }),
    );
    await markJobsInterrupted(retries, {
      instanceId: INSTANCE,
      pool: "x86_64",
      at: new Date().toISOString(),
    });
    const failure = hook("failed", {
      build_finished_at: "2026-01-01 10:03:00 UTC",
      build_failure_reason: "runner_system_failure",
    });
    const answers = await Promise.all([1, 2, 3].map(() => app.request(gitlabRequest(failure))));
    await harness.settle();
    // Three deliveries of the failure (GitLab retries a hook it thinks failed): one records it.
    expect(answers.map((answer) => answer.status)).toEqual([202, 202, 202]);
    expect(retried).toEqual(["380/1977"]);
    expect((await ledger.get({ source: "gitlab", id: "1977" }))?.retry?.newJobId).toBe("2001");
    expect(await ledger.get({ source: "gitlab", id: "2001" })).toMatchObject({
      retryOf: "1977",
      retryNumber: 1,
      pipelineId: "2366",
      status: "queued",
    });
  });
});
