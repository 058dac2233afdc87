import { createHmac } from "node:crypto";
import { createGitLabJobs } from "@hearth/core/gitlab-api/client";
import { afterAll, describe, expect, it } from "vitest";
import { gitlabJobHookExample } from "../../core/test/fixtures";
import { startFakeGitLab } from "./support/fake-gitlab";
import { createHarness, GITLAB_SIGNING, gitlabRequest, stopEmbeddedDynamo } from "./support/harness";

const sample = gitlabJobHookExample();
const key = { source: "gitlab", id: "1977" } as const;

afterAll(stopEmbeddedDynamo);

describe("POST /webhooks/gitlab", () => {
  it("records GitLab's documented Job Hook example", async () => {
    const { app, ledger } = await createHarness();
    const response = await app.request(gitlabRequest(sample));
    expect(response.status).toBe(202);
    expect(await ledger.get(key)).toMatchObject({
      project: "gitlab-org/gitlab-test",
      projectId: "380",
      pipelineId: "2366",
      attempt: 2,
      status: "waiting",
      labelsKnown: false,
    });
  });

  it.each([
    ["created", { status: "waiting" }],
    ["manual", { status: "waiting" }],
    ["pending", { status: "queued" }],
    ["running", { status: "running", runner: { id: "380987", name: "shared-runners-manager-6.gitlab.com" } }],
    ["success", { status: "completed", conclusion: "success", failureReason: null }],
    ["failed", { status: "completed", conclusion: "failure", failureReason: "runner_system_failure" }],
    ["canceled", { status: "cancelled", conclusion: "cancelled" }],
    ["skipped", { status: "cancelled", conclusion: "skipped" }],
  ])("records a %s job", async (status, expected) => {
    const { app, ledger } = await createHarness();
    const started = ["running", "success", "failed", "canceled"].includes(status);
    const finished = ["success", "failed", "canceled"].includes(status);
    const payload = {
      ...sample,
      build_status: status,
      build_started_at: started ? "2026-01-01 10:00:20 UTC" : null,
      build_finished_at: finished ? "2026-01-01 10:05:00 UTC" : null,
      build_queued_duration: 4,
      build_failure_reason: status === "failed" ? "runner_system_failure" : "unknown_failure",
    };
    expect((await app.request(gitlabRequest(payload))).status).toBe(202);
    const job = await ledger.get(key);
    expect(job).toMatchObject(expected);
    if (started) {
      expect(job?.startedAt).toBe("2026-01-01T10:00:20.000Z");
      expect(job?.queuedAt).toBe("2026-01-01T10:00:16.000Z");
    }
    if (finished) expect(job?.finishedAt).toBe("2026-01-01T10:05:00.000Z");
  });

  it("applies an Idempotency-Key once", async () => {
    const { app, items } = await createHarness();
    const pending = { ...sample, build_status: "pending" };
    expect((await app.request(gitlabRequest(pending, { idempotencyKey: "k-1" }))).status).toBe(202);
    const before = await items();
    const replay = await app.request(
      gitlabRequest({ ...pending, build_status: "running" }, { idempotencyKey: "k-1" }),
    );
    expect(replay.status).toBe(200);
    expect(await replay.json()).toMatchObject({ status: "duplicate" });
    expect(await items()).toEqual(before);
  });

  it("rejects a missing or wrong token with 401 and writes nothing", async () => {
    const { app, items } = await createHarness();
    const wrong = await app.request(gitlabRequest(sample, { token: "guess" }));
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({
      error: { code: "unauthorized", message: "X-Gitlab-Token is missing or wrong" },
    });
    const none = gitlabRequest(sample);
    none.headers.delete("x-gitlab-token");
    expect((await app.request(none)).status).toBe(401);
    expect(await items()).toEqual([]);
  });

  it("ignores other GitLab events, and rejects malformed or off-schema Job Hooks with 400", async () => {
    const { app, items } = await createHarness();
    const push = await app.request(gitlabRequest({ object_kind: "push" }, { event: "Push Hook" }));
    expect(push.status).toBe(200);
    expect(await push.json()).toMatchObject({ status: "ignored" });
    const offSchema = await app.request(gitlabRequest({ ...sample, build_id: "not-a-number" }));
    expect(offSchema.status).toBe(400);
    expect(await offSchema.json()).toMatchObject({ error: { code: "invalid_payload" } });
    const request = gitlabRequest(sample);
    const broken = await app.request(
      new Request(request.url, {
        method: "POST",
        headers: request.headers,
        body: '{"object_kind": "build",',
      }),
    );
    expect(broken.status).toBe(400);
    expect(await items()).toEqual([]);
  });

  describe("with a signing token", () => {
    it("accepts a correctly signed delivery", async () => {
      const { app, ledger } = await createHarness({ signingToken: GITLAB_SIGNING });
      const response = await app.request(gitlabRequest(sample, { signingToken: GITLAB_SIGNING }));
      expect(response.status).toBe(202);
      expect((await ledger.get(key))?.status).toBe("waiting");
    });

    it("rejects unsigned, mis-signed and stale deliveries", async () => {
      const { app, items } = await createHarness({ signingToken: GITLAB_SIGNING });
      const other = `whsec_${Buffer.from("another-key-another-key-another-").toString("base64")}`;
      const stale = Math.floor(Date.now() / 1000) - 600;
      for (const request of [
        gitlabRequest(sample),
        gitlabRequest(sample, { signingToken: other }),
        gitlabRequest(sample, { signingToken: GITLAB_SIGNING, timestamp: stale }),
      ]) {
        const response = await app.request(request);
        expect(response.status).toBe(401);
      }
      expect(await items()).toEqual([]);
    });
  });

  describe("a body that is not UTF-8", () => {
    // A Latin-1 "é" (0xe9) where UTF-8 needs two bytes.
    const body = Buffer.concat([
      Buffer.from('{"object_kind":"build","build_name":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('"}'),
    ]);
    const message = "body is not valid UTF-8 (byte 40); webhooks carry UTF-8 JSON";

    it("is a 400 saying so, with the right token", async () => {
      const { app, items } = await createHarness();
      const headers = new Headers(gitlabRequest(sample).headers);
      const response = await app.request(
        new Request("http://hearth.test/webhooks/gitlab", { method: "POST", headers, body }),
      );
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({ error: { code: "malformed", message } });
      headers.set("x-gitlab-token", "wrong");
      const wrong = await app.request(
        new Request("http://hearth.test/webhooks/gitlab", { method: "POST", headers, body }),
      );
      expect(wrong.status).toBe(401);
      expect(await items()).toEqual([]);
    });

    it("is a 400 saying so when correctly signed, not a 401", async () => {
      const { app, items } = await createHarness({ signingToken: GITLAB_SIGNING });
      const headers = new Headers(gitlabRequest(sample, { signingToken: GITLAB_SIGNING }).headers);
      // Signed over the raw bytes, as the Standard Webhooks specification defines it.
      const key = Buffer.from(GITLAB_SIGNING.slice("whsec_".length), "base64");
      const prefix = `${headers.get("webhook-id")}.${headers.get("webhook-timestamp")}.`;
      const mac = createHmac("sha256", key).update(prefix).update(body).digest("base64");
      headers.set("webhook-signature", `v1,${mac}`);
      const response = await app.request(
        new Request("http://hearth.test/webhooks/gitlab", { method: "POST", headers, body }),
      );
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({ error: { code: "malformed", message } });
      expect(await items()).toEqual([]);
    });
  });

  describe("tag lookup", () => {
    it("answers at once and fills the tags in from the GitLab API afterwards", async () => {
      let release = () => {};
      const hold = new Promise<void>((resolve) => {
        release = resolve;
      });
      const gitlab = await startFakeGitLab({ tags: { "1977": ["nix", "X86_64-linux"] }, hold });
      try {
        const api = createGitLabJobs({ url: gitlab.url, token: "glpat-test" });
        const { app, ledger, settle } = await createHarness({ gitlabApi: api });
        // The API holds its answer; the webhook must answer anyway.
        const response = await app.request(gitlabRequest({ ...sample, build_status: "pending" }));
        expect(response.status).toBe(202);
        expect((await ledger.get(key))?.labelsKnown).toBe(false);
        release();
        await settle();
        expect(await ledger.get(key)).toMatchObject({ labels: ["nix", "x86_64-linux"], labelsKnown: true });
        expect(gitlab.requests).toEqual([{ path: "/api/v4/projects/380/jobs/1977", token: "glpat-test" }]);
        expect(await ledger.queuedByLabels(["nix", "x86_64-linux"])).toHaveLength(1);
      } finally {
        await gitlab.close();
      }
    });

    it("keeps the job, with unknown tags, when the API fails", async () => {
      const gitlab = await startFakeGitLab({ tags: {}, status: 500 });
      try {
        const api = createGitLabJobs({ url: gitlab.url, token: "glpat-test" });
        const { app, ledger, settle } = await createHarness({ gitlabApi: api });
        expect((await app.request(gitlabRequest({ ...sample, build_status: "pending" }))).status).toBe(202);
        await settle();
        expect(await ledger.get(key)).toMatchObject({ status: "queued", labelsKnown: false });
      } finally {
        await gitlab.close();
      }
    });

    it("looks nothing up for jobs that are not queued", async () => {
      const gitlab = await startFakeGitLab({ tags: { "1977": ["nix"] } });
      try {
        const api = createGitLabJobs({ url: gitlab.url, token: "glpat-test" });
        const { app, settle } = await createHarness({ gitlabApi: api });
        await app.request(gitlabRequest(sample)); // created
        await settle();
        expect(gitlab.requests).toEqual([]);
      } finally {
        await gitlab.close();
      }
    });
  });
});
