import { afterEach, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import { MAX_DESCRIBED_JOBS } from "../src/local/sim-runners";
import { startTestHearth } from "./support/local";

/** `/sim/*`, local mode's simulation controls: the webhooks' body limit, bounded tables, the token. */

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

const described = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => ({
    job: {
      source: "github",
      id: String(from + i),
      project: "a/b",
      projectId: "1",
      pipelineId: "1",
      name: "t",
      labels: [],
    },
    warmSeconds: 1,
    coldSeconds: 1,
  }));

const post = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(`${url}/sim/jobs`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });

describe("/sim/* in local mode", () => {
  it("refuses a body over 1 MiB, as the webhooks do, and keeps nothing of it", async () => {
    ({ hearth } = await startTestHearth());
    // Valid JSON, padded past the limit.
    const body = `${JSON.stringify(described(1, 1))}${" ".repeat(2 * 1024 * 1024)}`;
    const response = await post(hearth.url, body);
    expect(response.status).toBe(413);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("payload_too_large");
    expect(hearth.simulation?.runners.describedJobs()).toHaveLength(0);
  });

  it("bounds the described jobs it keeps", async () => {
    ({ hearth } = await startTestHearth());
    for (let from = 0; from < MAX_DESCRIBED_JOBS; from += 5_000) {
      expect((await post(hearth.url, JSON.stringify(described(from, 5_000)))).status).toBe(200);
    }
    const over = await post(hearth.url, JSON.stringify(described(MAX_DESCRIBED_JOBS, 1)));
    expect(over.status).toBe(413);
    expect(((await over.json()) as { error: { code: string } }).error.code).toBe("too_many_jobs");
    expect(hearth.simulation?.runners.describedJobs()).toHaveLength(MAX_DESCRIBED_JOBS);
    // Describing a job again is no new entry.
    expect((await post(hearth.url, JSON.stringify(described(0, 1)))).status).toBe(200);
  });

  it("asks for the status token when one is set", async () => {
    ({ hearth } = await startTestHearth({ statusToken: "sim-token" }));
    const body = JSON.stringify(described(1, 1));
    expect((await post(hearth.url, body)).status).toBe(401);
    expect((await post(hearth.url, body, { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await post(hearth.url, body, { authorization: "Bearer sim-token" })).status).toBe(200);
    const lookup = `${hearth.url}/sim/gitlab/api/v4/projects/1/jobs/1`;
    expect((await fetch(lookup)).status).toBe(401);
    expect((await fetch(lookup, { headers: { "private-token": "sim-token" } })).status).toBe(404);
  });

  it("takes a project or group path's escapes as sent, once: a stray % is a path like any other", async () => {
    ({ hearth } = await startTestHearth());
    const gitlab = `${hearth.url}/sim/gitlab/api/v4`;
    for (const [method, path, status] of [
      ["GET", "/projects/%25/jobs/1", 404],
      // The simulated forge lists no jobs of a project it has none of.
      ["GET", "/projects/%25/jobs", 200],
      ["GET", "/groups/%25/projects", 404],
      ["POST", "/projects/%25/jobs/1/retry", 404],
      ["GET", "/projects/a%252Fb/jobs/1", 404],
    ] as const) {
      const response = await fetch(`${gitlab}${path}`, { method });
      expect([method, path, response.status]).toEqual([method, path, status]);
    }
  });
});
