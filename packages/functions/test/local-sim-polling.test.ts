import { generateKeyPairSync } from "node:crypto";
import { createGitHubClient } from "@hearth/core/github-api/client";
import { createGitLabLists } from "@hearth/core/gitlab-api/job-lists";
import {
  activeProjects,
  ingestPolledEvents,
  pollGitHub,
  pollGitLab,
  RateGovernors,
} from "@hearth/core/polling";
import type { ForgeJob } from "@hearth/core/simulation/forge";
import { jobEventFromWorkflowJob } from "@hearth/core/sources/github";
import { jobEventFromJobHook } from "@hearth/core/sources/gitlab";
import { afterEach, describe, expect, it } from "vitest";
import { describedOperation, responseProblem } from "../../core/test/support/fake-github";
import { replay } from "../src/demo";
import type { LocalHearth } from "../src/local/server";
import { secrets, startTestHearth } from "./support/local";

/**
 * Local mode's simulated forges answer the polling APIs from their own state, and drop webhooks at a
 * loss rate: Hearth's pollers, pointed at them, find the jobs whose webhooks never arrived.
 */

let hearth: LocalHearth | undefined;
afterEach(async () => {
  await hearth?.close();
  hearth = undefined;
});

const githubJob = (id: string, run: string, project = "acme/app"): ForgeJob => ({
  source: "github",
  id,
  project,
  projectId: "0",
  pipelineId: run,
  name: "build",
  labels: ["nix", "x86_64-linux"],
});
const gitlabJob = (id: string, project = "demo/app", projectId = "77"): ForgeJob => ({
  source: "gitlab",
  id,
  project,
  projectId,
  pipelineId: "5000",
  name: "test",
  labels: ["nix", "x86_64-linux"],
});

