import { describe, expect, it, vi } from "vitest";
import { ZodError } from "zod";
import { jobEventFromWorkflowJob } from "../src/sources/github";
import {
  gitlabStatusToJobStatus,
  jobEventFromJobHook,
  signGitLabBody,
  verifyGitLabSignature,
  verifyGitLabToken,
} from "../src/sources/gitlab";
import { gitlabJobHookExample, workflowJobExamples as workflowJobs } from "./fixtures";

const gitlabSample = gitlabJobHookExample();
const receivedAt = new Date("2026-01-01T12:00:00.000Z");

describe("GitHub workflow_job payloads", () => {
  it("has GitHub's eight documented examples to check against", () => {
    expect(workflowJobs).toHaveLength(8);
  });

  it.each(workflowJobs.map((example, i) => [i, example.action, example] as const))(
    "understands example %i (%s)",
    (_i, _action, example) => {
      const event = jobEventFromWorkflowJob(example);
      const job = example.workflow_job;
      expect(event).toMatchObject({ source: "github", id: String(job.id), pipelineId: String(job.run_id) });
      expect(event?.labels).toEqual([...new Set(job.labels.map((label) => label.toLowerCase()))].sort());
    },
  );

  it("maps actions onto ledger statuses, honouring a queued job that still waits for approval", () => {
    const statuses = workflowJobs.map((example) => jobEventFromWorkflowJob(example)?.status);
    expect(statuses).toEqual([
      "running",
      "completed",
      "completed",
      "running",
      "running",
      "queued",
      "waiting",
      "waiting",
    ]);
  });

  it("does not trust runner fields on a queued job", () => {
    const queued = workflowJobs[5];
    expect(queued?.workflow_job.runner_name).toBeTruthy();
    expect(jobEventFromWorkflowJob(queued)).toMatchObject({
      runner: null,
      startedAt: null,
      instanceId: null,
    });
  });

  it("treats cancelled and skipped jobs as cancelled", () => {
    const completed = structuredClone(workflowJobs[1]) as { workflow_job: Record<string, unknown> };
    completed.workflow_job.conclusion = "cancelled";
    completed.workflow_job.runner_name = "";
    expect(jobEventFromWorkflowJob(completed)).toMatchObject({
      status: "cancelled",
      conclusion: "cancelled",
    });
  });

  it("ignores actions it does not track and rejects payloads of the wrong shape", () => {
    expect(jobEventFromWorkflowJob({ ...workflowJobs[5], action: "requested" })).toBeUndefined();
    expect(() => jobEventFromWorkflowJob({ action: "queued", workflow_job: { id: "x" } })).toThrow(ZodError);
  });
});

describe("GitLab Job Hook payloads", () => {
  it("understands the documented example", () => {
    expect(jobEventFromJobHook(gitlabSample, receivedAt)).toEqual({
      source: "gitlab",
      id: "1977",
      project: "gitlab-org/gitlab-test",
      projectId: "380",
      pipelineId: "2366",
      name: "test / test",
      attempt: 2,
      labels: [],
      labelsKnown: false,
      status: "waiting",
      conclusion: null,
      failureReason: null,
      queuedAt: null,
      startedAt: null,
      finishedAt: null,
      runner: null,
      instanceId: null,
      url: "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977",
    });
  });

  it.each([
    ["created", "waiting"],
    ["waiting_for_resource", "waiting"],
    ["manual", "waiting"],
    ["scheduled", "waiting"],
    ["pending", "queued"],
    ["preparing", "running"],
    ["running", "running"],
    ["canceling", "running"],
    ["success", "completed"],
    ["failed", "completed"],
    ["canceled", "cancelled"],
    ["skipped", "cancelled"],
  ])("maps %s to %s", (gitlab, ledger) => {
    expect(gitlabStatusToJobStatus(gitlab)).toBe(ledger);
    expect(jobEventFromJobHook({ ...gitlabSample, build_status: gitlab }, receivedAt)?.status).toBe(ledger);
  });

  it("dates a pending job by when it was queued", () => {
    const pending = { ...gitlabSample, build_status: "pending", build_queued_duration: 2.5 };
    expect(jobEventFromJobHook(pending, receivedAt)?.queuedAt).toBe("2026-01-01T11:59:57.500Z");
  });

  it("records why a job failed, and only for failures", () => {
    const failed = {
      ...gitlabSample,
      build_status: "failed",
      build_started_at: "2021-02-23 02:43:00 UTC",
      build_finished_at: "2021-02-23 02:44:00 UTC",
      build_failure_reason: "runner_system_failure",
    };
    expect(jobEventFromJobHook(failed, receivedAt)).toMatchObject({
      status: "completed",
      conclusion: "failure",
      failureReason: "runner_system_failure",
      startedAt: "2021-02-23T02:43:00.000Z",
      finishedAt: "2021-02-23T02:44:00.000Z",
      queuedAt: new Date(Date.parse("2021-02-23T02:43:00.000Z") - 1095588.715).toISOString(),
      runner: { id: "380987", name: "shared-runners-manager-6.gitlab.com" },
    });
    expect(jobEventFromJobHook({ ...failed, build_status: "success" }, receivedAt)?.failureReason).toBeNull();
  });

  it("ignores unknown statuses and rejects payloads of the wrong shape", () => {
    expect(jobEventFromJobHook({ ...gitlabSample, build_status: "teleported" }, receivedAt)).toBeUndefined();
    expect(() => jobEventFromJobHook({ ...gitlabSample, build_id: "abc" }, receivedAt)).toThrow(ZodError);
    expect(() => jobEventFromJobHook({ ...gitlabSample, build_started_at: "soon" }, receivedAt)).toThrow(
      ZodError,
    );
    expect(() => jobEventFromJobHook({ object_kind: "pipeline" }, receivedAt)).toThrow(ZodError);
  });
});

