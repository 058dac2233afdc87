import { Webhooks } from "@octokit/webhooks";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gitlabJobHookExample, workflowJobExamples as workflowJobs } from "../../core/test/fixtures";
import {
  createHarness,
  GITHUB_SECRET,
  GITLAB_TOKEN,
  type Harness,
  stopEmbeddedDynamo,
} from "./support/harness";

/**
 * Whatever arrives, Hearth never fails with a 5xx, and the ledger changes only when the answer says
 * that a job was recorded.
 */

const gitlabSample = gitlabJobHookExample();
const signer = new Webhooks({ secret: GITHUB_SECRET });

let harness: Harness;
beforeAll(async () => {
  harness = await createHarness();
});
afterAll(stopEmbeddedDynamo);

async function send(request: Request) {
  const before = (await harness.items()).length;
  const response = await harness.app.request(request);
  const text = await response.text();
  const after = (await harness.items()).length;
  expect(response.status, text).toBeLessThan(500);
  expect(() => JSON.parse(text)).not.toThrow();
  const recorded = response.status === 202;
  if (!recorded) expect(after, `${response.status} ${text}`).toBe(before);
  return response.status;
}

/** Replace, delete or retype one value somewhere in a JSON document. */
const mutation = fc.record({
  path: fc.array(fc.nat({ max: 40 }), { minLength: 1, maxLength: 4 }),
  value: fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 30 })),
});

function mutate(document: unknown, { path, value }: { path: number[]; value: unknown }): unknown {
  const copy = structuredClone(document);
  let node = copy as Record<string, unknown>;
  for (const [depth, index] of path.entries()) {
    if (typeof node !== "object" || node === null) break;
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const key = keys[index % keys.length] as string;
    if (depth === path.length - 1 || typeof node[key] !== "object" || node[key] === null) {
      if (value === undefined) delete node[key];
      else node[key] = value;
      break;
    }
    node = node[key] as Record<string, unknown>;
  }
  return copy;
}

const printable = fc.string({ unit: fc.constantFrom(..."abcXYZ019 -_:;,./=+{}[]\"'"), maxLength: 80 });
const headerName = fc.constantFrom(
  "content-type",
  "content-length",
  "x-github-event",
  "x-github-delivery",
  "x-hub-signature-256",
  "x-gitlab-event",
  "x-gitlab-token",
  "idempotency-key",
  "webhook-id",
  "webhook-timestamp",
  "webhook-signature",
);

