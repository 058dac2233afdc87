import type { FakeClock } from "@hearth/core/clock";
import { githubDelivery, workflowJobPayload } from "@hearth/core/simulation/forge";
import { type Status, statusSchema } from "@hearth/core/status";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalHearth } from "../src/local/server";
import { pass, secrets, startTestHearth } from "./support/local";
import { autoScalingPools } from "./support/pools";

const STATUS_TOKEN = "status-token-for-tests";

let hearth: LocalHearth;
let clock: FakeClock;
beforeAll(async () => {
  ({ hearth, clock } = await startTestHearth({
    statusToken: STATUS_TOKEN,
    initialWarmPool: 1,
    pools: autoScalingPools,
  }));
  const job = {
    source: "github" as const,
    id: "3141",
    project: "acme/app",
    projectId: "1",
    pipelineId: "9",
    name: "build",
    labels: ["nix", "x86_64-linux"],
  };
  const stuck = { ...job, id: "2718", labels: ["ubuntu-latest"] };
  for (const each of [job, stuck]) {
    const request = githubDelivery(
      workflowJobPayload(each, "queued", { createdAt: new Date(clock.now()).toISOString() }),
      secrets,
    );
    await fetch(`${hearth.url}${request.path}`, {
      method: "POST",
      headers: request.headers,
      body: request.body,
    });
  }
  await hearth.idle();
  await pass(hearth, clock, 40);
  await hearth.tick();
  await hearth.idle();
});
afterAll(() => hearth.close());

const get = (token?: string) =>
  fetch(`${hearth.url}/api/status`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

describe("GET /api/status", () => {
  it("requires the status token when one is set", async () => {
    for (const response of [await get(), await get("not-the-token")]) {
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toContain("Bearer");
      expect(await response.json()).toMatchObject({ error: { code: "unauthorized" } });
    }
    const ok = await get(STATUS_TOKEN);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("cache-control")).toBe("no-store");
  });

  it("takes the scheme name in any case (RFC 9110), and only the right token", async () => {
    const as = (authorization: string) => fetch(`${hearth.url}/api/status`, { headers: { authorization } });
    for (const scheme of ["bearer", "BEARER", "bEaReR"]) {
      expect((await as(`${scheme} ${STATUS_TOKEN}`)).status).toBe(200);
      expect((await as(`${scheme} not-the-token`)).status).toBe(401);
    }
    expect((await as(`Basic ${STATUS_TOKEN}`)).status).toBe(401);
    expect((await as(STATUS_TOKEN)).status).toBe(401);
  });

  it("describes pools, instances, jobs, events and series, per the documented schema", async () => {
    const status = statusSchema.parse(await (await get(STATUS_TOKEN)).json()) as Status;
    expect(status.stage).toBe("local");
    expect(status.pools.map((pool) => pool.name)).toEqual(["x86_64", "aarch64"]);
    const x86 = status.pools[0];
    expect(x86?.instances.busy).toBe(1);
    expect(x86?.running).toBe(1);
    const busy = status.instances.find((instance) => instance.state === "busy");
    expect(busy).toMatchObject({
      pool: "x86_64",
      group: "warm",
      market: "on-demand",
      busySlots: 1,
      slots: 2,
    });
    expect(status.jobs.running).toEqual([
      expect.objectContaining({
        source: "github",
        id: "3141",
        pool: "x86_64",
        status: "running",
        instanceId: busy?.id,
      }),
    ]);
    expect(status.unroutable.count).toBe(1);
    expect(status.unroutable.jobs[0]).toMatchObject({ id: "2718", pool: null, status: "queued" });
    expect(status.events.some((event) => event.kind === "decision" && event.pool === "x86_64")).toBe(true);
    expect(status.series.pools.x86_64?.queued).toHaveLength(60);
    expect(status.series.pools.x86_64?.capacity.at(-1)).toBe(2);
  });

  it("never carries a secret, a token or a webhook URL", async () => {
    const text = await (await get(STATUS_TOKEN)).text();
    for (const secret of [
      secrets.githubWebhookSecret,
      secrets.gitlabWebhookToken,
      STATUS_TOKEN,
      "/webhooks/",
    ]) {
      expect(text).not.toContain(secret);
    }
    const tokens = hearth.simulation?.fleet.all().map((instance) => instance.token) ?? [];
    expect(tokens.length).toBeGreaterThan(0);
    for (const token of tokens) expect(text).not.toContain(token);
  });

  it("answers other methods with 405", async () => {
    const response = await fetch(`${hearth.url}/api/status`, { method: "POST" });
    expect(response.status).toBe(405);
  });
});

describe("GET /api/status with a long queue", () => {
  let long: LocalHearth;
  // Short enough for one request to count it whole (a longer queue is counted by ScaleFleet's
  // Observe and paged the same way: queue-at-scale.test.ts).
  const ids = Array.from({ length: 220 }, (_, i) => String(70_000 + i));
  beforeAll(async () => {
    let started: FakeClock;
    ({ hearth: long, clock: started } = await startTestHearth({ statusToken: STATUS_TOKEN }));
    // Fleet time stands still: nothing boots, so every job stays queued.
    for (const [index, id] of ids.entries()) {
      const request = githubDelivery(
        workflowJobPayload(
          {
            source: "github",
            id,
            project: "acme/app",
            projectId: "1",
            pipelineId: "9",
            name: `test-${index % 7}`,
            labels: ["nix", index % 3 ? "x86_64-linux" : "aarch64-linux"],
          },
          "queued",
          { createdAt: new Date(started.now() - (ids.length - index) * 1000).toISOString() },
        ),
        secrets,
      );
      const response = await fetch(`${long.url}${request.path}`, {
        method: "POST",
        headers: request.headers,
        body: request.body,
      });
      expect(response.status).toBe(202);
    }
    await long.idle();
  }, 120_000);
  afterAll(() => long.close());

  const page = async (cursor?: string) => {
    const query = cursor === undefined ? "" : `?cursor=${encodeURIComponent(cursor)}`;
    const response = await fetch(`${long.url}/api/status${query}`, {
      headers: { authorization: `Bearer ${STATUS_TOKEN}` },
    });
    expect(response.status).toBe(200);
    return statusSchema.parse(await response.json()) as Status;
  };

  it("counts every queued job, and pages through them oldest first with a cursor", async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const status = await page(cursor);
      pages++;
      expect(status.jobs.queuedCount).toBe(220);
      expect(status.pools.map((pool) => pool.queued)).toEqual([146, 74]);
      expect(status.jobs.queued.length).toBeLessThanOrEqual(100);
      seen.push(...status.jobs.queued.map((job) => job.id));
      cursor = status.jobs.next ?? undefined;
    } while (cursor !== undefined && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(ids);
  });

  it("refuses a cursor it did not give, with a JSON error", async () => {
    for (const cursor of ["not a cursor", "bm9wZQ", "%00"]) {
      const response = await fetch(`${long.url}/api/status?cursor=${encodeURIComponent(cursor)}`, {
        headers: { authorization: `Bearer ${STATUS_TOKEN}` },
      });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ error: { code: "bad_request" } });
    }
  });
});
