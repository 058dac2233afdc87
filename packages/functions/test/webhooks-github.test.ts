import { createHmac } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { workflowJobExamples as workflowJobs } from "../../core/test/fixtures";
import { createHarness, GITHUB_SECRET, githubRequest, stopEmbeddedDynamo } from "./support/harness";

afterAll(stopEmbeddedDynamo);

describe("POST /webhooks/github", () => {
  const expected = [
    { status: "running", runner: "my runner" },
    { status: "completed", conclusion: "failure" },
    { status: "completed", conclusion: "success" },
    { status: "running" },
    { status: "running" },
    { status: "queued", runner: null },
    { status: "waiting" },
    { status: "waiting" },
  ];

  it.each(workflowJobs.map((example, i) => [i, example.action, example] as const))(
    "records GitHub's example %i (%s) through the app and the store",
    async (i, _action, example) => {
      const { app, ledger } = await createHarness();
      const response = await app.request(await githubRequest("workflow_job", example));
      expect(response.status).toBe(202);
      const job = await ledger.get({ source: "github", id: String(example.workflow_job.id) });
      expect(job).toMatchObject({
        project: example.repository.full_name,
        pipelineId: String(example.workflow_job.run_id),
        labels: [...new Set(example.workflow_job.labels.map((label) => label.toLowerCase()))].sort(),
        labelsKnown: true,
        status: expected[i]?.status,
      });
      if (expected[i]?.conclusion) expect(job?.conclusion).toBe(expected[i]?.conclusion);
      if (expected[i] && "runner" in expected[i]) expect(job?.runner?.name ?? null).toBe(expected[i]?.runner);
      expect(await response.json()).toMatchObject({
        status: "recorded",
        job: { source: "github", status: job?.status },
      });
    },
  );

  it("answers ping, and ignores other events without writing", async () => {
    const { app, items } = await createHarness();
    const ping = await app.request(
      await githubRequest("ping", { zen: "Keep it logically awesome.", hook_id: 1 }),
    );
    expect(ping.status).toBe(200);
    expect(await ping.json()).toEqual({ status: "pong" });
    const push = await app.request(await githubRequest("push", { ref: "refs/heads/main" }));
    expect(push.status).toBe(200);
    expect(await push.json()).toMatchObject({ status: "ignored" });
    expect(await items()).toEqual([]);
  });

  it("applies a replayed delivery once", async () => {
    const { app, items } = await createHarness();
    const example = workflowJobs[5];
    const first = await app.request(await githubRequest("workflow_job", example, { delivery: "d-1" }));
    const before = await items();
    const replay = await app.request(await githubRequest("workflow_job", example, { delivery: "d-1" }));
    expect(first.status).toBe(202);
    expect(replay.status).toBe(200);
    expect(await replay.json()).toMatchObject({ status: "duplicate" });
    expect(await items()).toEqual(before);
  });

  it("rejects a missing or wrong signature with 401 and writes nothing", async () => {
    const { app, items } = await createHarness();
    const wrong = await app.request(
      await githubRequest("workflow_job", workflowJobs[5], { secret: "not-it" }),
    );
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({
      error: { code: "unauthorized", message: "X-Hub-Signature-256 does not match the body" },
    });
    const unsigned = await githubRequest("workflow_job", workflowJobs[5]);
    unsigned.headers.delete("x-hub-signature-256");
    expect((await app.request(unsigned)).status).toBe(401);
    const tampered = await githubRequest("workflow_job", workflowJobs[5]);
    const body = (await tampered.text()).replace("queued", "completed");
    expect(
      (await app.request(new Request(tampered.url, { method: "POST", headers: tampered.headers, body })))
        .status,
    ).toBe(401);
    expect(await items()).toEqual([]);
  });

  it("rejects signed but malformed or off-schema bodies with 400", async () => {
    const { app, items } = await createHarness();
    const notJson = await githubRequest("workflow_job", {});
    const sign = async (body: string) => {
      const { Webhooks } = await import("@octokit/webhooks");
      const headers = new Headers(notJson.headers);
      headers.set("x-hub-signature-256", await new Webhooks({ secret: GITHUB_SECRET }).sign(body));
      return new Request(notJson.url, { method: "POST", headers, body });
    };
    const broken = await app.request(await sign("{not json"));
    expect(broken.status).toBe(400);
    expect(await broken.json()).toMatchObject({ error: { code: "malformed" } });
    // An empty body signed correctly: nothing to record, and no signature problem to report.
    const signedEmpty = new Headers(notJson.headers);
    signedEmpty.set(
      "x-hub-signature-256",
      `sha256=${createHmac("sha256", GITHUB_SECRET).update("").digest("hex")}`,
    );
    const empty = await app.request(new Request(notJson.url, { method: "POST", headers: signedEmpty }));
    expect(empty.status).toBe(400);
    expect(await empty.json()).toEqual({ error: { code: "malformed", message: "the body is empty" } });
    // The same empty body signed with another secret: a signature problem, said as one.
    signedEmpty.set(
      "x-hub-signature-256",
      `sha256=${createHmac("sha256", "not-it").update("").digest("hex")}`,
    );
    const forged = await app.request(new Request(notJson.url, { method: "POST", headers: signedEmpty }));
    expect(forged.status).toBe(401);
    const offSchema = await app.request(
      await githubRequest("workflow_job", { action: "queued", workflow_job: {} }),
    );
    expect(offSchema.status).toBe(400);
    expect(await offSchema.json()).toMatchObject({ error: { code: "invalid_payload" } });
    expect(await items()).toEqual([]);
  });

  it("answers a correctly signed body that is not UTF-8 with 400 saying so, not a 401", async () => {
    const { app, items } = await createHarness();
    const template = await githubRequest("workflow_job", {});
    // A Latin-1 "é" (0xe9) where UTF-8 needs two bytes; signed over the raw bytes, as GitHub signs.
    const body = Buffer.concat([
      Buffer.from('{"action":"queued","name":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('"}'),
    ]);
    const signed = (secret: string) => {
      const headers = new Headers(template.headers);
      headers.set("x-hub-signature-256", `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`);
      return new Request(template.url, { method: "POST", headers, body });
    };
    const response = await app.request(signed(GITHUB_SECRET));
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      error: { code: "malformed", message: "body is not valid UTF-8 (byte 30); webhooks carry UTF-8 JSON" },
    });
    // No signature at all is still a 401: the header is checked first.
    const unsigned = signed(GITHUB_SECRET);
    unsigned.headers.delete("x-hub-signature-256");
    expect((await app.request(unsigned)).status).toBe(401);
    expect(await items()).toEqual([]);
  });

  it("accepts GitHub's form-encoded deliveries, whatever the media type's case", async () => {
    const { app, ledger } = await createHarness();
    const { Webhooks } = await import("@octokit/webhooks");
    const body = new URLSearchParams({ payload: JSON.stringify(workflowJobs[5]) }).toString();
    // A media type is case-insensitive (RFC 9110), and may carry parameters.
    for (const [delivery, contentType] of [
      ["form-1", "application/x-www-form-urlencoded"],
      ["form-2", "Application/X-WWW-Form-Urlencoded; charset=utf-8"],
    ]) {
      const response = await app.request(
        new Request("http://hearth.test/webhooks/github", {
          method: "POST",
          headers: {
            "content-type": contentType as string,
            "x-github-event": "workflow_job",
            "x-github-delivery": delivery as string,
            "x-hub-signature-256": await new Webhooks({ secret: GITHUB_SECRET }).sign(body),
          },
          body,
        }),
      );
      expect([contentType, response.status]).toEqual([contentType, 202]);
    }
    expect((await ledger.get({ source: "github", id: "289782451" }))?.status).toBe("queued");
  });

  it("refuses bodies over 1 MiB, by header and by the bytes actually read", async () => {
    const { app, items } = await createHarness();
    const big = await app.request(
      new Request("http://hearth.test/webhooks/github", {
        method: "POST",
        headers: { "content-length": String(1024 * 1024 + 1), "x-github-event": "workflow_job" },
        body: "x",
      }),
    );
    expect(big.status).toBe(413);
    expect(await big.json()).toMatchObject({ error: { code: "payload_too_large" } });
    const chunk = new Uint8Array(64 * 1024).fill(32);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        sent += chunk.byteLength;
        if (sent > 4 * 1024 * 1024) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const streamed = await app.request(
      new Request("http://hearth.test/webhooks/github", {
        method: "POST",
        headers: { "x-github-event": "workflow_job" },
        body: stream,
        duplex: "half",
      } as RequestInit),
    );
    expect(streamed.status).toBe(413);
    expect(sent).toBeLessThan(2 * 1024 * 1024); // it stopped reading early
    expect(await items()).toEqual([]);
  });

  it("answers 400, not 500, when the sender goes away mid-body", async () => {
    const { app, items } = await createHarness();
    const broken = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"action":'));
        controller.error(new Error("socket hang up"));
      },
    });
    const response = await app.request(
      new Request("http://hearth.test/webhooks/github", {
        method: "POST",
        headers: { "x-github-event": "workflow_job" },
        body: broken,
        duplex: "half",
      } as RequestInit),
    );
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { code: "malformed" } });
    expect(await items()).toEqual([]);
  });

  it("answers 405 to other methods and 404 elsewhere, as JSON", async () => {
    const { app } = await createHarness();
    const get = await app.request("/webhooks/github");
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect(await get.json()).toMatchObject({ error: { code: "method_not_allowed" } });
    expect((await app.request("/webhooks/github", { method: "PUT" })).status).toBe(405);
    const missing = await app.request("/webhooks/bitbucket", { method: "POST" });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: { code: "not_found" } });
  });
});