async function createInForge(local: LocalHearth, jobs: ForgeJob[], query = "", token?: string) {
  return fetch(`${local.url}/sim/forge/jobs${query}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(jobs.map((job) => ({ job, warmSeconds: 30, coldSeconds: 60 }))),
  });
}

const { privateKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});

/** Hearth's GitHub App client, pointed at the simulated GitHub (no status token: any token passes). */
const appClient = (url: string) =>
  createGitHubClient({
    credentials: { kind: "app", appId: 1, privateKey },
    baseUrl: `${url}/sim/github`,
    writeSpacingMs: 0,
    rateLimitRetries: 0,
    serverErrorRetries: 0,
  });

const governors = (now: () => number) =>
  new RateGovernors({ assumedLimit: 5000, windowSeconds: 3600, burst: 1000, now });

async function eventually<T>(read: () => Promise<T | undefined> | T | undefined): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const value = await read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error("never happened");
}

describe("POST /sim/forge/jobs and the polled GitHub", () => {
  it("creates jobs with no webhook; pollGitHub finds them, each as its webhook would have said it", async () => {
    const started = await startTestHearth();
    hearth = started.hearth;
    const local = hearth;
    const now = () => started.clock.now();
    const answer = await createInForge(local, [githubJob("11", "700"), githubJob("12", "700")]);
    expect(answer.status).toBe(202);
    expect(await answer.json()).toMatchObject({ status: "accepted", jobs: 2, delivered: 0, dropped: 0 });
    expect(await local.ledger.get({ source: "github", id: "11" })).toBeUndefined();
    expect(local.simulation?.deliveries.all()).toHaveLength(0);

    const poll = await pollGitHub({
      client: appClient(local.url),
      governors: governors(now),
      repositories: ["acme/app"],
      now,
    });
    expect(poll.deliveries).toMatchObject({ status: "complete", redelivered: [] });
    const [repository] = poll.repositories;
    expect(repository).toMatchObject({ repository: "acme/app", status: "complete" });
    expect(repository?.events.map((event) => [event.id, event.status]).sort()).toEqual([
      ["11", "queued"],
      ["12", "queued"],
    ]);
    const ingested = await ingestPolledEvents(local.ledger, local.pools, repository?.events ?? []);
    expect(ingested.newlyQueued.map((job) => job.id).sort()).toEqual(["11", "12"]);

    // A job whose webhook was delivered: the polled job is the webhook's event.
    const delivered = await createInForge(local, [githubJob("13", "701")], "?webhook=queued");
    expect(await delivered.json()).toMatchObject({ delivered: 1, dropped: 0 });
    const record = local.simulation?.deliveries.all().at(-1);
    expect(record).toMatchObject({ event: "workflow_job", action: "queued", statusCode: 202 });
    const again = await pollGitHub({
      client: appClient(local.url),
      governors: governors(now),
      repositories: ["acme/app"],
      now,
    });
    const polled = again.repositories[0]?.events.find((event) => event.id === "13");
    expect(polled).toEqual(jobEventFromWorkflowJob(JSON.parse(record?.request.body ?? "")));
    // It is unchanged in the ledger: the webhook told of it already.
    expect(
      (await ingestPolledEvents(local.ledger, local.pools, polled ? [polled] : [])).outcomes,
    ).toMatchObject({
      unchanged: 1,
    });
  });

  it("lists runs by status and a run's latest jobs, in GitHub's shapes", async () => {
    ({ hearth } = await startTestHearth());
    const local = hearth;
    await createInForge(local, [githubJob("21", "800"), githubJob("22", "801")]);
    const jobs = local.simulation?.forgeJobs;
    jobs?.observe(githubJob("22", "801"), "running", { runnerName: "hearth-i-1-1", runnerId: 9 });
    const get = async (path: string) => {
      const response = await fetch(`${local.url}/sim/github${path}`, {
        headers: { authorization: "token x" },
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const queued = await get("/repos/acme/app/actions/runs?status=queued");
    expect(queued.body).toMatchObject({ total_count: 1, workflow_runs: [{ id: 800, status: "queued" }] });
    const inProgress = await get("/repos/acme/app/actions/runs?status=in_progress");
    expect(inProgress.body).toMatchObject({
      total_count: 1,
      workflow_runs: [{ id: 801, status: "in_progress" }],
    });
    const runJobs = await get("/repos/acme/app/actions/runs/801/jobs?filter=latest");
    expect(runJobs.body).toMatchObject({
      total_count: 1,
      jobs: [{ id: 22, run_id: 801, status: "in_progress", runner_name: "hearth-i-1-1", runner_id: 9 }],
    });
    expect((await get("/repos/acme/app/actions/runs?status=bogus")).status).toBe(422);
    expect((await get("/repos/acme/app/actions/runs/999/jobs")).status).toBe(404);
    expect((await get("/repos/acme/app/actions/runs/800/jobs?filter=all")).status).toBe(422);
  });
});

describe("the simulated GitHub's polling answers", () => {
  it("fit GitHub's OpenAPI description", async () => {
    ({ hearth } = await startTestHearth({ webhookLoss: 1 }));
    const local = hearth;
    await createInForge(local, [githubJob("51", "950"), githubJob("52", "951")], "?webhook=queued");
    local.simulation?.forgeJobs.observe(githubJob("52", "951"), "running", { runnerName: "r", runnerId: 3 });
    const problems: string[] = [];
    const call = async (method: string, path: string) => {
      const found = describedOperation(method, path.split("?")[0] ?? path);
      if (!found) throw new Error(`${method} ${path} is no operation of GitHub's API`);
      const response = await fetch(`${local.url}/sim/github${path}`, {
        method,
        headers: { authorization: "bearer x" },
      });
      const text = await response.text();
      const body = text === "" ? undefined : (JSON.parse(text) as unknown);
      const problem = responseProblem(found.operation, response.status, body);
      if (problem) problems.push(`${method} ${path} ${response.status}: ${problem}`);
      return { status: response.status, body, link: response.headers.get("link") };
    };
    const deliveries = await call("GET", "/app/hook/deliveries?per_page=1");
    expect(deliveries.status).toBe(200);
    expect(deliveries.body).toMatchObject([{ status_code: 0, redelivery: false, event: "workflow_job" }]);
    const cursor = /cursor=(\d+)/.exec(deliveries.link ?? "")?.[1];
    expect(cursor).toBeDefined();
    expect((await call("GET", `/app/hook/deliveries?per_page=1&cursor=${cursor}`)).body).toHaveLength(1);
    const id = (deliveries.body as Array<{ id: number }>)[0]?.id;
    expect((await call("POST", `/app/hook/deliveries/${id}/attempts`)).status).toBe(202);
    expect((await call("POST", "/app/hook/deliveries/999999/attempts")).status).toBe(404);
    expect((await call("GET", "/repos/acme/app/installation")).status).toBe(200);
    expect((await call("POST", "/app/installations/1/access_tokens")).status).toBe(201);
    expect((await call("GET", "/repos/acme/app/actions/runs?status=queued")).status).toBe(200);
    expect((await call("GET", "/repos/acme/app/actions/runs?status=in_progress")).status).toBe(200);
    expect((await call("GET", "/repos/acme/app/actions/runs/951/jobs?filter=latest")).status).toBe(200);
    expect((await call("GET", "/repos/acme/app/actions/runs/950/jobs?filter=latest")).status).toBe(200);
    // One job by id, as the sweep reads a stuck job.
    const job = await call("GET", "/repos/acme/app/actions/jobs/52");
    expect(job).toMatchObject({ status: 200, body: { id: 52, status: "in_progress", runner_id: 3 } });
    expect((await call("GET", "/repos/acme/app/actions/jobs/999")).status).toBe(404);
    expect(problems).toEqual([]);
  });
});