describe("hostile requests", () => {
  it("random bytes with random headers: never a 5xx, never a write", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("github", "gitlab"),
        fc.uint8Array({ maxLength: 2048 }),
        fc.dictionary(headerName, printable, { maxKeys: 6 }),
        async (source, body, headers) => {
          const status = await send(
            new Request(`http://hearth.test/webhooks/${source}`, { method: "POST", headers, body }),
          );
          expect(status).not.toBe(202);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("mutated GitHub examples, correctly signed: never a 5xx; a write only when recorded", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...workflowJobs),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        async (example, mutations) => {
          const payload = mutations.reduce<unknown>(mutate, example);
          const body = JSON.stringify(payload) ?? "null";
          await send(
            new Request("http://hearth.test/webhooks/github", {
              method: "POST",
              headers: {
                "content-type": "application/json",
                "x-github-event": "workflow_job",
                "x-github-delivery": crypto.randomUUID(),
                "x-hub-signature-256": await signer.sign(body),
              },
              body,
            }),
          );
        },
      ),
      { numRuns: 150 },
    );
  });

  it("mutated GitLab examples with the right token: never a 5xx; a write only when recorded", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("pending", "running", "success", "failed", "created"),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        async (status, mutations) => {
          const payload = mutations.reduce<unknown>(mutate, { ...gitlabSample, build_status: status });
          await send(
            new Request("http://hearth.test/webhooks/gitlab", {
              method: "POST",
              headers: {
                "content-type": "application/json",
                "x-gitlab-event": "Job Hook",
                "x-gitlab-token": GITLAB_TOKEN,
                "idempotency-key": crypto.randomUUID(),
              },
              body: JSON.stringify(payload) ?? "null",
            }),
          );
        },
      ),
      { numRuns: 150 },
    );
  });

  it("valid deliveries with one header tampered: never a 5xx, never a write", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("x-hub-signature-256", "x-gitlab-token"),
        printable,
        async (header, value) => {
          const isGitHub = header === "x-hub-signature-256";
          const body = JSON.stringify(
            isGitHub ? workflowJobs[5] : { ...gitlabSample, build_status: "pending" },
          );
          const headers: Record<string, string> = isGitHub
            ? { "x-github-event": "workflow_job", "x-hub-signature-256": await signer.sign(body) }
            : { "x-gitlab-event": "Job Hook", "x-gitlab-token": GITLAB_TOKEN };
          fc.pre(headers[header] !== value);
          headers[header] = value;
          const status = await send(
            new Request(`http://hearth.test/webhooks/${isGitHub ? "github" : "gitlab"}`, {
              method: "POST",
              headers,
              body,
            }),
          );
          expect(status).toBe(401);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("payloads at the edges of the schema", () => {
  const gitlab = (fields: Record<string, unknown>) =>
    new Request("http://hearth.test/webhooks/gitlab", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-event": "Job Hook",
        "x-gitlab-token": GITLAB_TOKEN,
        "idempotency-key": crypto.randomUUID(),
      },
      body: JSON.stringify({ ...gitlabSample, build_status: "pending", ...fields }),
    });
  const github = async (fields: Record<string, unknown>) => {
    const example = workflowJobs.find((job) => job.action === "queued") ?? workflowJobs[0];
    const body = JSON.stringify({ ...example, workflow_job: { ...example?.workflow_job, ...fields } });
    return new Request("http://hearth.test/webhooks/github", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": "workflow_job",
        "x-github-delivery": crypto.randomUUID(),
        "x-hub-signature-256": await signer.sign(body),
      },
      body,
    });
  };

  it("out-of-range times and durations: a 400, never a 5xx nor a job the ledger cannot read back", async () => {
    const started = { build_status: "running", build_started_at: "2024-01-01T00:00:00Z" };
    expect(await send(gitlab({ build_id: 7001, build_queued_duration: 1e300 }))).toBe(202);
    expect(await send(gitlab({ build_id: 7002, build_queued_duration: 1e11 }))).toBe(202);
    expect(await send(gitlab({ build_id: 7003, ...started, build_queued_duration: 1e300 }))).toBe(202);
    expect(
      await send(gitlab({ build_id: 7004, ...started, build_started_at: "-000001-01-01T00:00:00Z" })),
    ).toBe(400);
    expect(
      await send(gitlab({ build_id: 7005, ...started, build_started_at: "+010000-01-01T00:00:00Z" })),
    ).toBe(400);
    // Every job written can be read back, and the queue (ScaleFleet's and the status page's) too.
    for (const id of ["7001", "7002"]) {
      const job = await harness.ledger.get({ source: "gitlab", id });
      expect(Date.now() - Date.parse(job?.queuedAt ?? "")).toBeLessThan(60_000);
    }
    expect(await harness.ledger.get({ source: "gitlab", id: "7003" })).toMatchObject({ queuedAt: null });
    await expect(harness.ledger.queued()).resolves.toBeDefined();
  });

  it("oversized fields and ids: a 400, never a 5xx", async () => {
    expect(await send(gitlab({ build_id: 7101, build_name: "x".repeat(500_000) }))).toBe(400);
    expect(await send(gitlab({ build_id: "9".repeat(3000) }))).toBe(400);
    expect(await send(gitlab({ build_id: 7102, project_id: "9".repeat(300_000) }))).toBe(400);
    expect(await send(await github({ id: 7103, labels: ["a".repeat(500_000)] }))).toBe(400);
    expect(await send(await github({ id: "1".repeat(5000) }))).toBe(400);
  });

  it("the most labels a job may ask for are recorded and queued", async () => {
    const labels = Array.from({ length: 100 }, (_, i) => `${i}`.padStart(256, "l"));
    expect(await send(await github({ id: 7201, labels }))).toBe(202);
    expect((await harness.ledger.queuedByLabels(labels)).map((job) => job.id)).toEqual(["7201"]);
  });
});