describe("GitLab webhook authentication", () => {
  const secret = `whsec_${Buffer.from("0123456789abcdef0123456789abcdef").toString("base64")}`;
  const body = Buffer.from('{"object_kind":"build"}');
  const now = new Date("2026-01-01T12:00:00.000Z");
  const ts = Math.floor(now.getTime() / 1000);

  it("compares the token exactly", () => {
    expect(verifyGitLabToken("s3cret", "s3cret")).toBe(true);
    expect(verifyGitLabToken("s3cret ", "s3cret")).toBe(false);
    expect(verifyGitLabToken(undefined, "s3cret")).toBe(false);
  });

  it("accepts a Standard Webhooks signature and rejects tampering, stale times and wrong keys", () => {
    // The reference implementation measures the timestamp's age against the system clock.
    vi.useFakeTimers({ now, toFake: ["Date"] });
    try {
      const signature = signGitLabBody("msg-1", ts, body, secret);
      const headers = { id: "msg-1", timestamp: String(ts), signature };
      expect(verifyGitLabSignature(headers, body, secret)).toEqual({ ok: true });
      // Several signatures may be sent during key rotation; one match is enough.
      expect(verifyGitLabSignature({ ...headers, signature: `v1,AAAA ${signature}` }, body, secret).ok).toBe(
        true,
      );
      expect(verifyGitLabSignature(headers, Buffer.from('{"object_kind":"buildx"}'), secret)).toEqual({
        ok: false,
        reason: "webhook-signature does not match",
      });
      expect(verifyGitLabSignature({ ...headers, id: "msg-2" }, body, secret).ok).toBe(false);
      expect(
        verifyGitLabSignature(headers, body, `whsec_${Buffer.from("x".repeat(32)).toString("base64")}`).ok,
      ).toBe(false);
      vi.setSystemTime(now.getTime() + 301_000);
      expect(verifyGitLabSignature(headers, body, secret)).toEqual({
        ok: false,
        reason: "webhook-timestamp is outside the allowed window",
      });
      vi.setSystemTime(now.getTime() - 301_000);
      expect(verifyGitLabSignature(headers, body, secret).ok).toBe(false);
      vi.setSystemTime(now);
      expect(verifyGitLabSignature({ ...headers, signature: undefined }, body, secret)).toEqual({
        ok: false,
        reason: "webhook-id, webhook-timestamp and webhook-signature headers are required",
      });
      expect(verifyGitLabSignature({ ...headers, timestamp: "1e9" }, body, secret).ok).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it("matches the Standard Webhooks reference vector", () => {
    // From the Standard Webhooks specification's test suite (standard-webhooks/standard-webhooks).
    const refSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const refBody = Buffer.from('{"test": 2432232314}');
    const signature = signGitLabBody("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, refBody, refSecret);
    expect(signature).toBe("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    vi.useFakeTimers({ now: 1614265330_000, toFake: ["Date"] });
    try {
      const headers = { id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: "1614265330" };
      expect(verifyGitLabSignature({ ...headers, signature }, refBody, refSecret)).toEqual({ ok: true });
      const other = "v1,AAAA9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
      expect(verifyGitLabSignature({ ...headers, signature: other }, refBody, refSecret).ok).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });
});