describe("the webhook loss rate", () => {
  it("drops deliveries as failed (status 0); pollGitHub reads their jobs from the delivery log, and a redelivery reaches Hearth", async () => {
    const started = await startTestHearth({ webhookLoss: 1 });
    hearth = started.hearth;
    const local = hearth;
    const now = () => started.clock.now();
    const created = await createInForge(
      local,
      [githubJob("31", "900"), githubJob("32", "900")],
      "?webhook=queued",
    );
    expect(await created.json()).toMatchObject({ delivered: 0, dropped: 2 });
    expect(await local.ledger.get({ source: "github", id: "31" })).toBeUndefined();
    // The App's delivery list shows them as failed.
    const list = await fetch(`${local.url}/sim/github/app/hook/deliveries`, {
      headers: { authorization: "bearer x" },
    });
    const items = (await list.json()) as Array<Record<string, unknown>>;
    expect(items.map((item) => [item.status_code, item.redelivery, item.event])).toEqual([
      [0, false, "workflow_job"],
      [0, false, "workflow_job"],
    ]);

    const loss = await fetch(`${local.url}/sim/forge/webhook-loss`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rate: 0 }),
    });
    expect(await loss.json()).toEqual({ rate: 0 });
    const poll = await pollGitHub({
      client: appClient(local.url),
      governors: governors(now),
      repositories: [],
      now,
    });
    expect(poll.deliveries.status).toBe("complete");
    expect(poll.deliveries.redelivered).toEqual([]);
    expect(poll.deliveries.read.sort()).toEqual(items.map((item) => item.id).sort());
    expect(poll.deliveries.events.map((event) => [event.id, event.status, event.project])).toEqual(
      expect.arrayContaining([
        ["31", "queued", "acme/app"],
        ["32", "queued", "acme/app"],
      ]),
    );
    // A delivery's payload as the API shows it carries no signature.
    const shown = await fetch(`${local.url}/sim/github/app/hook/deliveries/${items[0]?.id}`, {
      headers: { authorization: "bearer x" },
    });
    const delivery = (await shown.json()) as { request: { headers: Record<string, string> } };
    expect(Object.keys(delivery.request.headers)).not.toContain("x-hub-signature-256");

    // Asked to redeliver, the simulated GitHub sends them again after its 202, with the same guid,
    // marked as redeliveries, and they reach Hearth.
    for (const item of items) {
      const attempt = await fetch(`${local.url}/sim/github/app/hook/deliveries/${item.id}/attempts`, {
        method: "POST",
        headers: { authorization: "bearer x" },
      });
      expect(attempt.status).toBe(202);
    }
    const job = await eventually(
      async () => (await local.ledger.get({ source: "github", id: "32" })) ?? undefined,
    );
    expect(job.status).toBe("queued");
    await eventually(() => ((local.simulation?.deliveries.all().length ?? 0) >= 4 ? true : undefined));
    const redeliveries = local.simulation?.deliveries.all().filter((record) => record.redelivery) ?? [];
    expect(redeliveries.map((record) => record.statusCode)).toEqual([202, 202]);
    expect(new Set(redeliveries.map((record) => record.guid))).toEqual(
      new Set(items.map((item) => item.guid as string)),
    );
  });

  it("drops a seeded share at random, and the pollers find every job whose webhook was dropped", async () => {
    const started = await startTestHearth({ webhookLoss: 0.5 });
    hearth = started.hearth;
    const local = hearth;
    const now = () => started.clock.now();
    const github = Array.from({ length: 20 }, (_, i) => githubJob(String(100 + i), String(1000 + i)));
    const gitlab = Array.from({ length: 20 }, (_, i) => gitlabJob(String(200 + i)));
    const answer = (await (await createInForge(local, [...github, ...gitlab], "?webhook=queued")).json()) as {
      delivered: number;
      dropped: number;
    };
    expect(answer.delivered + answer.dropped).toBe(40);
    expect(answer.dropped).toBeGreaterThan(5);
    expect(answer.delivered).toBeGreaterThan(5);
    const missing = async () => {
      const ids: string[] = [];
      for (const job of [...github, ...gitlab]) {
        if (!(await local.ledger.get({ source: job.source, id: job.id })))
          ids.push(`${job.source}#${job.id}`);
      }
      return ids;
    };
    const lost = await missing();
    expect(lost).toHaveLength(answer.dropped);

    // The pollers, called directly, over the runs and the pending jobs (no redelivery: a PAT client).
    const pat = createGitHubClient({
      credentials: { kind: "personal-access-token", token: "local", forLocalModeOnly: true },
      baseUrl: `${local.url}/sim/github`,
      writeSpacingMs: 0,
      rateLimitRetries: 0,
    });
    const githubPoll = await pollGitHub({
      client: pat,
      governors: governors(now),
      repositories: await activeProjects(local.ledger, "github", new Date(now())).then((known) => [
        ...known,
        "acme/app",
      ]),
      now,
    });
    const gitlabPoll = await pollGitLab({
      lists: createGitLabLists({ url: `${local.url}/sim/gitlab`, token: "local" }),
      gitlabUrl: "https://gitlab.example.com",
      governor: governors(now).for("gitlab"),
      projects: [],
      groups: ["demo"],
      now,
    });
    expect(gitlabPoll.groups).toEqual([{ group: "demo", status: "complete", projects: 1 }]);
    const events = [
      ...githubPoll.repositories.flatMap((repository) => repository.events),
      ...gitlabPoll.projects.flatMap((project) => project.events),
    ];
    expect(githubPoll.repositories.every((repository) => repository.status === "complete")).toBe(true);
    expect(gitlabPoll.projects.every((project) => project.status === "complete")).toBe(true);
    const ingested = await ingestPolledEvents(local.ledger, local.pools, events);
    expect(ingested.newlyQueued.map((job) => `${job.source}#${job.id}`).sort()).toEqual([...lost].sort());
    expect(await missing()).toEqual([]);
  });
});

describe("npm run demo with a webhook loss", () => {
  it("queues each job in the simulated forge, whose deliveries drop at its rate", async () => {
    const started = await startTestHearth({ webhookLoss: 0.5, statusToken: "t" });
    hearth = started.hearth;
    const local = hearth;
    const jobs = Array.from({ length: 20 }, (_, i) => ({
      at: 0,
      job: i % 2 ? githubJob(String(600 + i), String(600 + i)) : gitlabJob(String(600 + i)),
      warmSeconds: 10,
      coldSeconds: 20,
    }));
    const result = await replay(jobs, {
      url: local.url,
      secrets,
      statusToken: "t",
      viaForge: true,
      now: () => new Date(started.clock.now()),
      waitUntil: async () => {},
    });
    expect(result.refused).toBe(0);
    expect(result.sent + result.dropped).toBe(20);
    expect(result.dropped).toBeGreaterThan(0);
    const recorded = await Promise.all(
      jobs.map(({ job }) => local.ledger.get({ source: job.source, id: job.id })),
    );
    expect(recorded.filter(Boolean)).toHaveLength(result.sent);
    const deliveries = local.simulation?.deliveries.all() ?? [];
    expect(deliveries.filter((record) => record.statusCode === 0)).toHaveLength(result.dropped);
  });
});

describe("the polled GitLab", () => {
  it("lists pending and running jobs in keyset pages, each as its Job Hook with the tags", async () => {
    const started = await startTestHearth();
    hearth = started.hearth;
    const local = hearth;
    const jobs = [gitlabJob("301"), gitlabJob("302"), gitlabJob("303")];
    await createInForge(local, jobs, "?webhook=queued");
    local.simulation?.forgeJobs.observe(gitlabJob("303"), "success");
    const first = await fetch(
      `${local.url}/sim/gitlab/api/v4/projects/77/jobs?scope[]=pending&scope[]=running&pagination=keyset&per_page=1`,
    );
    const page = (await first.json()) as Array<{ id: number }>;
    expect(page.map((job) => job.id)).toEqual([302]);
    const next = /<([^>]+)>; rel="next"/.exec(first.headers.get("link") ?? "")?.[1];
    expect(next).toBeDefined();
    const second = await fetch(next as string);
    expect(((await second.json()) as Array<{ id: number }>).map((job) => job.id)).toEqual([301]);
    expect(second.headers.get("link")).toBeNull();

    const poll = await pollGitLab({
      lists: createGitLabLists({ url: `${local.url}/sim/gitlab`, token: "local" }),
      gitlabUrl: "https://gitlab.example.com",
      governor: governors(() => started.clock.now()).for("gitlab"),
      projects: ["demo/app"],
      now: () => started.clock.now(),
    });
    const polled = poll.projects[0]?.events.find((event) => event.id === "301");
    const record = local.simulation?.deliveries
      .all()
      .find((delivery) => JSON.parse(delivery.request.body).build_id === 301);
    const hook = jobEventFromJobHook(JSON.parse(record?.request.body ?? ""), new Date(started.clock.now()));
    expect(polled).toEqual({ ...hook, labels: ["nix", "x86_64-linux"], labelsKnown: true });
    expect((await fetch(`${local.url}/sim/gitlab/api/v4/projects/77/jobs?scope[]=bogus`)).status).toBe(400);
    expect((await fetch(`${local.url}/sim/gitlab/api/v4/groups/nobody/projects`)).status).toBe(404);
  });
});

describe("hostile input", () => {
  it("POST /sim/forge/jobs: clear 400s and 401s, and nothing created", async () => {
    ({ hearth } = await startTestHearth({ statusToken: "s3cret" }));
    const local = hearth;
    const post = (body: string, query = "", token: string | undefined = "s3cret") =>
      fetch(`${local.url}/sim/forge/jobs${query}`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body,
      });
    const valid = JSON.stringify([{ job: githubJob("41", "41"), warmSeconds: 1, coldSeconds: 1 }]);
    const cases: Array<[Response, number, string]> = [
      [await post(valid, "", ""), 401, "unauthorized"],
      [await post(valid, "", "wrong"), 401, "unauthorized"],
      [await post("{not json"), 400, "malformed"],
      [await post(JSON.stringify({ job: githubJob("41", "41") })), 400, "invalid_payload"],
      [
        await post(
          JSON.stringify([
            { job: { ...githubJob("41", "41"), id: "41; drop" }, warmSeconds: 1, coldSeconds: 1 },
          ]),
        ),
        400,
        "invalid_payload",
      ],
      [
        await post(JSON.stringify([{ job: githubJob("41", "41"), warmSeconds: -1, coldSeconds: 1 }])),
        400,
        "invalid_payload",
      ],
      [
        await post(
          JSON.stringify([
            { job: { ...githubJob("41", "41"), source: "bitbucket" }, warmSeconds: 1, coldSeconds: 1 },
          ]),
        ),
        400,
        "invalid_payload",
      ],
      [await post(`[${valid.slice(1, -1)},${valid.slice(1, -1)}]`), 400, "invalid_payload"],
      [await post(valid, "?webhook=all"), 400, "invalid_query"],
      [await post("x".repeat(2 * 1024 * 1024)), 413, ""],
    ];
    for (const [response, status, code] of cases) {
      expect(response.status).toBe(status);
      if (code) expect(((await response.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    expect(local.simulation?.forgeJobs.githubRuns("acme/app", undefined)).toEqual([]);
    expect(local.simulation?.deliveries.all()).toEqual([]);
    expect(local.simulation?.runners.describedJobs()).toEqual([]);
    expect((await post(valid)).status).toBe(202);
    expect(local.simulation?.forgeJobs.githubRuns("acme/app", "queued")).toHaveLength(1);
  });

  it("the loss rate: only a number from 0 to 1, with the status token; a bad one changes nothing", async () => {
    ({ hearth } = await startTestHearth({ statusToken: "s3cret", webhookLoss: 0.2 }));
    const local = hearth;
    const put = (body: string, token: string | undefined = "s3cret") =>
      fetch(`${local.url}/sim/forge/webhook-loss`, {
        method: "PUT",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body,
      });
    for (const body of [
      '{"rate":-0.1}',
      '{"rate":1.5}',
      '{"rate":"0.5"}',
      '{"rate":0.5,"x":1}',
      "{}",
      "[0.5]",
      "0.5{",
    ]) {
      const response = await put(body);
      expect(response.status, body).toBe(400);
      const { error } = (await response.json()) as { error: { message: string } };
      expect(error.message).toMatch(/rate|JSON|object|key|expected/i);
    }
    expect((await put('{"rate":0.5}', "")).status).toBe(401);
    const read = await fetch(`${local.url}/sim/forge/webhook-loss`, {
      headers: { authorization: "Bearer s3cret" },
    });
    expect(await read.json()).toEqual({ rate: 0.2 });
    expect(local.simulation?.deliveries.lossRate).toBe(0.2);
    expect(await (await put('{"rate":0.3}')).json()).toEqual({ rate: 0.3 });
    expect(local.simulation?.deliveries.lossRate).toBe(0.3);
  });
});

describe("local mode's own poll", () => {
  it("as the simulated App, also behind a status token: reads GitHub's dropped webhooks, finds GitLab's, scales for them", async () => {
    const started = await startTestHearth({ webhookLoss: 1, statusToken: "s3cret" });
    hearth = started.hearth;
    const local = hearth;
    await createInForge(local, [githubJob("71", "971"), gitlabJob("72")], "?webhook=queued", "s3cret");
    expect(await local.ledger.get({ source: "github", id: "71" })).toBeUndefined();
    // GitHub's own checks must pass: no loss from now on.
    await fetch(`${local.url}/sim/forge/webhook-loss`, {
      method: "PUT",
      headers: { "content-type": "application/json", authorization: "Bearer s3cret" },
      body: JSON.stringify({ rate: 0 }),
    });

    const report = await local.poll();
    expect(report.unknown).toEqual([]);
    expect(report).toMatchObject({ deliveriesRead: 1, redelivered: 0 });
    expect(report.forges.map((forge) => [forge.forge, forge.status])).toEqual([
      ["github", "polled"],
      ["gitlab", "polled"],
    ]);
    // GitLab's job came from the listing of the simulated GitLab's group; GitHub's from its delivery.
    expect(report.queued).toBe(2);
    expect(await local.ledger.get({ source: "gitlab", id: "72" })).toMatchObject({ status: "queued" });
    const github = await eventually(
      async () => (await local.ledger.get({ source: "github", id: "71" })) ?? undefined,
    );
    expect(github.status).toBe("queued");
    await local.idle();
    expect(local.scaleFleet.executions).toBeGreaterThan(0);

    // The repository is active now: the next poll lists its runs as the App's installation (whose
    // lookup the App's JWT authenticates), and finds the job it knows.
    await started.clock.advance(60_000);
    const next = await local.poll();
    expect(next.unknown).toEqual([]);
    expect(next.forges[0]?.tokens.map((token) => token.token)).toEqual(["app:1", "installation:1"]);
    expect(next).toMatchObject({ found: 2, recorded: 0, queued: 0 });

    // A JWT of another key is refused on the App's routes, as GitHub refuses it.
    const { privateKey: otherKey } = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    });
    const impostor = createGitHubClient({
      credentials: { kind: "app", appId: 1, privateKey: otherKey },
      baseUrl: `${local.url}/sim/github`,
      writeSpacingMs: 0,
      rateLimitRetries: 0,
      serverErrorRetries: 0,
    });
    await expect(impostor.requestAsApp?.("GET /app/hook/deliveries", {})).rejects.toThrow(/401|credentials/i);
  });
});
